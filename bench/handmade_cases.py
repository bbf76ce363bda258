"""Hand-made changebench cases from kinds of pages the dev split does not have.

A check that the detector generalises beyond `shared/changebench/dev`: other layouts (release
tables, news indexes, CVE tables, stock tables, plan tables, paragraphs that change tense),
other wordings of queries, and traps (pre-releases, another model's stock, a typo fix, a
sentence appended to a paragraph, a stale copy, a removal from a list). The pages and labels are written by hand
here, not read from real histories, so they are a smoke test, not a score to report.

    uv run python bench/handmade_cases.py /tmp/handmade
    uv run python bench/changebench.py --cases /tmp/handmade
"""

import json
import pathlib
import random
import sys
from typing import Any

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "handmade") / "cases"
HEAD = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head><body>
<header class="site"><span class="brand">{brand}</span><nav><a href="/">Home</a><a href="/docs/">Docs</a><a href="/blog/">Blog</a></nav></header>
<div class="wrap"><main id="content">
<div class="ad"><small>Advertisement</small><br>{ad}</div>
"""
FOOT = """</main><aside><div class="ad"><small>Sponsored</small><br>{ad2}</div><h3>Popular</h3><ul>{pop}</ul></aside></div>
<footer><a href="/about">About</a> &middot; <a href="/privacy">Privacy</a><br>&copy; 2025 {brand}. Page generated {stamp}.</footer></body></html>"""
ADS = [
    "Try our cloud for free",
    "Learn Rust in 30 days",
    "The best laptops of 2025",
    "Hire top developers",
    "Backup your data now",
]
POP = ["How to deploy", "Getting started", "Release notes", "FAQ", "Roadmap", "Community"]


def page(title: str, brand: str, main: str, k: int) -> str:
    r = random.Random(k)
    pop = "".join(f"<li><a href='/p/{i}'>{p}</a></li>" for i, p in enumerate(r.sample(POP, 3)))
    return (
        HEAD.format(title=title, brand=brand, ad=r.choice(ADS))
        + main
        + FOOT.format(
            ad2=r.choice(ADS),
            pop=pop,
            brand=brand,
            stamp=f"2025-0{1 + k % 9}-1{k % 10} 1{k % 10}:0{k % 10} UTC",
        )
    )


def case(
    cid: Any, category: Any, query: Any, title: Any, brand: Any, mains: Any, expect: Any
) -> None:
    d = root / cid
    d.mkdir(parents=True, exist_ok=True)
    versions = []
    for i, m in enumerate(mains):
        (d / f"v{i:03d}.html").write_text(page(title, brand, m, i))
        versions.append(f"v{i:03d}.html")
    (d / "case.json").write_text(
        json.dumps(
            {
                "id": cid,
                "query": query,
                "category": category,
                "source": "hand-made",
                "versions": versions,
                "expect": expect,
                "why": [None] + ["-"] * (len(mains) - 1),
            }
        )
    )


# A: release with pre-releases, one-time
def rel(rows: Any) -> str:
    return (
        "<h1>Django releases</h1><p>Every release of Django, newest first.</p><table><tr><th>Version</th><th>Date</th><th>Notes</th></tr>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
        + "</table>"
    )


base = [("5.0.7", "July 9, 2024", "Security and bug fixes"), ("5.0.6", "May 7, 2024", "Bug fixes")]
case(
    "x-django-5-1",
    "release",
    "Tell me when Django 5.1 is released.",
    "Releases | Django",
    "Django",
    [
        rel(base),
        rel([("5.1 beta 1", "June 26, 2024", "Beta release"), *base]),
        rel([("5.1 release candidate 1", "July 24, 2024", "Release candidate"), *base]),
        rel([("5.1", "August 7, 2024", "Feature release"), *base]),
        rel(
            [
                ("5.1.1", "September 3, 2024", "Security and bug fixes"),
                ("5.1", "August 7, 2024", "Feature release"),
                *base,
            ]
        ),
    ],
    [None, "no_alert", "no_alert", "alert", "no_alert"],
)


# B: keynotes, recurring
def conf(keynotes: Any, sponsors: Any, bio: str = "") -> str:
    k = "".join(
        f"<li><strong>{n}</strong> &mdash; {t}{bio if i == 0 else ''}</li>"
        for i, (n, t) in enumerate(keynotes)
    )
    s = "".join(f"<li>{n}</li>" for n in sponsors)
    return f"<h1>EuroPython 2025</h1><p>Prague, July 14-20, 2025.</p><h2>Keynote speakers</h2><ul>{k}</ul><h2>Sponsors</h2><ul>{s}</ul>"


case(
    "x-europython-keynotes",
    "event",
    "Notify me when new keynote speakers are announced for EuroPython 2025.",
    "EuroPython 2025",
    "EuroPython",
    [
        conf([("Ines Montani", "Building NLP tools")], ["Bloomberg"]),
        conf(
            [
                ("Ines Montani", "Building NLP tools"),
                ("Brett Cannon", "The state of Python packaging"),
            ],
            ["Bloomberg"],
        ),
        conf(
            [
                ("Ines Montani", "Building NLP tools"),
                ("Brett Cannon", "The state of Python packaging"),
            ],
            ["Bloomberg", "Microsoft"],
        ),
        conf(
            [
                ("Ines Montani", "Building NLP tools"),
                ("Brett Cannon", "The state of Python packaging"),
                ("Carol Willing", "Python in science education"),
            ],
            ["Bloomberg", "Microsoft"],
        ),
        conf(
            [
                ("Ines Montani", "Building NLP tools"),
                ("Brett Cannon", "The state of Python packaging"),
                ("Carol Willing", "Python in science education"),
            ],
            ["Bloomberg", "Microsoft"],
            bio=" (updated talk title)",
        ),
    ],
    [None, "alert", "no_alert", "alert", "no_alert"],
)


# C: tickets on sale
def tick(status: Any, extra: str = "") -> str:
    return f"<h1>PyCon US 2025</h1><p>Pittsburgh, May 14-22, 2025.</p><h2>Registration</h2><p>{status}</p><h2>Venue</h2><p>David L. Lawrence Convention Center{extra}</p>"


case(
    "x-pycon-tickets",
    "availability",
    "Tell me when tickets for PyCon US 2025 go on sale.",
    "PyCon US 2025",
    "PyCon US",
    [
        tick("Registration will open in December. Sign up for our newsletter to be notified."),
        tick(
            "Registration will open in December. Sign up for our newsletter to be notified.",
            ", Pittsburgh, PA",
        ),
        tick(
            "Registration is now open! Buy your tickets: corporate $750, individual $400, student $100."
        ),
        tick(
            "Registration is open. Early bird pricing has ended: corporate $750, individual $450, student $100."
        ),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


# D: security advisories list
def adv(rows: Any) -> str:
    return (
        "<h1>Security advisories for requests</h1><p>Advisories published for the requests package.</p>"
        + "".join(f"<h2>{i}</h2><p>Severity: {s}. {d}</p>" for i, s, d in rows)
    )


a1 = (
    "GHSA-j8r2-6x86-q33q",
    "moderate",
    "Unintended leak of Proxy-Authorization header in requests.",
)
a2 = (
    "GHSA-9wx4-h78v-vm56",
    "moderate",
    "Requests Session object does not verify requests after making first request with verify=False.",
)
a3 = (
    "GHSA-9hjg-9r4m-mvj7",
    "moderate",
    "Requests vulnerable to .netrc credentials leak via malicious URLs.",
)
case(
    "x-requests-advisories",
    "security",
    "Alert me when a new security advisory is published for requests.",
    "requests advisories",
    "Advisory DB",
    [
        adv([a1]),
        adv([a2, a1]),
        adv([(a2[0], "medium", a2[2]), a1]),
        adv([a3, (a2[0], "medium", a2[2]), a1]),
    ],
    [None, "alert", "no_alert", "alert"],
)


# E: price threshold
def price(p: Any, stock: str = "In stock") -> str:
    return f"<h1>Framework Laptop 13</h1><p>Repairable, upgradeable laptop.</p><h2>Configurations</h2><table><tr><th>Model</th><th>Price</th><th>Availability</th></tr><tr><td>Framework Laptop 13 (AMD Ryzen 7040)</td><td>${p}</td><td>{stock}</td></tr></table>"


case(
    "x-framework-price",
    "price",
    "Alert me if the price of the Framework Laptop 13 drops below $1,000.",
    "Framework Laptop 13",
    "Framework",
    [price("1,099"), price("1,049"), price("1,049", "Ships in 5 days"), price("999"), price("989")],
    [None, "no_alert", "no_alert", "alert", "no_alert"],
)


# F: EOL table, one-time
def eol(rows: Any) -> str:
    return (
        "<h1>Node.js releases</h1><h2>Release schedule</h2><table><tr><th>Release</th><th>Status</th><th>Codename</th><th>End-of-life</th></tr>"
        + "".join(
            f"<tr><td>{a}</td><td>{b}</td><td>{c}</td><td>{d}</td></tr>" for a, b, c, d in rows
        )
        + "</table>"
    )


r = [
    ("22.x", "Active LTS", "Jod", "2027-04-30"),
    ("20.x", "Maintenance LTS", "Iron", "2026-04-30"),
    ("18.x", "Maintenance LTS", "Hydrogen", "2025-04-30"),
]
case(
    "x-node-18-eol",
    "policy",
    "Tell me when Node.js 18 reaches end-of-life.",
    "Node.js releases",
    "Node.js",
    [
        eol(r),
        eol([("23.x", "Current", "", "2025-06-01"), *r]),
        eol(
            [
                ("23.x", "Current", "", "2025-06-01"),
                r[0],
                ("20.x", "Maintenance LTS", "Iron", "2026-04-30"),
                ("18.x", "End-of-life", "Hydrogen", "2025-04-30"),
            ]
        ),
        eol(
            [
                ("24.x", "Current", "", "2028-04-30"),
                ("23.x", "End-of-life", "", "2025-06-01"),
                r[0],
                r[1],
                ("18.x", "End-of-life", "Hydrogen", "2025-04-30"),
            ]
        ),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def dl(rows: Any) -> str:
    return (
        "<h1>Python Releases for Windows</h1><h2>Stable Releases</h2><ul>"
        + "".join(
            f"<li><a href='/d/{v}'>Python {v} - {d}</a><ul><li>Download Windows installer (64-bit)</li></ul></li>"
            for v, d in rows
        )
        + "</ul>"
    )


b = [("3.13.7", "Aug. 14, 2025"), ("3.12.11", "June 3, 2025")]
case(
    "x-python-3-14",
    "flapping",
    "Tell me when Python 3.14.0 is released.",
    "Python Releases for Windows",
    "Python.org",
    [
        dl(b),
        dl([("3.14.0rc3", "Sept. 18, 2025"), *b]),
        dl([("3.14.0", "Oct. 7, 2025"), *b]),
        dl([("3.14.0rc3", "Sept. 18, 2025"), *b]),
        dl([("3.14.0", "Oct. 7, 2025"), *b]),
    ],
    [None, "no_alert", "alert", "no_alert", "no_alert"],
)


def doc(typo: Any, upd: Any, rel: Any) -> str:
    return f"<h1>The Rust Edition Guide</h1><p>Last updated {upd}</p><h2>Rust 2024</h2><p>The Rust 2024 Edition is {typo} planned for stabilization in Rust 1.85.</p><h2>Related articles</h2><ul>{rel}</ul>"


case(
    "x-rust-edition-noise",
    "noise",
    "Tell me when the Rust 2024 edition is stabilised.",
    "Edition Guide",
    "Rust",
    [
        doc("currently", "Jan 2", "<li>Async closures</li>"),
        doc("currenty", "Jan 5", "<li>Let chains</li>"),
        doc("currently", "Jan 9", "<li>Async closures</li>"),
        doc("currently", "Jan 9", "<li>Never type fallback</li><li>RPIT capture rules</li>"),
    ],
    [None, "no_alert", "no_alert", "no_alert"],
)


def go(p: Any, extra: str = "") -> str:
    return f"<h1>Go release plans</h1><h2>Go 1.24</h2><p>{p}</p><h2>Go 1.25</h2><p>Planning has started for Go 1.25.{extra}</p>"


case(
    "x-go-date",
    "schedule",
    "Notify me if the planned release date of Go 1.24 changes.",
    "Go release plans",
    "Go",
    [
        go("Go 1.24 is expected to be released in February 2025."),
        go("Go 1.24 is expected to be relased in February 2025."),
        go("Go 1.24 is expected to be released in March 2025."),
        go("Go 1.24 is expected to be released in March 2025.", " The freeze begins in May 2025."),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def k8s(rows: Any) -> str:
    return (
        "<h1>Kubernetes Releases</h1><h2>Release history</h2><table><tr><th>Version</th><th>Date</th></tr>"
        + "".join(f"<tr><td>{v}</td><td>{d}</td></tr>" for v, d in rows)
        + "</table>"
    )


kb = [("v1.31.3", "2024-11-19"), ("v1.30.7", "2024-11-19")]
case(
    "x-k8s-1-32",
    "wrong_condition",
    "Alert me when Kubernetes 1.32 is released.",
    "Kubernetes Releases",
    "Kubernetes",
    [
        k8s(kb),
        k8s([("v1.31.4", "2024-12-10"), *kb]),
        k8s([("v1.32.0-rc.1", "2024-12-03"), ("v1.31.4", "2024-12-10"), *kb]),
        k8s([("v1.32.0", "2024-12-11"), ("v1.31.4", "2024-12-10"), *kb]),
    ],
    [None, "no_alert", "no_alert", "alert"],
)


def sched(spons: Any, talks: Any) -> str:
    return (
        "<h1>PyCon US 2025</h1><h2>Sponsors</h2><ul>"
        + "".join(f"<li>{x}</li>" for x in spons)
        + "</ul>"
        + (
            "<h2>Schedule</h2><table><tr><th>Time</th><th>Talk</th><th>Room</th></tr>"
            + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in talks)
            + "</table>"
            if talks
            else "<h2>Schedule</h2><p>The schedule will be published in March.</p>"
        )
    )


t1 = [
    ("10:00", "Keynote: Python at 35", "Hall A"),
    ("11:00", "Typing in practice", "Room 1"),
    ("11:00", "Async all the way down", "Room 2"),
]
case(
    "x-pycon-schedule",
    "event",
    "Tell me when the PyCon US 2025 schedule is published.",
    "PyCon US 2025",
    "PyCon US",
    [
        sched(["Google"], None),
        sched(["Google", "Bloomberg"], None),
        sched(["Google", "Bloomberg"], t1),
        sched(
            ["Google", "Bloomberg"], [t1[0], t1[1], ("11:00", "Async all the way down", "Room 3")]
        ),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def pi(s8: Any, s16: Any) -> str:
    return f"<h1>Raspberry Pi 5</h1><p>Sold by PiShop.</p><table><tr><th>Model</th><th>Price</th><th>Stock</th></tr><tr><td>Raspberry Pi 5 4GB</td><td>$60</td><td>In stock</td></tr><tr><td>Raspberry Pi 5 8GB</td><td>$80</td><td>{s8}</td></tr><tr><td>Raspberry Pi 5 16GB</td><td>$120</td><td>{s16}</td></tr></table>"


case(
    "x-pi-16gb",
    "availability",
    "Tell me when the Raspberry Pi 5 16GB is in stock at PiShop.",
    "Raspberry Pi 5",
    "PiShop",
    [
        pi("Out of stock", "Out of stock"),
        pi("In stock", "Out of stock"),
        pi("In stock", "In stock"),
        pi("In stock", "Out of stock"),
        pi("In stock", "In stock"),
    ],
    [None, "no_alert", "alert", "no_alert", "no_alert"],
)


def cp(tiers: Any, note: str = "") -> str:
    return (
        "<h1>GitHub Copilot plans</h1><p>Choose the plan that fits.</p><h2>Plans</h2><table><tr><th>Plan</th><th>Price</th><th>For</th></tr>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in tiers)
        + f"</table><p>{note}Prices in USD.</p>"
    )


t = [
    ("Free", "$0", "Individuals trying Copilot"),
    ("Pro", "$10 per month", "Individual developers"),
    ("Business", "$19 per user per month", "Organizations"),
]
case(
    "x-copilot-pricing",
    "price",
    "Tell me if GitHub Copilot pricing changes.",
    "Copilot plans",
    "GitHub",
    [
        cp(t),
        cp(t, "Taxes may apply. "),
        cp([*t[:2], ("Pro+", "$39 per month", "Power users"), *t[2:]], "Taxes may apply. "),
        cp([*t[:2], ("Pro+", "$39 per month", "Power users"), *t[2:]], "Taxes may aply. "),
        cp(
            [
                *t[:2],
                ("Pro+", "$39 per month", "Power users"),
                ("Business", "$21 per user per month", "Organizations"),
            ],
            "Taxes may aply. ",
        ),
    ],
    [None, "no_alert", "alert", "no_alert", "alert"],
)


def ssl(rows: Any) -> str:
    return (
        "<h1>OpenSSL vulnerabilities</h1><p>Vulnerabilities fixed in OpenSSL releases.</p><table><tr><th>CVE</th><th>Severity</th><th>Fixed in</th></tr>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
        + "</table>"
    )


c1 = ("CVE-2024-5535", "Low", "3.3.2")
c2 = ("CVE-2024-6119", "Moderate", "3.3.2")
c3 = ("CVE-2024-9143", "Low", "3.4.0")
case(
    "x-openssl-cve",
    "security",
    "Alert me when a new CVE is published for OpenSSL.",
    "Vulnerabilities | OpenSSL",
    "OpenSSL",
    [ssl([c1]), ssl([c2, c1]), ssl([(c2[0], "High", c2[2]), c1]), ssl([c1]), ssl([c3, c1])],
    [None, "alert", "no_alert", "no_alert", "alert"],
)


def cfp(p: Any) -> str:
    return f"<h1>DjangoCon US 2025</h1><p>Chicago, September 8-12, 2025.</p><h2>Call for proposals</h2><p>{p}</p><h2>Tickets</h2><p>Tickets go on sale in May.</p>"


case(
    "x-djangocon-cfp",
    "event",
    "Notify me when the call for proposals for DjangoCon US 2025 opens.",
    "DjangoCon US 2025",
    "DjangoCon US",
    [
        cfp("The call for proposals opens in March 2025."),
        cfp("The call for proposals opens in March 2025. Follow us for updates."),
        cfp("The call for proposals is now open! Submit your talk by April 30, 2025."),
        cfp("The call for proposals is open. The deadline was extended to May 7, 2025."),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def news(items: Any) -> str:
    return "<h1>Ruby News</h1><h2>Recent News</h2>" + "".join(
        f"<h3>{t}</h3><p>Posted by naruse on {d}</p><p>{b}</p>" for t, d, b in items
    )


n0 = [
    ("Ruby 3.3.6 Released", "5 Nov 2024", "Ruby 3.3.6 has been released. This is a routine update.")
]
p2 = (
    "Ruby 3.4.0 preview2 Released",
    "7 Oct 2024",
    "We are pleased to announce the release of Ruby 3.4.0-preview2.",
)
r1 = (
    "Ruby 3.4.0 rc1 Released",
    "12 Dec 2024",
    "We are pleased to announce the release of Ruby 3.4.0-rc1.",
)
f = (
    "Ruby 3.4.0 Released",
    "25 Dec 2024",
    "We are pleased to announce the release of Ruby 3.4.0. Ruby 3.4 adds it block parameter.",
)
case(
    "x-ruby-3-4",
    "release",
    "Tell me when Ruby 3.4.0 is released.",
    "Ruby News",
    "Ruby",
    [
        news(n0),
        news([p2, *n0]),
        news([r1, p2, *n0]),
        news([f, r1, p2, *n0]),
        news(
            [
                (
                    "Ruby 3.4.1 Released",
                    "25 Dec 2024",
                    "Ruby 3.4.1 has been released. This fixes the version description.",
                ),
                f,
                r1,
                p2,
                *n0,
            ]
        ),
    ],
    [None, "no_alert", "no_alert", "alert", "no_alert"],
)


def px(p: Any) -> str:
    return f"<h1>Pixel 9</h1><p>The Google phone.</p><h2>Buy</h2><p>Pixel 9 128 GB: <strong>${p}</strong></p><p>Free shipping.</p>"


case(
    "x-pixel-price",
    "wrong_condition",
    "Alert me if the Pixel 9 price drops below $600.",
    "Pixel 9",
    "Google Store",
    [px("799"), px("699"), px("649"), px("799")],
    [None, "no_alert", "no_alert", "no_alert"],
)


def changelog(sections: Any) -> str:
    return "<h1>Changelog</h1>" + "".join(
        f"<h2>{h}</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
        for h, items in sections
    )


c27 = ("0.27.2 (27th August, 2024)", ["Reintroduced supposedly-private URLTypes shortcut."])
c28 = (
    "0.28.0 (28th November, 2024)",
    [
        "The deprecated proxies argument has now been removed.",
        "The deprecated app argument has now been removed.",
    ],
)
c28b = (c28[0], [*c28[1], "The verify argument as a string will be removed in 1.0."])
case(
    "x-httpx-mention-1-0",
    "wrong_condition",
    "Alert me when httpx 1.0 is released.",
    "Changelog - HTTPX",
    "HTTPX",
    [
        changelog([c27]),
        changelog([c28, c27]),
        changelog([c28b, c27]),
        changelog([("1.0.0 (2nd March, 2025)", ["The 1.0 release is here."]), c28b, c27]),
    ],
    [None, "no_alert", "no_alert", "alert"],
)


# known misses without an LLM: y-debian-13 (a freeze date reads like a release date) and
# y-pep-accepted (the page says 'PEP', the query 'Python Enhancement Proposal')


def deb(rows: Any) -> str:
    return (
        "<h1>Debian Releases</h1><p>Debian always has at least one release in active maintenance.</p><h2>Index of releases</h2><ul>"
        + "".join(f"<li><strong>{a}</strong> &mdash; {b}</li>" for a, b in rows)
        + "</ul>"
    )


d12 = ("Debian 12 (bookworm)", "current stable release, released June 10th, 2023")
case(
    "y-debian-13",
    "release",
    "Let me know once Debian 13 trixie is released.",
    "Debian Releases",
    "Debian",
    [
        deb([("Debian 13 (trixie)", "testing, no release date has been set"), d12]),
        deb([("Debian 13 (trixie)", "testing, frozen since March 15th, 2025"), d12]),
        deb(
            [
                ("Debian 13 (trixie)", "current stable release, released August 9th, 2025"),
                ("Debian 12 (bookworm)", "oldstable release, released June 10th, 2023"),
            ]
        ),
        deb(
            [
                ("Debian 14 (forky)", "testing, no release date has been set"),
                ("Debian 13 (trixie)", "current stable release, released August 9th, 2025"),
                ("Debian 12 (bookworm)", "oldstable release, released June 10th, 2023"),
            ]
        ),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def brew(oses: Any) -> str:
    return (
        "<h1>Homebrew installation</h1><h2>macOS requirements</h2><p>Homebrew supports these macOS versions:</p><ul>"
        + "".join(f"<li>{o}</li>" for o in oses)
        + "</ul><h2>Linux</h2><p>Homebrew on Linux needs glibc 2.13 or newer.</p>"
    )


case(
    "y-brew-monterey",
    "policy",
    "Ping me if Homebrew drops support for macOS Monterey.",
    "Installation - Homebrew",
    "Homebrew",
    [
        brew(
            ["macOS Sequoia (15)", "macOS Sonoma (14)", "macOS Ventura (13)", "macOS Monterey (12)"]
        ),
        brew(
            [
                "macOS Tahoe (26)",
                "macOS Sequoia (15)",
                "macOS Sonoma (14)",
                "macOS Ventura (13)",
                "macOS Monterey (12)",
            ]
        ),
        brew(["macOS Tahoe (26)", "macOS Sequoia (15)", "macOS Sonoma (14)", "macOS Ventura (13)"]),
    ],
    [None, "no_alert", "alert"],
)


def pg(rows: Any) -> str:
    return (
        "<h1>PostgreSQL Versioning Policy</h1><h2>Releases</h2><table><tr><th>Version</th><th>Current minor</th><th>Supported</th><th>First release</th></tr>"
        + "".join(
            f"<tr><td>{a}</td><td>{b}</td><td>{c}</td><td>{d}</td></tr>" for a, b, c, d in rows
        )
        + "</table>"
    )


r17 = ("17", "17.5", "Yes", "September 26, 2024")
r16 = ("16", "16.9", "Yes", "September 14, 2023")
case(
    "y-postgres-18",
    "release",
    "Tell me when PostgreSQL 18 is released.",
    "Versioning policy",
    "PostgreSQL",
    [
        pg([r17, r16]),
        pg(
            [
                ("17", "17.6", "Yes", "September 26, 2024"),
                ("16", "16.10", "Yes", "September 14, 2023"),
            ]
        ),
        pg(
            [
                ("18", "18.0", "Yes", "September 25, 2025"),
                ("17", "17.6", "Yes", "September 26, 2024"),
                ("16", "16.10", "Yes", "September 14, 2023"),
            ]
        ),
        pg(
            [
                ("18", "18.1", "Yes", "September 25, 2025"),
                ("17", "17.7", "Yes", "September 26, 2024"),
                ("16", "16.11", "Yes", "September 14, 2023"),
            ]
        ),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def js(s: Any) -> str:
    return f"<h1>JSConf EU 2025</h1><p>Berlin, June 2025.</p><h2>Tickets</h2><p>{s}</p><h2>Speakers</h2><p>To be announced.</p>"


case(
    "y-jsconf-soldout",
    "availability",
    "Alert me when tickets for JSConf EU 2025 sell out.",
    "JSConf EU 2025",
    "JSConf EU",
    [
        js("Tickets are available now. Get yours!"),
        js("Only a few tickets left. Get yours!"),
        js("Sold out! Thank you all."),
        js("Sold out! Join the waitlist."),
    ],
    [None, "no_alert", "alert", "no_alert"],
)


def pep(rows: Any) -> str:
    return (
        "<h1>PEP index</h1><h2>Index by category</h2><table><tr><th>PEP</th><th>Title</th><th>Status</th></tr>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
        + "</table>"
    )


p1 = ("PEP 750", "Template Strings", "Draft")
p2 = ("PEP 751", "A file format to record Python dependencies", "Draft")
p3 = ("PEP 749", "Implementing PEP 649", "Draft")
case(
    "y-pep-accepted",
    "policy",
    "Notify me whenever a new Python Enhancement Proposal is accepted.",
    "PEP index",
    "Python",
    [
        pep([p1, p2, p3]),
        pep([(p1[0], p1[1], "Accepted"), p2, p3]),
        pep(
            [
                (p1[0], p1[1], "Accepted"),
                p2,
                p3,
                ("PEP 752", "Implicit namespaces for package repositories", "Draft"),
            ]
        ),
        pep(
            [
                (p1[0], p1[1], "Accepted"),
                (p2[0], p2[1], "Accepted"),
                p3,
                ("PEP 752", "Implicit namespaces for package repositories", "Draft"),
            ]
        ),
    ],
    [None, "alert", "no_alert", "alert"],
)
