"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useState, type FormEvent } from "react";
import { useAuth } from "./AuthProvider";
import { ErrorNote, Notice, Spinner } from "./ui";

function safeNext(): string {
  if (typeof window === "undefined") return "/";
  const next = new URLSearchParams(window.location.search).get("next");
  // Only same-site paths: never redirect to another origin.
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function authErrorText(err: unknown, mode: "sign-in" | "sign-up", url: string | undefined): string {
  const e = err as { message?: string; status?: number; name?: string } | null;
  const message = e?.message ?? "";
  if (e?.name === "AuthRetryableFetchError" || /failed to fetch|networkerror|load failed/i.test(message)) {
    return `Can't reach the sign-in service${url ? ` at ${url}` : ""}. Check your connection and try again.`;
  }
  if (e?.status === 429) return "Too many attempts — slow down and try again in a minute.";
  if (mode === "sign-in" && (e?.status === 400 || /invalid login/i.test(message))) {
    return message || "That email and password don't match an account.";
  }
  return message || "Something went wrong. Try again.";
}

export function AuthForm({ mode }: { mode: "sign-in" | "sign-up" }) {
  const { supabase, session, loading, config, notice, setNotice } = useAuth();
  const router = useRouter();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [confirmSent, setConfirmSent] = useState(false);

  useEffect(() => {
    if (!loading && session) router.replace(safeNext());
  }, [loading, session, router]);

  const isSignIn = mode === "sign-in";

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (!supabase) return;
    setError(null);
    setNotice(null);
    if (!email.trim()) return setError("Enter your email address.");
    if (!password) return setError("Enter your password.");
    setBusy(true);
    try {
      if (isSignIn) {
        const { error: err } = await supabase.auth.signInWithPassword({ email: email.trim(), password });
        if (err) throw err;
      } else {
        const { data, error: err } = await supabase.auth.signUp({ email: email.trim(), password });
        if (err) throw err;
        if (!data.session) setConfirmSent(true);
      }
      // On success the session listener redirects.
    } catch (err) {
      setError(authErrorText(err, mode, config?.supabaseUrl));
    } finally {
      setBusy(false);
    }
  }

  if (loading) {
    return (
      <div className="page-loading">
        <Spinner label="Loading…" />
      </div>
    );
  }

  return (
    <div className="auth-wrap">
      <title>{isSignIn ? "Sign in · Torale" : "Create account · Torale"}</title>
      <section className="auth-card" aria-labelledby="auth-title">
        <h1 id="auth-title">{isSignIn ? "Sign in to Torale" : "Create your Torale account"}</h1>
        <p className="muted">
          {isSignIn
            ? "Watch the web in plain language. We'll tell you when it matters."
            : "Describe what you want to know; Torale finds the pages and watches them for you."}
        </p>
        {notice && (
          <Notice tone="warning" testId="auth-notice">
            {notice}
          </Notice>
        )}
        {confirmSent ? (
          <Notice tone="success" testId="signup-confirm">
            Check <strong>{email}</strong> for a confirmation link, then <Link href="/sign-in">sign in</Link>.
          </Notice>
        ) : (
          <form onSubmit={submit} noValidate data-testid={isSignIn ? "sign-in-form" : "sign-up-form"}>
            <div className="field">
              <label htmlFor="email">Email</label>
              <input
                id="email"
                name="email"
                type="email"
                autoComplete="email"
                inputMode="email"
                required
                value={email}
                onChange={(e) => setEmail(e.target.value)}
              />
            </div>
            <div className="field">
              <label htmlFor="password">Password</label>
              <input
                id="password"
                name="password"
                type="password"
                autoComplete={isSignIn ? "current-password" : "new-password"}
                required
                minLength={isSignIn ? undefined : 6}
                aria-describedby={isSignIn ? undefined : "password-hint"}
                value={password}
                onChange={(e) => setPassword(e.target.value)}
              />
              {!isSignIn && (
                <p className="hint" id="password-hint">
                  At least 6 characters.
                </p>
              )}
            </div>
            <ErrorNote error={error} />
            <button type="submit" className="btn btn-primary btn-block" disabled={busy || !supabase} data-testid="auth-submit">
              {busy ? (isSignIn ? "Signing in…" : "Creating account…") : isSignIn ? "Sign in" : "Create account"}
            </button>
          </form>
        )}
        <p className="auth-switch">
          {isSignIn ? (
            <>
              New to Torale? <Link href="/sign-up">Create an account</Link>
            </>
          ) : (
            <>
              Already have an account? <Link href="/sign-in">Sign in</Link>
            </>
          )}
        </p>
      </section>
    </div>
  );
}
