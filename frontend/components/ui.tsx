"use client";

import { useEffect, useState, type ReactNode } from "react";
import { describeError } from "@/lib/api";
import { formatDateTime, formatRelative, statusLabel } from "@/lib/format";
import type { Severity } from "@/lib/types";

export function Spinner({ label, inline = false }: { label?: string; inline?: boolean }) {
  return (
    <span className={inline ? "spinner-wrap inline" : "spinner-wrap"} role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label && <span className="spinner-label">{label}</span>}
    </span>
  );
}

/** An error sentence; `testId` defaults to "form-error" so tests can find it. */
export function ErrorNote({
  error,
  testId = "form-error",
  onRetry,
  id,
}: {
  error: unknown;
  testId?: string;
  onRetry?: () => void;
  id?: string;
}) {
  if (!error) return null;
  const text = typeof error === "string" ? error : describeError(error);
  return (
    <div className="error-note" role="alert" data-testid={testId} id={id}>
      <svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" focusable="false">
        <circle cx="8" cy="8" r="7" fill="currentColor" />
        <path d="M8 4.5v4.5M8 11.2v.3" stroke="#fff" strokeWidth="1.8" strokeLinecap="round" />
      </svg>
      <span>{text}</span>
      {onRetry && (
        <button type="button" className="btn btn-link" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function FieldError({ id, message }: { id: string; message?: string | null }) {
  if (!message) return null;
  return (
    <p className="field-error" id={id} data-testid="field-error" role="alert">
      {message}
    </p>
  );
}

export function Notice({ children, tone = "info", testId }: { children: ReactNode; tone?: "info" | "success" | "warning"; testId?: string }) {
  return (
    <div className={`notice notice-${tone}`} role="status" data-testid={testId}>
      {children}
    </div>
  );
}

export function StatusBadge({ status, testId = "status-badge" }: { status: string | null | undefined; testId?: string }) {
  const s = status ?? "unknown";
  return (
    <span className={`badge status-${s}`} data-testid={testId} data-status={s}>
      {s === "discovering" || s === "running" || s === "queued" ? <span className="pulse" aria-hidden="true" /> : null}
      {statusLabel(s)}
    </span>
  );
}

export function SeverityBadge({ severity }: { severity: Severity | string }) {
  return (
    <span className={`badge severity-${severity}`} data-testid="severity-badge" data-severity={severity}>
      {severity === "high" ? "High" : severity === "medium" ? "Medium" : severity === "low" ? "Low" : severity}
      <span className="visually-hidden"> severity</span>
    </span>
  );
}

/** A <time> that says "5 minutes ago" and re-renders every 30 s. */
export function RelativeTime({ iso, fallback = "never" }: { iso: string | null | undefined; fallback?: string }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, []);
  if (!iso) return <span className="muted">{fallback}</span>;
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {formatRelative(iso, now)}
    </time>
  );
}

export function EmptyState({ title, children, testId }: { title: string; children?: ReactNode; testId?: string }) {
  return (
    <div className="empty-state" data-testid={testId}>
      <svg width="40" height="40" viewBox="0 0 40 40" aria-hidden="true" focusable="false">
        <circle cx="18" cy="18" r="11" fill="none" stroke="currentColor" strokeWidth="2.5" />
        <path d="M26 26l8 8" stroke="currentColor" strokeWidth="2.5" strokeLinecap="round" />
      </svg>
      <h3>{title}</h3>
      {children && <div className="empty-body">{children}</div>}
    </div>
  );
}

export function ExternalLink({ href, children, className }: { href: string; children?: ReactNode; className?: string }) {
  const safe = /^https?:\/\//i.test(href);
  if (!safe) return <span className={className}>{children ?? href}</span>;
  return (
    <a href={href} target="_blank" rel="noopener noreferrer" className={className}>
      {children ?? href}
      <span className="visually-hidden"> (opens in a new tab)</span>
    </a>
  );
}

/** A two-step confirm for destructive actions: no window.confirm, keyboard friendly. */
export function ConfirmButton({
  label,
  confirmLabel,
  question,
  onConfirm,
  busy,
  testId,
  className = "btn btn-danger-ghost",
}: {
  label: string;
  confirmLabel: string;
  question: string;
  onConfirm: () => void;
  busy?: boolean;
  testId?: string;
  className?: string;
}) {
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className={className} onClick={() => setAsking(true)} data-testid={testId} disabled={busy}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span className="confirm-q">{question}</span>
      <button
        type="button"
        className="btn btn-danger btn-sm"
        autoFocus
        disabled={busy}
        onClick={onConfirm}
        data-testid={testId ? `${testId}-confirm` : undefined}
      >
        {busy ? "Working…" : confirmLabel}
      </button>
      <button type="button" className="btn btn-ghost btn-sm" onClick={() => setAsking(false)} disabled={busy}>
        Cancel
      </button>
    </span>
  );
}
