"use client";

import Link from "next/link";
import { useCallback, useEffect, useState } from "react";
import { useApi } from "./AuthProvider";
import { ConfirmButton, ErrorNote, ExternalLink, RelativeTime, Spinner, StatusBadge } from "./ui";
import { ApiError, asPage, sleep } from "@/lib/api";
import { formatDateTime, outcomeText } from "@/lib/format";
import type { Check, Source } from "@/lib/types";

const CHECK_TIMEOUT_MS = 180_000;

function OutcomeLine({ check }: { check: Check }) {
  const alertIds = check.alert_ids ?? [];
  return (
    <span className={`outcome outcome-${check.outcome ?? check.status}`}>
      {check.status === "failed" && !check.outcome ? outcomeText("error", check.error) : outcomeText(check.outcome, check.error)}
      {check.http_status ? <span className="muted small"> (HTTP {check.http_status})</span> : null}
      {alertIds.length > 0 && (
        <>
          {" "}
          {alertIds.map((id, i) => (
            <Link key={id} href={`/alerts/${id}`} className="small">
              {alertIds.length === 1 ? "View alert" : `Alert ${i + 1}`}
            </Link>
          ))}
        </>
      )}
    </span>
  );
}

function CheckHistory({ sourceId, version }: { sourceId: string; version: number }) {
  const api = useApi();
  const [checks, setChecks] = useState<Check[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const ctrl = new AbortController();
    api.get(`/sources/${sourceId}/checks`, { limit: 20 }, ctrl.signal).then(
      (body) => {
        if (!ctrl.signal.aborted) {
          setChecks(asPage<Check>(body).items);
          setError(null);
        }
      },
      (err) => {
        if (!ctrl.signal.aborted) setError(err);
      },
    );
    return () => ctrl.abort();
  }, [api, sourceId, version]);

  if (error) return <ErrorNote error={error} testId="history-error" />;
  if (!checks) return <Spinner label="Loading check history…" inline />;
  if (checks.length === 0) return <p className="muted small">No checks yet.</p>;
  return (
    <div className="table-wrap">
      <table className="table" data-testid="check-history">
        <caption className="visually-hidden">Recent checks of this page</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">Status</th>
            <th scope="col">Outcome</th>
            <th scope="col">HTTP</th>
          </tr>
        </thead>
        <tbody>
          {checks.map((c) => (
            <tr key={c.id} data-testid="check-row" data-status={c.status} data-outcome={c.outcome ?? ""}>
              <td>
                <span title={c.finished_at ? `Finished ${formatDateTime(c.finished_at)}` : undefined}>
                  {formatDateTime(c.started_at ?? c.created_at)}
                </span>
              </td>
              <td>
                <StatusBadge status={c.status} />
              </td>
              <td>
                {c.status === "queued" || c.status === "running" ? <span className="muted">—</span> : <OutcomeLine check={c} />}
              </td>
              <td>{c.http_status ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** One monitored page: status, last outcome, "Check now", "Resume", history, remove. */
export function SourceCard({
  source,
  onChange,
  onRemoved,
  onCheckFinished,
}: {
  source: Source;
  onChange: (s: Source) => void;
  onRemoved: (id: string) => void;
  onCheckFinished: (check: Check) => void;
}) {
  const api = useApi();
  const [lastCheck, setLastCheck] = useState<Check | null>(source.last_check ?? null);
  const [checking, setChecking] = useState<Check | null>(null);
  const [checkResult, setCheckResult] = useState<Check | null>(null);
  const [checkError, setCheckError] = useState<unknown>(null);
  const [historyOpen, setHistoryOpen] = useState(false);
  const [historyVersion, setHistoryVersion] = useState(0);
  const [busy, setBusy] = useState<"resume" | "remove" | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);

  // The latest check's outcome, if the source row doesn't carry one.
  useEffect(() => {
    if (source.last_check) return;
    const ctrl = new AbortController();
    api.get(`/sources/${source.id}/checks`, { limit: 1 }, ctrl.signal).then(
      (body) => {
        if (!ctrl.signal.aborted) setLastCheck(asPage<Check>(body).items[0] ?? null);
      },
      () => undefined,
    );
    return () => ctrl.abort();
  }, [api, source.id, source.last_check, source.last_checked_at]);

  const refreshSource = useCallback(async () => {
    try {
      onChange(await api.get<Source>(`/sources/${source.id}`));
    } catch {
      // Keep what we have.
    }
  }, [api, source.id, onChange]);

  async function checkNow() {
    setCheckError(null);
    setCheckResult(null);
    try {
      const { check_id } = await api.post<{ check_id: string }>(`/sources/${source.id}/check`);
      let check: Check = { id: check_id, status: "queued", outcome: null, started_at: null, finished_at: null, http_status: null, error: null };
      setChecking(check);
      const deadline = Date.now() + CHECK_TIMEOUT_MS;
      let delay = 700;
      while (check.status !== "succeeded" && check.status !== "failed") {
        if (Date.now() > deadline) {
          setCheckError("The check is taking longer than expected. It will finish in the background; see the history.");
          setChecking(null);
          return;
        }
        await sleep(delay);
        try {
          check = await api.get<Check>(`/checks/${check_id}`);
          setChecking(check);
          delay = Math.min(3000, delay + 300);
        } catch (err) {
          if (err instanceof ApiError && (err.status === 429 || err.status === 0 || err.status >= 500)) {
            delay = err.retryAfter !== null ? err.retryAfter * 1000 : Math.min(5000, delay * 2);
            continue;
          }
          throw err;
        }
      }
      setChecking(null);
      setCheckResult(check);
      setLastCheck(check);
      setHistoryVersion((v) => v + 1);
      onCheckFinished(check);
      void refreshSource();
    } catch (err) {
      setChecking(null);
      setCheckError(err);
    }
  }

  async function resume() {
    setBusy("resume");
    setActionError(null);
    try {
      const updated = await api.patch<Source | undefined>(`/sources/${source.id}`, { status: "active" });
      onChange(updated && "id" in updated ? updated : { ...source, status: "active", last_error: null });
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(null);
    }
  }

  async function remove() {
    setBusy("remove");
    setActionError(null);
    try {
      await api.del(`/sources/${source.id}`);
      onRemoved(source.id);
    } catch (err) {
      setActionError(err);
      setBusy(null);
    }
  }

  const historyId = `history-${source.id}`;
  return (
    <li className="source-card" data-testid="source-row" data-source-id={source.id} data-status={source.status}>
      <div className="source-head">
        <div className="source-title">
          <ExternalLink href={source.url} className="source-url">
            {source.title || source.url}
          </ExternalLink>
          {source.title && <span className="muted small url-line">{source.url}</span>}
        </div>
        <StatusBadge status={source.status} testId="source-status" />
      </div>

      <dl className="source-facts small">
        <div>
          <dt>Last checked</dt>
          <dd data-testid="source-last-checked">
            <RelativeTime iso={source.last_checked_at} />
          </dd>
        </div>
        <div>
          <dt>Last outcome</dt>
          <dd data-testid="source-last-outcome">{lastCheck ? <OutcomeLine check={lastCheck} /> : <span className="muted">—</span>}</dd>
        </div>
      </dl>

      {source.status === "errored" ? (
        <div className="error-note" role="alert" data-testid="source-error">
          <span>
            Checking stopped: {source.last_error || "the page failed too many times in a row."} Fix the cause (or wait for the site to
            recover), then resume.
          </span>
          <button type="button" className="btn btn-sm" onClick={resume} disabled={busy === "resume"} data-testid="resume-source-button">
            {busy === "resume" ? "Resuming…" : "Resume"}
          </button>
        </div>
      ) : source.last_error ? (
        <p className="text-danger small" data-testid="source-error">
          Last error: {source.last_error}
        </p>
      ) : null}

      <div className="source-actions">
        <button
          type="button"
          className="btn btn-sm"
          onClick={checkNow}
          disabled={!!checking}
          data-testid="check-now-button"
        >
          {checking ? "Checking…" : "Check now"}
        </button>
        <button
          type="button"
          className="btn btn-ghost btn-sm"
          aria-expanded={historyOpen}
          aria-controls={historyId}
          onClick={() => setHistoryOpen((o) => !o)}
          data-testid="history-toggle"
        >
          {historyOpen ? "Hide history" : "History"}
        </button>
        <ConfirmButton
          label="Remove"
          confirmLabel="Remove page"
          question="Stop watching this page?"
          onConfirm={remove}
          busy={busy === "remove"}
          testId="remove-source-button"
          className="btn btn-danger-ghost btn-sm"
        />
      </div>

      <div aria-live="polite">
        {checking && (
          <p className="check-progress small" data-testid="check-progress" data-status={checking.status}>
            <Spinner inline /> {checking.status === "running" ? "Fetching and comparing the page…" : "Waiting for a worker…"}
          </p>
        )}
        {checkResult && (
          <p
            className={`check-result small ${checkResult.status === "failed" ? "text-danger" : ""}`}
            data-testid="check-result"
            data-status={checkResult.status}
            data-outcome={checkResult.outcome ?? ""}
          >
            {checkResult.status !== "failed" && checkResult.outcome !== "error" && <strong>Check finished:</strong>}{" "}
            <OutcomeLine check={checkResult} />
          </p>
        )}
      </div>
      <ErrorNote error={checkError} testId="check-error" />
      <ErrorNote error={actionError} />

      {historyOpen && (
        <div id={historyId} className="history">
          <CheckHistory sourceId={source.id} version={historyVersion} />
        </div>
      )}
    </li>
  );
}
