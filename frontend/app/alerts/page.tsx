"use client";

import Link from "next/link";
import { useCallback, useMemo, useState } from "react";
import { AcknowledgeButton } from "@/components/AlertEvidence";
import { EmptyState, ErrorNote, ExternalLink, RelativeTime, SeverityBadge, Spinner } from "@/components/ui";
import { asPage } from "@/lib/api";
import { formatScore, hostOf } from "@/lib/format";
import { usePaginated, useResource } from "@/lib/hooks";
import type { Alert, Query } from "@/lib/types";
import { useAlertStream, type StreamStatus } from "@/lib/useAlertStream";

function StreamIndicator({ status }: { status: StreamStatus }) {
  const text =
    status.state === "live"
      ? "Live"
      : status.state === "connecting"
        ? "Connecting…"
        : status.retryIn
          ? `Reconnecting in ${status.retryIn} s…`
          : "Reconnecting…";
  return (
    <span
      className={`stream-state stream-${status.state}`}
      data-testid="stream-state"
      data-state={status.state}
      role="status"
      title={status.lastError ? `Last problem: ${status.lastError}` : undefined}
    >
      <span className="dot" aria-hidden="true" />
      <span>{text}</span>
      {status.state === "reconnecting" && status.lastError && <span className="visually-hidden"> ({status.lastError})</span>}
    </span>
  );
}

function preview(alert: Alert): string | null {
  const change = alert.details?.changes?.[0];
  if (!change) return null;
  const text = (change.after || change.before || "").trim();
  return text.length > 220 ? `${text.slice(0, 217)}…` : text;
}

function AlertItem({
  alert,
  queryText,
  isNew,
  onChange,
}: {
  alert: Alert;
  queryText: string | null;
  isNew: boolean;
  onChange: (a: Alert) => void;
}) {
  const url = alert.details?.url;
  const changes = alert.details?.changes?.length ?? 0;
  const snippet = preview(alert);
  return (
    <li
      className={`alert-item severity-edge-${alert.severity}${alert.acknowledged_at ? " is-acked" : ""}${isNew ? " is-new" : ""}`}
      data-testid="alert-item"
      data-alert-id={alert.id}
      data-acknowledged={alert.acknowledged_at ? "true" : "false"}
    >
      <div className="alert-item-head">
        <SeverityBadge severity={alert.severity} />
        {isNew && <span className="badge badge-new">New</span>}
        <span className="score small">Score {formatScore(alert.score)}</span>
        <span className="muted small">
          <RelativeTime iso={alert.created_at} />
        </span>
      </div>
      <h2 className="alert-item-title">
        <Link href={`/alerts/${alert.id}`} className="stretched" data-testid="alert-link">
          {alert.summary || "A relevant change was detected."}
        </Link>
      </h2>
      {snippet && <p className="alert-snippet small">{snippet}</p>}
      <div className="alert-item-foot small">
        <span className="muted">
          {queryText ? <>Monitor: {queryText}</> : null}
          {queryText && url ? " · " : null}
          {url ? <ExternalLink href={url} className="raise">{hostOf(url)}</ExternalLink> : null}
          {changes > 0 ? ` · ${changes} ${changes === 1 ? "change" : "changes"}` : null}
        </span>
        <span className="raise">
          <AcknowledgeButton alert={alert} onAcknowledged={onChange} />
        </span>
      </div>
    </li>
  );
}

export default function AlertsPage() {
  const [unackedOnly, setUnackedOnly] = useState(false);
  const feed = usePaginated<Alert>("/alerts", { unacknowledged: unackedOnly ? "true" : undefined }, 25);
  const { setItems, refreshTop } = feed;
  const queries = useResource(async (a, signal) => asPage<Query>(await a.get("/queries", { limit: 100 }, signal)).items, "query-names");
  const [newIds, setNewIds] = useState<Set<string>>(() => new Set());
  const [announcement, setAnnouncement] = useState("");

  const names = useMemo(() => new Map((queries.data ?? []).map((q) => [q.id, q.raw_query])), [queries.data]);

  // Alerts from the stream are kept apart from the fetched pages, so a page load that
  // finishes after an event arrived cannot drop it.
  const [live, setLive] = useState<Alert[]>([]);

  const onAlert = useCallback((alert: Alert) => {
    setLive((prev) => [alert, ...prev.filter((a) => a.id !== alert.id)]);
    setNewIds((prev) => new Set(prev).add(alert.id));
    setAnnouncement(`New ${alert.severity} alert: ${alert.summary ?? "a relevant change"}`);
  }, []);
  const onReconnected = useCallback(() => {
    void refreshTop().catch(() => undefined);
  }, [refreshTop]);
  const stream = useAlertStream(onAlert, onReconnected);

  const update = (u: Alert) => {
    setItems((prev) => prev.map((a) => (a.id === u.id ? u : a)));
    setLive((prev) => prev.map((a) => (a.id === u.id ? u : a)));
  };
  const merged = useMemo(() => {
    const fetched = new Set(feed.items.map((a) => a.id));
    return [...live.filter((a) => !fetched.has(a.id)), ...feed.items];
  }, [live, feed.items]);
  // Acknowledged items stay in place (showing "Acknowledged") until the next load.
  const visible = merged;

  return (
    <div className="page">
      <title>Alerts · Torale</title>
      <div className="page-head">
        <div>
          <h1>Alerts</h1>
          <p className="muted">Changes that matter for your monitors, newest first. New alerts appear here as they happen.</p>
        </div>
        <StreamIndicator status={stream} />
      </div>
      <div className="toolbar">
        <label className="checkbox">
          <input type="checkbox" checked={unackedOnly} onChange={(e) => setUnackedOnly(e.target.checked)} data-testid="filter-unacknowledged" />
          Only unacknowledged
        </label>
      </div>
      <p className="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      {feed.loading ? (
        <Spinner label="Loading alerts…" />
      ) : feed.error ? (
        <ErrorNote error={feed.error} onRetry={feed.reload} testId="list-error" />
      ) : visible.length === 0 ? (
        <div data-testid="alert-feed" className="alert-feed-empty">
          <EmptyState title={unackedOnly ? "Nothing left to acknowledge" : "No alerts yet"} testId="alerts-empty">
            {unackedOnly ? (
              "You're all caught up."
            ) : (
              <>
                When a watched page changes in a way that matters, the alert shows up here instantly.{" "}
                <Link href="/">Create a monitor</Link> if you haven&apos;t yet.
              </>
            )}
          </EmptyState>
        </div>
      ) : (
        <>
          <ul className="alert-feed" data-testid="alert-feed">
            {visible.map((a) => (
              <AlertItem key={a.id} alert={a} queryText={names.get(a.query_id) ?? null} isNew={newIds.has(a.id)} onChange={update} />
            ))}
          </ul>
          {feed.nextCursor && (
            <div className="load-more">
              <button type="button" className="btn" onClick={feed.loadMore} disabled={feed.loadingMore} data-testid="load-more">
                {feed.loadingMore ? "Loading…" : "Load more"}
              </button>
              <ErrorNote error={feed.loadMoreError} testId="list-error" />
            </div>
          )}
        </>
      )}
    </div>
  );
}
