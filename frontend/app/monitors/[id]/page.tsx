"use client";

import Link from "next/link";
import { useParams, useRouter } from "next/navigation";
import { useCallback, useState, type FormEvent } from "react";
import { AlertEvidence } from "@/components/AlertEvidence";
import { useApi } from "@/components/AuthProvider";
import { SourceCard } from "@/components/SourceCard";
import { AddSourceForm, DiscoveryProgress, queryReason, useDiscoveryPoll, withAddedSource } from "@/components/SourceReview";
import { ConfirmButton, EmptyState, ErrorNote, FieldError, Notice, RelativeTime, Spinner, StatusBadge } from "@/components/ui";
import { ApiError, fieldErrors } from "@/lib/api";
import { formatInterval, INTERVAL_OPTIONS } from "@/lib/format";
import { usePaginated, useResource } from "@/lib/hooks";
import type { Alert, Check, Query, Sensitivity, Source } from "@/lib/types";

function ScheduleForm({ query, onSaved }: { query: Query; onSaved: (q: Query) => void }) {
  const api = useApi();
  const [interval, setIntervalValue] = useState(String(query.check_interval_seconds ?? ""));
  const [sensitivity, setSensitivity] = useState<string>(query.sensitivity ?? "medium");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const options = INTERVAL_OPTIONS.some((o) => o.value === query.check_interval_seconds)
    ? INTERVAL_OPTIONS
    : [{ value: query.check_interval_seconds, label: formatInterval(query.check_interval_seconds) }, ...INTERVAL_OPTIONS];

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setFormError(null);
    setSaved(false);
    try {
      const updated = await api.patch<Query>(`/queries/${query.id}`, {
        check_interval_seconds: Number(interval),
        sensitivity: sensitivity as Sensitivity,
      });
      onSaved(updated && "id" in updated ? updated : { ...query, check_interval_seconds: Number(interval), sensitivity: sensitivity as Sensitivity });
      setSaved(true);
    } catch (err) {
      const { fields, rest } = fieldErrors(err, ["check_interval_seconds", "sensitivity"]);
      setErrors(fields);
      setFormError(rest);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="schedule-form" onSubmit={submit} noValidate data-testid="schedule-form">
      <div className="field">
        <label htmlFor="edit-interval">Check</label>
        <select
          id="edit-interval"
          value={interval}
          onChange={(e) => setIntervalValue(e.target.value)}
          aria-invalid={!!errors.check_interval_seconds}
          aria-describedby={errors.check_interval_seconds ? "edit-interval-error" : undefined}
        >
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
        <FieldError id="edit-interval-error" message={errors.check_interval_seconds} />
      </div>
      <div className="field">
        <label htmlFor="edit-sensitivity">Sensitivity</label>
        <select
          id="edit-sensitivity"
          value={sensitivity}
          onChange={(e) => setSensitivity(e.target.value)}
          aria-invalid={!!errors.sensitivity}
          aria-describedby={errors.sensitivity ? "edit-sensitivity-error" : undefined}
        >
          <option value="low">Low</option>
          <option value="medium">Medium</option>
          <option value="high">High</option>
        </select>
        <FieldError id="edit-sensitivity-error" message={errors.sensitivity} />
      </div>
      <button type="submit" className="btn btn-sm" disabled={busy}>
        {busy ? "Saving…" : "Save"}
      </button>
      {saved && (
        <span className="muted small" role="status">
          Saved.
        </span>
      )}
      <ErrorNote error={formError} />
    </form>
  );
}

