import type { CheckOutcome, Delivery, QueryStatus } from "./types";

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatRelative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return iso;
  const seconds = Math.round((then - now) / 1000);
  const abs = Math.abs(seconds);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (abs < 45) return seconds <= 0 ? "just now" : "in a few seconds";
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 30) return rtf.format(Math.round(seconds / 86400), "day");
  return formatDateTime(iso);
}

export function formatInterval(seconds: number | null | undefined): string {
  if (!seconds) return "—";
  if (seconds % 86400 === 0) return seconds === 86400 ? "daily" : `every ${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? "hourly" : `every ${seconds / 3600} h`;
  if (seconds % 60 === 0) return `every ${seconds / 60} min`;
  return `every ${seconds} s`;
}

export const INTERVAL_OPTIONS: { value: number; label: string }[] = [
  { value: 300, label: "Every 5 minutes" },
  { value: 900, label: "Every 15 minutes" },
  { value: 1800, label: "Every 30 minutes" },
  { value: 3600, label: "Every hour" },
  { value: 21600, label: "Every 6 hours" },
  { value: 43200, label: "Every 12 hours" },
  { value: 86400, label: "Every day" },
];

export function formatScore(score: number | null | undefined): string {
  if (score === null || score === undefined || Number.isNaN(score)) return "—";
  return score <= 1 ? score.toFixed(2) : String(Math.round(score * 100) / 100);
}

export function formatPercent(value: number | null | undefined): string | null {
  if (value === null || value === undefined || Number.isNaN(value)) return null;
  return `${Math.round((value <= 1 ? value * 100 : value))}%`;
}

export const STATUS_LABELS: Record<string, string> = {
  discovering: "Finding sources",
  active: "Active",
  needs_sources: "Needs sources",
  failed: "Failed",
  paused: "Paused",
  errored: "Errored",
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
};

export function statusLabel(status: QueryStatus | null | undefined): string {
  if (!status) return "Unknown";
  return STATUS_LABELS[status] ?? status.replace(/_/g, " ");
}

export function outcomeText(outcome: CheckOutcome | null | undefined, error?: string | null): string {
  switch (outcome) {
    case "unchanged":
      return "No change since the last check.";
    case "changed":
      return "The page changed, but nothing that matters for this monitor.";
    case "alerted":
      return "A relevant change was found — an alert was created.";
    case "not_modified":
      return "The server reported the page as not modified.";
    case "error":
      return error ? `The check failed: ${error}` : "The check failed.";
    default:
      return error ? `The check failed: ${error}` : "No outcome recorded.";
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

const DELIVERY_STATUS: Record<string, string> = {
  pending: "Queued",
  queued: "Queued",
  sending: "Sending",
  retrying: "Will retry",
  sent: "Delivered",
  delivered: "Delivered",
  succeeded: "Delivered",
  failed: "Failed",
  skipped: "Skipped",
  suppressed: "Suppressed",
};

export function deliveryStatusLabel(status: string): string {
  return DELIVERY_STATUS[status] ?? status.replace(/_/g, " ");
}

/** "HTTP 404" for webhooks and Apprise, "SMTP 550" for email. */
export function responseCodeLabel(code: number, kind?: string | null): string {
  return kind === "email" ? `SMTP ${code}` : `HTTP ${code}`;
}

/** A plain-words explanation of a delivery attempt's outcome. */
export function explainDelivery(d: Delivery, kindHint?: string | null): string {
  const code = d.response_code;
  const status = d.status;
  const kind = d.channel_kind ?? d.kind ?? kindHint ?? null;
  const label = (c: number) => responseCodeLabel(c, kind);
  if (status === "sent" || status === "delivered" || status === "succeeded") {
    return code ? `Accepted by the receiver (${label(code)}).` : "Delivered.";
  }
  if (kind === "email" && code !== null && code !== undefined) {
    const reason =
      code >= 500
        ? `The mail server rejected the message (${label(code)}): check the address.`
        : code >= 400
          ? `The mail server deferred the message (${label(code)}).`
          : `Unexpected answer from the mail server (${label(code)}).`;
    return `${reason}${d.error ? ` ${d.error}` : ""}${status === "retrying" ? " It will be retried automatically." : ""}`;
  }
  if (status === "pending" || status === "queued") return "Waiting to be sent.";
  if (status === "skipped" || status === "suppressed") {
    return d.error || "Not sent because of your preferences (minimum severity, quiet hours or digest mode).";
  }
  let reason: string;
  if (code === null || code === undefined) {
    reason = d.error
      ? `Could not reach the receiver: ${d.error}`
      : "Could not reach the receiver (no response).";
  } else if (code === 401 || code === 403) {
    reason = `The receiver refused it (${label(code)}): check the credentials or headers.`;
  } else if (code === 404 || code === 410) {
    reason = `The receiver's address doesn't exist (${label(code)}): check the URL.`;
  } else if (code === 413) {
    reason = "The receiver said the message was too large (HTTP 413).";
  } else if (code === 429) {
    reason = "The receiver is rate-limiting us (HTTP 429).";
  } else if (code >= 500) {
    reason = `The receiver had a server error (${label(code)}).`;
  } else if (code >= 400) {
    reason = `The receiver rejected it (${label(code)}).`;
  } else {
    reason = `Unexpected response (${label(code)}).`;
  }
  if (d.error && code !== null && code !== undefined) reason += ` ${d.error}`;
  if (status === "retrying") reason += " It will be retried automatically.";
  return reason;
}
