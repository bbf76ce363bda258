"use client";

import { useEffect, useRef, useState, type FormEvent } from "react";
import { useApi } from "./AuthProvider";
import { parseUrlLines } from "./CreateMonitorForm";
import { ErrorNote, ExternalLink, FieldError, Notice, StatusBadge } from "./ui";
import { ApiError, fieldErrors, sleep } from "@/lib/api";
import type { Query, Source } from "@/lib/types";

export function queryReason(query: Query): string | null {
  return query.failure_reason || query.status_reason || query.error || null;
}

/**
 * While a query is `discovering`, poll GET /queries/{id} until it settles
 * (active, needs_sources, failed…). Calls onUpdate with every fresh copy.
 */
export function useDiscoveryPoll(query: Query | null, onUpdate: (q: Query) => void): { error: unknown; elapsed: number } {
  const api = useApi();
  const [error, setError] = useState<unknown>(null);
  const [elapsed, setElapsed] = useState(0);
  const onUpdateRef = useRef(onUpdate);
  useEffect(() => {
    onUpdateRef.current = onUpdate;
  });
  const id = query?.id;
  const discovering = query?.status === "discovering";

  useEffect(() => {
    if (!id || !discovering) return;
    const ctrl = new AbortController();
    const started = Date.now();
    const tick = setInterval(() => setElapsed(Math.round((Date.now() - started) / 1000)), 1000);
    (async () => {
      let delay = 1000;
      while (!ctrl.signal.aborted) {
        await sleep(delay, ctrl.signal);
        if (ctrl.signal.aborted) return;
        try {
          const fresh = await api.get<Query>(`/queries/${id}`, undefined, ctrl.signal);
          if (ctrl.signal.aborted) return;
          setError(null);
          onUpdateRef.current(fresh);
          if (fresh.status !== "discovering") return;
          delay = Math.min(4000, delay + 500);
        } catch (err) {
          if (ctrl.signal.aborted) return;
          setError(err);
          if (err instanceof ApiError && err.status === 404) return;
          delay = err instanceof ApiError && err.retryAfter !== null ? err.retryAfter * 1000 : Math.min(10000, delay * 2);
        }
      }
    })();
    return () => {
      ctrl.abort();
      clearInterval(tick);
    };
  }, [api, id, discovering]);

  return { error, elapsed };
}

const STEPS = [
  { after: 0, text: "Understanding your question…" },
  { after: 3, text: "Searching for pages that would announce it…" },
  { after: 8, text: "Checking which pages can be monitored…" },
  { after: 20, text: "Still working — some searches take a while…" },
];

export function DiscoveryProgress({ elapsed, error }: { elapsed: number; error: unknown }) {
  const step = [...STEPS].reverse().find((s) => elapsed >= s.after) ?? STEPS[0];
  const progress = Math.min(95, Math.round(100 * (1 - Math.exp(-elapsed / 12))));
  return (
    <div className="discovery" data-testid="discovery-progress">
      <div className="progress" role="progressbar" aria-label="Finding sources" aria-valuemin={0} aria-valuemax={100} aria-valuenow={progress} aria-valuetext={step.text}>
        <span style={{ width: `${Math.max(progress, 6)}%` }} />
      </div>
      <p aria-live="polite" className="discovery-step">
        {step.text} <span className="muted small">({elapsed} s)</span>
      </p>
      {error ? <ErrorNote error={error} testId="poll-error" /> : null}
    </div>
  );
}

/** "Add a page" form: POST /queries/{id}/sources {url}. */
export function AddSourceForm({ queryId, onAdded }: { queryId: string; onAdded: (created: Source | Query | undefined) => void }) {
  const api = useApi();
  const [url, setUrl] = useState("");
  const [adding, setAdding] = useState(false);
  const [addError, setAddError] = useState<string | null>(null);

  async function add(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setAddError(null);
    const { urls, error: urlError } = parseUrlLines(url);
    if (urlError || urls.length !== 1) {
      setAddError(urlError ?? "Enter one web address, like https://example.com/page.");
      return;
    }
    setAdding(true);
    try {
      const created = await api.post<Source | Query | undefined>(`/queries/${queryId}/sources`, { url: urls[0] });
      setUrl("");
      onAdded(created);
    } catch (err) {
      const { fields, rest } = fieldErrors(err, ["url"]);
      setAddError(fields.url ?? rest);
    } finally {
      setAdding(false);
    }
  }

  const inputId = `add-source-${queryId}`;
  return (
    <form className="inline-form" onSubmit={add} noValidate data-testid="add-source-form">
      <div className="field grow">
        <label htmlFor={inputId}>Add a page</label>
        <input
          id={inputId}
          name="url"
          type="url"
          inputMode="url"
          placeholder="https://example.com/news"
          value={url}
          onChange={(e) => setUrl(e.target.value)}
          aria-invalid={!!addError}
          aria-describedby={addError ? `${inputId}-error` : undefined}
          spellCheck={false}
          autoCapitalize="off"
        />
        <FieldError id={`${inputId}-error`} message={addError} />
      </div>
      <button type="submit" className="btn" disabled={adding} data-testid="add-source-button">
        {adding ? "Adding…" : "Add page"}
      </button>
    </form>
  );
}