export default function MonitorPage() {
  const params = useParams<{ id: string }>();
  const id = params.id;
  const api = useApi();
  const router = useRouter();
  const monitor = useResource((a, signal) => a.get<Query>(`/queries/${id}`, undefined, signal), `query-${id}`);
  const { setData } = monitor;
  const alerts = usePaginated<Alert>("/alerts", { query_id: id }, 20);
  const [busy, setBusy] = useState<"pause" | "resume" | "delete" | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);

  const setQuery = useCallback((q: Query) => setData(q), [setData]);
  const { error: pollError, elapsed } = useDiscoveryPoll(monitor.data, setQuery);

  const updateSource = useCallback(
    (s: Source) => setData((q) => (q ? { ...q, sources: q.sources.map((x) => (x.id === s.id ? { ...x, ...s } : x)) } : q)),
    [setData],
  );
  const removeSource = useCallback(
    (sourceId: string) => setData((q) => (q ? { ...q, sources: q.sources.filter((x) => x.id !== sourceId) } : q)),
    [setData],
  );
  const { refreshTop } = alerts;
  const onCheckFinished = useCallback(
    (check: Check) => {
      if ((check.alert_ids?.length ?? 0) > 0 || check.outcome === "alerted") void refreshTop().catch(() => undefined);
    },
    [refreshTop],
  );

  async function lifecycle(action: "pause" | "resume") {
    if (!monitor.data) return;
    setBusy(action);
    setActionError(null);
    try {
      const updated = await api.post<Query | undefined>(`/queries/${id}/${action}`);
      if (updated && "id" in updated) setData(updated);
      else setData(await api.get<Query>(`/queries/${id}`));
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(null);
    }
  }

  async function remove() {
    setBusy("delete");
    setActionError(null);
    try {
      await api.del(`/queries/${id}`);
      router.push("/");
    } catch (err) {
      setActionError(err);
      setBusy(null);
    }
  }

  if (monitor.loading && !monitor.data) return <Spinner label="Loading monitor…" />;
  if (monitor.error && !monitor.data) {
    const notFound = monitor.error instanceof ApiError && monitor.error.status === 404;
    return (
      <div className="page">
        <p>
          <Link href="/">← All monitors</Link>
        </p>
        {notFound ? (
          <EmptyState title="This monitor doesn't exist">It may have been deleted.</EmptyState>
        ) : (
          <ErrorNote error={monitor.error} onRetry={monitor.reload} />
        )}
      </div>
    );
  }
  const query = monitor.data;
  if (!query) return null;
  const reason = queryReason(query);
  const paused = query.status === "paused";

  return (
    <div className="page" data-testid="monitor-page" data-status={query.status}>
      <title>{`${query.raw_query} · Torale`}</title>
      <p className="breadcrumb">
        <Link href="/">← All monitors</Link>
      </p>
      <header className="monitor-header panel">
        <div className="monitor-header-top">
          <h1 className="monitor-heading" data-testid="monitor-title">
            {query.raw_query}
          </h1>
          <StatusBadge status={query.status} testId="monitor-status" />
        </div>
        <dl className="facts">
          {query.refined_query && (
            <>
              <dt>Watching for</dt>
              <dd>{query.refined_query}</dd>
            </>
          )}
          {query.condition && (
            <>
              <dt>Alert when</dt>
              <dd data-testid="monitor-condition">{query.condition}</dd>
            </>
          )}
          {query.keywords && query.keywords.length > 0 && (
            <>
              <dt>Keywords</dt>
              <dd>
                <ul className="chips">
                  {query.keywords.map((k) => (
                    <li key={k} className="chip">
                      {k}
                    </li>
                  ))}
                </ul>
              </dd>
            </>
          )}
          <dt>Created</dt>
          <dd>
            <RelativeTime iso={query.created_at} />
          </dd>
        </dl>
        <ScheduleForm key={`${query.check_interval_seconds}-${query.sensitivity}`} query={query} onSaved={setQuery} />
        <div className="monitor-actions">
          {paused ? (
            <button type="button" className="btn" onClick={() => lifecycle("resume")} disabled={!!busy} data-testid="resume-monitor-button">
              {busy === "resume" ? "Resuming…" : "Resume monitor"}
            </button>
          ) : (
            <button
              type="button"
              className="btn"
              onClick={() => lifecycle("pause")}
              disabled={!!busy || query.status === "discovering"}
              data-testid="pause-monitor-button"
            >
              {busy === "pause" ? "Pausing…" : "Pause monitor"}
            </button>
          )}
          <ConfirmButton
            label="Delete monitor"
            confirmLabel="Delete"
            question="Delete this monitor, its pages and alerts?"
            onConfirm={remove}
            busy={busy === "delete"}
            testId="delete-monitor-button"
          />
        </div>
        <ErrorNote error={actionError} />
      </header>

      {query.status === "discovering" && (
        <section className="panel" aria-label="Finding sources">
          <DiscoveryProgress elapsed={elapsed} error={pollError} />
        </section>
      )}
      {query.status === "needs_sources" && (
        <Notice tone="warning" testId="needs-sources">
          {reason || "Torale couldn't find pages to watch on its own."} Add a page below to start monitoring.
        </Notice>
      )}
      {query.status === "failed" && (
        <div className="error-note" role="alert" data-testid="discovery-failed">
          <span>This monitor failed{reason ? `: ${reason}` : "."} Add pages yourself below.</span>
        </div>
      )}
      {paused && <Notice tone="info">This monitor is paused: no scheduled checks run until you resume it.</Notice>}

      <div className="monitor-grid">
        <section aria-labelledby="sources-title" className="monitor-sources">
          <div className="section-head">
            <h2 id="sources-title">Pages</h2>
            <span className="muted small">checked {formatInterval(query.check_interval_seconds)}</span>
          </div>
          {query.sources.length === 0 ? (
            <p className="muted">No pages yet.</p>
          ) : (
            <ul className="source-list" data-testid="source-list">
              {query.sources.map((s) => (
                <SourceCard key={s.id} source={s} onChange={updateSource} onRemoved={removeSource} onCheckFinished={onCheckFinished} />
              ))}
            </ul>
          )}
          <div className="panel add-source-panel">
            <AddSourceForm queryId={query.id} onAdded={(created) => setData((q) => (q ? withAddedSource(q, created) : q))} />
          </div>
        </section>

        <section aria-labelledby="alerts-title" className="monitor-alerts">
          <div className="section-head">
            <h2 id="alerts-title">Alerts</h2>
            <button type="button" className="btn btn-ghost btn-sm" onClick={alerts.reload} disabled={alerts.loading}>
              Refresh
            </button>
          </div>
          {alerts.loading ? (
            <Spinner label="Loading alerts…" />
          ) : alerts.error ? (
            <ErrorNote error={alerts.error} onRetry={alerts.reload} testId="list-error" />
          ) : alerts.items.length === 0 ? (
            <EmptyState title="No alerts yet" testId="alerts-empty">
              Torale will alert you here when a page changes in a way that matters for this monitor.
            </EmptyState>
          ) : (
            <>
              <ul className="alert-list" data-testid="monitor-alerts">
                {alerts.items.map((a) => (
                  <li key={a.id}>
                    <AlertEvidence
                      alert={a}
                      linkToDetail
                      onChange={(u) => alerts.setItems((prev) => prev.map((x) => (x.id === u.id ? u : x)))}
                    />
                  </li>
                ))}
              </ul>
              {alerts.nextCursor && (
                <div className="load-more">
                  <button type="button" className="btn" onClick={alerts.loadMore} disabled={alerts.loadingMore} data-testid="load-more">
                    {alerts.loadingMore ? "Loading…" : "Load more"}
                  </button>
                  <ErrorNote error={alerts.loadMoreError} testId="list-error" />
                </div>
              )}
            </>
          )}
        </section>
      </div>
    </div>
  );
}
