"use client";

import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, useState, type ReactNode } from "react";
import { useAuth } from "./AuthProvider";
import { Spinner } from "./ui";

const PUBLIC_PATHS = ["/sign-in", "/sign-up"];

const NAV = [
  { href: "/", label: "Monitors", match: (p: string) => p === "/" || p.startsWith("/monitors") },
  { href: "/alerts", label: "Alerts", match: (p: string) => p.startsWith("/alerts") },
  { href: "/settings", label: "Settings", match: (p: string) => p.startsWith("/settings") },
];

function Logo() {
  return (
    <svg width="26" height="26" viewBox="0 0 32 32" aria-hidden="true" focusable="false">
      <rect width="32" height="32" rx="8" fill="var(--accent)" />
      <circle cx="16" cy="16" r="7.5" fill="none" stroke="#fff" strokeWidth="2.5" />
      <circle cx="16" cy="16" r="2.5" fill="#fff" />
      <path d="M16 4.5v4M16 23.5v4M4.5 16h4M23.5 16h4" stroke="#fff" strokeWidth="2.5" strokeLinecap="round" />
    </svg>
  );
}

export function AppShell({ children }: { children: ReactNode }) {
  const { loading, session, configError, signOut } = useAuth();
  const pathname = usePathname() || "/";
  const router = useRouter();
  const isPublic = PUBLIC_PATHS.includes(pathname);
  const [signingOut, setSigningOut] = useState(false);

  useEffect(() => {
    if (loading || configError) return;
    if (!session && !isPublic) {
      const next = `${window.location.pathname}${window.location.search}`;
      router.replace(next && next !== "/" ? `/sign-in?next=${encodeURIComponent(next)}` : "/sign-in");
    }
  }, [loading, session, isPublic, configError, router]);

  let body: ReactNode;
  if (configError) {
    body = (
      <div className="panel center-panel" role="alert">
        <h1>Torale can&apos;t start</h1>
        <p>{configError}</p>
        <button type="button" className="btn" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    );
  } else if (isPublic) {
    body = children;
  } else if (loading || !session) {
    body = (
      <div className="page-loading">
        <Spinner label="Loading your workspace…" />
      </div>
    );
  } else {
    body = children;
  }

  const showNav = !isPublic && !!session;

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <Link href={session ? "/" : "/sign-in"} className="brand" aria-label="Torale home">
            <Logo />
            <span>Torale</span>
          </Link>
          {showNav && (
            <nav aria-label="Main" className="mainnav">
              <ul>
                {NAV.map((item) => {
                  const active = item.match(pathname);
                  return (
                    <li key={item.href}>
                      <Link href={item.href} aria-current={active ? "page" : undefined} className={active ? "active" : undefined}>
                        {item.label}
                      </Link>
                    </li>
                  );
                })}
              </ul>
            </nav>
          )}
          {showNav && (
            <div className="account">
              <span className="account-email" title={session?.user.email ?? undefined} data-testid="account-email">
                {session?.user.email}
              </span>
              <button
                type="button"
                className="btn btn-ghost btn-sm"
                data-testid="sign-out-button"
                disabled={signingOut}
                onClick={async () => {
                  setSigningOut(true);
                  await signOut();
                  setSigningOut(false);
                  router.replace("/sign-in");
                }}
              >
                {signingOut ? "Signing out…" : "Sign out"}
              </button>
            </div>
          )}
        </div>
      </header>
      <main id="main" className="container" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}
