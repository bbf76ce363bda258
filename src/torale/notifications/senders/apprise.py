"""Apprise URLs (Slack, Discord, Telegram, ntfy, json://, …): one notification, title + text.

What the SSRF guard covers here: schemes that act on the worker's own machine (desktop
notifications, syslog, USB) are refused; for services whose host is chosen by the user (json://,
form://, xml://, gotify://, ntfy://, matrix://, …) and for any other URL whose host looks like a
network name, the host must pass the guard, at creation and again before each send. Apprise
connects with its own HTTP stack, so the connect-time re-check and the redirect refusal of
webhooks apply only as far as Apprise allows (redirects are switched off where the plugin
supports it); a host that re-resolves between the check and the connection is not caught.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import apprise

from torale.config import Settings
from torale.net import ssrf
from torale.notifications.messages import Message
from torale.notifications.senders import DeliveryError, Destination, SendResult

# Act on the machine running the worker, not on a remote service.
LOCAL_SCHEMES = frozenset(
    {"dbus", "gio", "glib", "gnome", "kde", "qt", "macosx", "windows", "syslog", "blink1"}
)
# The URL's host is the server Apprise connects to (self-hosted services, generic HTTP).
USER_HOST_SCHEMES = frozenset(
    {
        "json", "jsons", "form", "forms", "xml", "xmls", "apprise", "apprises",
        "gotify", "gotifys", "ntfys", "mmost", "mmosts", "rocket", "rockets",
        "matrix", "matrixs", "nctalk", "nctalks", "ncloud", "nclouds", "emby", "embys",
        "jellyfin", "jellyfins", "kodi", "kodis", "xbmc", "xbmcs", "hassio", "hassios",
        "mastodon", "mastodons", "toot", "toots", "misskey", "misskeys", "humhub", "humhubs",
        "synology", "synologys", "lametric", "lametrics", "gorush", "gorushs",
        "enigma2", "enigma2s", "goalert", "goalerts", "evolution", "evolutions",
        "onebot", "onebots", "opsimate", "opsimates", "parsep", "parseps", "pinglet",
        "pinglets", "pjet", "pjets", "signal", "signals", "smseagle", "smseagles", "bark",
        "barks", "mqtt", "mqtts", "amqp", "amqps", "irc", "ircs", "xmpp", "xmpps", "growl",
        "smpp", "smpps", "rsyslog", "deltachat", "deltachats", "flowtriq", "flowtriqs",
    }
)  # fmt: skip


def scheme_of(url: str) -> str:
    return url.partition("://")[0].strip().lower()


def parse_apprise_url(url: str) -> Any:
    """The Apprise plugin for `url`; ValueError when Apprise cannot use it."""
    scheme = scheme_of(url)
    if "://" not in url or not scheme:
        raise ValueError("is not an Apprise URL (expected scheme://...)")
    if scheme in LOCAL_SCHEMES:
        raise ValueError(f"{scheme}:// notifies the server itself and is not allowed")
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValueError("is not a valid Apprise URL (unknown service or missing parts)")
    return plugin


def _looks_like_network_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return "." in host or host.lower() == "localhost"


async def check_apprise_target(plugin: Any, url: str, settings: Settings) -> None:
    """Refuse an Apprise URL whose host the SSRF guard refuses (see the module docstring)."""
    host = getattr(plugin, "host", None)
    if not isinstance(host, str) or not host:
        return
    scheme = scheme_of(url)
    user_host = scheme in USER_HOST_SCHEMES
    if not user_host and not _looks_like_network_host(host):
        return  # a token or id in the host position, not a server
    port = getattr(plugin, "port", None)
    literal = f"[{host}]" if ":" in host else host
    target = f"http://{literal}:{port}/" if isinstance(port, int) else f"http://{literal}/"
    try:
        await ssrf.check_url(target, allow_private=settings.allow_private_urls)
    except ssrf.UnsafeURLError as exc:
        if str(exc).startswith("cannot resolve host") and not user_host:
            return  # not a host after all (a dotted token); the service's own host is used
        raise


def display_url(plugin: Any) -> str:
    """The URL with its secrets masked, as Apprise prints it."""
    return str(plugin.url(privacy=True))


async def send_apprise(
    settings: Settings, destination: Destination, message: Message
) -> SendResult:
    url = str(destination.config.get("url", ""))
    try:
        plugin = parse_apprise_url(url)
        await check_apprise_target(plugin, url, settings)
    except ssrf.UnsafeURLError as exc:
        unresolved = str(exc).startswith("cannot resolve host")
        raise DeliveryError(f"refused: {exc}", retryable=unresolved) from None
    except ValueError as exc:
        raise DeliveryError(f"the Apprise URL {exc}", retryable=False) from None
    timeout = settings.webhook_timeout
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    if hasattr(plugin, "redirects"):
        plugin.redirects = False
    notifier = apprise.Apprise()
    notifier.add(plugin)
    try:
        async with asyncio.timeout(2 * timeout + 5):
            result = await notifier.async_notify(
                body=message.text, title=message.subject, body_format=apprise.NotifyFormat.TEXT
            )
    except TimeoutError:
        raise DeliveryError(
            f"Apprise timed out after {2 * timeout + 5:g}s", retryable=True
        ) from None
    if result:
        return SendResult()
    problems = [
        str(entry.message)
        for entry in result.logs()
        if str(getattr(entry, "level", "")).upper() in ("WARNING", "ERROR", "CRITICAL")
    ]
    detail = "; ".join(problems)[-500:] or "the service did not accept the notification"
    # Apprise does not say whether a failure is permanent; retry until the attempts run out.
    raise DeliveryError(f"Apprise: {detail}", retryable=True)
