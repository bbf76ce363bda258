"use client";

import Link from "next/link";
import { useState } from "react";
import { useApi } from "./AuthProvider";
import { ErrorNote, ExternalLink, RelativeTime, SeverityBadge } from "./ui";
import { diffWords, type Segment } from "@/lib/diff";
import { formatPercent, formatScore, hostOf } from "@/lib/format";
import type { Alert, Change } from "@/lib/types";

function Segments({ segments, mark }: { segments: Segment[]; mark: "del" | "ins" }) {
  return (
    <>
      {segments.map((s, i) => {
        if (!s.changed) return <span key={i}>{s.text}</span>;
        return mark === "del" ? (
          <del key={i} className="diff-del" data-testid="diff-removed">
            {s.text}
          </del>
        ) : (
          <ins key={i} className="diff-ins" data-testid="diff-added">
            {s.text}
          </ins>
        );
      })}
    </>
  );
}

const KIND_LABEL: Record<Change["kind"], string> = { added: "Added", modified: "Modified", removed: "Removed" };

export function ChangeView({ change }: { change: Change }) {
  const diff = diffWords(change.before, change.after);
  const relevance = formatPercent(change.relevance);
  const hasBefore = change.before !== null && change.before !== undefined && change.before !== "";
  const hasAfter = change.after !== null && change.after !== undefined && change.after !== "";
  return (
    <li className={`change change-${change.kind}`} data-testid="change" data-kind={change.kind}>
      <div className="change-head">
        <span className={`badge kind-${change.kind}`} data-testid="change-kind">
          {KIND_LABEL[change.kind] ?? change.kind}
        </span>
        {relevance && <span className="muted small">Relevance {relevance}</span>}
      </div>
      <div className={hasBefore && hasAfter ? "change-body two" : "change-body"}>
        {hasBefore && (
          <div className="change-side">
            <span className="side-label">Before</span>
            <blockquote className="change-text before" data-testid="change-before">
              <Segments segments={diff.before} mark="del" />
            </blockquote>
          </div>
        )}
        {hasBefore && hasAfter && (
          <span className="change-arrow" aria-hidden="true">
            →
          </span>
        )}
        {hasAfter && (
          <div className="change-side">
            <span className="side-label">After</span>
            <blockquote className="change-text after" data-testid="change-after">
              <Segments segments={diff.after} mark="ins" />
            </blockquote>
          </div>
        )}
      </div>
    </li>
  );
}

export function AcknowledgeButton({ alert, onAcknowledged }: { alert: Alert; onAcknowledged: (updated: Alert) => void }) {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (alert.acknowledged_at) {
    return (
      <span className="acked" data-testid="acknowledged">
        ✓ Acknowledged <RelativeTime iso={alert.acknowledged_at} />
      </span>
    );
  }
  return (
    <span className="ack-wrap">
      <button
        type="button"
        className="btn btn-sm"
        data-testid="acknowledge-button"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            const updated = await api.post<Alert | undefined>(`/alerts/${alert.id}/acknowledge`);
            onAcknowledged(
              updated && typeof updated === "object" && "id" in updated
                ? updated
                : { ...alert, acknowledged_at: new Date().toISOString() },
            );
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        {busy ? "Acknowledging…" : "Acknowledge"}
      </button>
      <ErrorNote error={error} />
    </span>
  );
}

/** An alert with its full evidence. */
export function AlertEvidence({
  alert,
  queryText,
  onChange,
  headingLevel = 3,
  linkToDetail = false,
}: {
  alert: Alert;
  queryText?: string | null;
  onChange: (updated: Alert) => void;
  headingLevel?: 2 | 3;
  linkToDetail?: boolean;
}) {
  const changes = alert.details?.changes ?? [];
  const url = alert.details?.url ?? null;
  const Heading = headingLevel === 2 ? "h2" : "h3";
  const summary = alert.summary || "A relevant change was detected.";
  return (
    <article
      className={`alert-card severity-edge-${alert.severity}${alert.acknowledged_at ? " is-acked" : ""}`}
      data-testid="alert-evidence"
      data-alert-id={alert.id}
    >
      <header className="alert-card-head">
        <div className="alert-meta">
          <SeverityBadge severity={alert.severity} />
          <span className="score" data-testid="alert-score">
            Score {formatScore(alert.score)}
          </span>
          <RelativeTime iso={alert.created_at} />
        </div>
        <AcknowledgeButton alert={alert} onAcknowledged={onChange} />
      </header>
      <Heading className="alert-summary" data-testid="alert-summary">
        {linkToDetail ? <Link href={`/alerts/${alert.id}`}>{summary}</Link> : summary}
      </Heading>
      <p className="alert-context muted small">
        {queryText && (
          <>
            Monitor: <Link href={`/monitors/${alert.query_id}`}>{queryText}</Link>
          </>
        )}
        {queryText && url && " · "}
        {url && (
          <>
            Page: <ExternalLink href={url}>{hostOf(url)}</ExternalLink>
          </>
        )}
      </p>
      {changes.length > 0 ? (
        <ol className="changes" aria-label="Changes found">
          {changes.map((c, i) => (
            <ChangeView key={i} change={c} />
          ))}
        </ol>
      ) : (
        <p className="muted small">No passage-level evidence was recorded for this alert.</p>
      )}
    </article>
  );
}