/** Merge the answer of POST /queries/{id}/sources (a source, or the whole query) into a query. */
export function withAddedSource(query: Query, created: Source | Query | undefined): Query {
  if (created && "sources" in created && Array.isArray(created.sources)) return created;
  if (created && "url" in created && !query.sources.some((s) => s.id === created.id)) {
    return { ...query, sources: [...query.sources, created] };
  }
  return query;
}

/** Review a monitor's sources: keep, remove, add. */
export function SourceEditor({
  query,
  onQueryChange,
}: {
  query: Query;
  onQueryChange: (q: Query) => void;
}) {
  const api = useApi();
  const [removing, setRemoving] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  async function refresh() {
    try {
      onQueryChange(await api.get<Query>(`/queries/${query.id}`));
    } catch {
      // The local copy is still right enough; the next load fixes it.
    }
  }

  async function remove(source: Source) {
    setRemoving(source.id);
    setError(null);
    try {
      await api.del(`/sources/${source.id}`);
      onQueryChange({ ...query, sources: query.sources.filter((s) => s.id !== source.id) });
      void refresh();
    } catch (err) {
      setError(err);
    } finally {
      setRemoving(null);
    }
  }

  return (
    <div className="source-editor" data-testid="source-review">
      {query.sources.length === 0 ? (
        <p className="muted">No pages yet. Add at least one page for Torale to watch.</p>
      ) : (
        <ul className="source-review-list" data-testid="review-source-list">
          {query.sources.map((s) => (
            <li key={s.id} className="review-source" data-testid="review-source" data-source-id={s.id}>
              <div className="review-source-main">
                <ExternalLink href={s.url} className="source-url">
                  {s.title || s.url}
                </ExternalLink>
                {s.title && <span className="muted small url-line">{s.url}</span>}
                {s.reason && <span className="small">{s.reason}</span>}
              </div>
              <StatusBadge status={s.status} />
              <button
                type="button"
                className="btn btn-danger-ghost btn-sm"
                onClick={() => remove(s)}
                disabled={removing === s.id}
                data-testid="remove-source-button"
                aria-label={`Remove ${s.url}`}
              >
                {removing === s.id ? "Removing…" : "Remove"}
              </button>
            </li>
          ))}
        </ul>
      )}
      <ErrorNote error={error} />
      <AddSourceForm
        queryId={query.id}
        onAdded={(created) => {
          onQueryChange(withAddedSource(query, created));
          void refresh();
        }}
      />
    </div>
  );
}

/** Shown right after creating a monitor: discovery progress, then the source review. */
export function NewMonitorReview({
  query,
  onQueryChange,
  onDone,
}: {
  query: Query;
  onQueryChange: (q: Query) => void;
  onDone: () => void;
}) {
  const { error, elapsed } = useDiscoveryPoll(query, onQueryChange);
  const reason = queryReason(query);
  return (
    <section className="panel review-panel" aria-labelledby="review-title" data-testid="new-monitor-review" data-status={query.status}>
      <div className="panel-head">
        <h2 id="review-title">{query.status === "discovering" ? "Finding pages to watch" : "Review the pages to watch"}</h2>
        <StatusBadge status={query.status} />
      </div>
      <p className="review-query">“{query.raw_query}”</p>
      {query.status === "discovering" && (
        <>
          <DiscoveryProgress elapsed={elapsed} error={error} />
          <div className="form-actions">
            <button type="button" className="btn btn-ghost" onClick={onDone} data-testid="review-hide-button">
              Keep searching in the background
            </button>
          </div>
        </>
      )}
      {query.status !== "discovering" && (
        <>
          {(query.refined_query || query.condition) && (
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
                  <dd>{query.condition}</dd>
                </>
              )}
            </dl>
          )}
          {query.status === "needs_sources" && (
            <Notice tone="warning" testId="needs-sources">
              {reason || "Torale couldn't find pages to watch on its own."} Add one or more pages below to start monitoring.
            </Notice>
          )}
          {query.status === "failed" && (
            <div className="error-note" role="alert" data-testid="discovery-failed">
              <span>Finding sources failed{reason ? `: ${reason}` : "."} You can still add pages yourself below.</span>
            </div>
          )}
          {query.status === "active" && query.sources.length > 0 && (
            <Notice tone="success">Monitoring is on. Remove any page you don&apos;t want, or add your own.</Notice>
          )}
          <SourceEditor query={query} onQueryChange={onQueryChange} />
          <div className="form-actions">
            <button type="button" className="btn btn-primary" onClick={onDone} data-testid="review-done-button">
              Done
            </button>
          </div>
        </>
      )}
    </section>
  );
}
