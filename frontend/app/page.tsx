"use client";

import Link from "next/link";
import { useCallback, useMemo, useState } from "react";
import { useApi } from "@/components/AuthProvider";
import { CreateMonitorForm } from "@/components/CreateMonitorForm";
import { NewMonitorReview } from "@/components/SourceReview";
import { EmptyState, ErrorNote, RelativeTime, SeverityBadge, Spinner, StatusBadge } from "@/components/ui";
import { asPage } from "@/lib/api";
import { formatInterval } from "@/lib/format";
import { useInterval, usePaginated, useResource } from "@/lib/hooks";
import type { Alert, Query } from "@/lib/types";

function lastChecked(query: Query): string | null {
  let latest: string | null = null;
  for (const s of query.sources ?? []) {
    if (s.last_checked_at && (!latest || s.last_checked_at > latest)) latest = s.last_checked_at;
  }
  return latest;
}

function MonitorRow({ query, lastAlert }: { query: Query; lastAlert: Alert | null }) {
  const sources = query.sources ?? [];
  const errored = sources.filter((s) => s.status === "errored").length;
  const lastAlertAt = lastAlert?.created_at ?? query.last_alert_at ?? null;
  return (
    <li className="monitor-row" data-testid="monitor-row" data-query-id={query.id} data-status={query.status}>
      <div className="monitor-main">
        <Link href={`/monitors/${query.id}`} className="monitor-title" data-testid="monitor-link">
          {query.raw_query}
        </Link>
        {query.refined_query && query.refined_query !== query.raw_query && (
          <p className="muted small monitor-refined">{query.refined_query}</p>
        )}
        <p className="monitor-facts small">
          <span>
            {sources.length} {sources.length === 1 ? "page" : "pages"}
          </span>
          <span>{formatInterval(query.check_interval_seconds)}</span>
          {errored > 0 && (
            <span className="text-danger">
              {errored} {errored === 1 ? "page has" : "pages have"} errors
            </span>
          )}
        </p>
      </div>
      <div className="monitor-side">
        <StatusBadge status={query.status} />
        <dl className="mini-facts small">
          <div>
            <dt>Last check</dt>
            <dd data-testid="monitor-last-check">
              <RelativeTime iso={lastChecked(query)} />
            </dd>
          </div>
          <div>
            <dt>Last alert</dt>
            <dd data-testid="monitor-last-alert">
              {lastAlertAt ? (
                <>
                  {lastAlert && <SeverityBadge severity={lastAlert.severity} />} <RelativeTime iso={lastAlertAt} />
                </>
              ) : (
                <span className="muted">none yet</span>
              )}
            </dd>
          </div>
        </dl>
      </div>
    </li>
  );
}

export default function DashboardPage() {
  const api = useApi();
  const monitors = usePaginated<Query>("/queries", {}, 50);
  const { setItems } = monitors;
  const alerts = useResource(async (a, signal) => asPage<Alert>(await a.get("/alerts", { limit: 100 }, signal)).items, "latest-alerts");
  const [review, setReview] = useState<Query | null>(null);

  const lastAlertByQuery = useMemo(() => {
    const map = new Map<string, Alert>();
    for (const a of alerts.data ?? []) {
      const prev = map.get(a.query_id);
      if (!prev || a.created_at > prev.created_at) map.set(a.query_id, a);
    }
    return map;
  }, [alerts.data]);

  const upsert = useCallback(
    (q: Query) => {
      setItems((prev) => (prev.some((p) => p.id === q.id) ? prev.map((p) => (p.id === q.id ? q : p)) : [q, ...prev]));
    },
    [setItems],
  );

  const onReviewChange = useCallback(
    (q: Query) => {
      setReview(q);
      upsert(q);
    },
    [upsert],
  );

  // Keep rows that are still discovering fresh (the review panel polls its own).
  const discoveringIds = monitors.items.filter((q) => q.status === "discovering" && q.id !== review?.id).map((q) => q.id);
  useInterval(
    () => {
      for (const id of discoveringIds) {
        api.get<Query>(`/queries/${id}`).then(upsert, () => undefined);
      }
    },
    discoveringIds.length ? 3000 : null,
  );

  return (
    <div className="page">
      <title>Monitors · Torale</title>
      <div className="page-head">
        <div>
          <h1>Monitors</h1>
          <p className="muted">Tell Torale what you want to know. It watches the web and alerts you when it matters.</p>
        </div>
      </div>

      <div className="dashboard-grid">
        <div className="dashboard-create">
          {review ? (
            <NewMonitorReview query={review} onQueryChange={onReviewChange} onDone={() => setReview(null)} />
          ) : (
            <CreateMonitorForm
              onCreated={(q) => {
                upsert(q);
                setReview(q);
              }}
            />
          )}
        </div>

        <section className="dashboard-list" aria-labelledby="monitors-title">
          <div className="section-head">
            <h2 id="monitors-title">Your monitors</h2>
            {!monitors.loading && monitors.items.length > 0 && (
              <span className="muted small" data-testid="monitor-count">
                {monitors.items.length}
                {monitors.nextCursor ? "+" : ""} {monitors.items.length === 1 ? "monitor" : "monitors"}
              </span>
            )}
          </div>
          {monitors.loading ? (
            <Spinner label="Loading monitors…" />
          ) : monitors.error ? (
            <ErrorNote error={monitors.error} onRetry={monitors.reload} testId="list-error" />
          ) : monitors.items.length === 0 ? (
            <div data-testid="monitor-list" data-empty="true">
              <EmptyState title="No monitors yet — describe what you want to know" testId="monitor-empty">
                <p>
                  For example: “Tell me when the iPhone 17 release date is announced” or “Alert me if the RTX 5090 drops below
                  $1,500”.
                </p>
                <button type="button" className="btn" onClick={() => document.getElementById("raw_query")?.focus()}>
                  Write your first monitor
                </button>
              </EmptyState>
            </div>
          ) : (
            <>
              <ul className="monitor-list" data-testid="monitor-list">
                {monitors.items.map((q) => (
                  <MonitorRow key={q.id} query={q} lastAlert={lastAlertByQuery.get(q.id) ?? null} />
                ))}
              </ul>
              {monitors.nextCursor && (
                <div className="load-more">
                  <button type="button" className="btn" onClick={monitors.loadMore} disabled={monitors.loadingMore} data-testid="load-more">
                    {monitors.loadingMore ? "Loading…" : "Load more"}
                  </button>
                  <ErrorNote error={monitors.loadMoreError} testId="list-error" />
                </div>
              )}
            </>
          )}
        </section>
      </div>
    </div>
  );
}
