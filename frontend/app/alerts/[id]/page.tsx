"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import { AlertEvidence } from "@/components/AlertEvidence";
import { DeliveryTable } from "@/components/DeliveryTable";
import { EmptyState, ErrorNote, Spinner } from "@/components/ui";
import { ApiError, asPage } from "@/lib/api";
import { formatDateTime } from "@/lib/format";
import { useResource } from "@/lib/hooks";
import type { Alert, Delivery, Query } from "@/lib/types";

export default function AlertPage() {
  const { id } = useParams<{ id: string }>();
  const alert = useResource((a, signal) => a.get<Alert>(`/alerts/${id}`, undefined, signal), `alert-${id}`);
  const queryId = alert.data?.query_id ?? null;
  const query = useResource(
    (a, signal) => (queryId ? a.get<Query>(`/queries/${queryId}`, undefined, signal) : Promise.resolve(null)),
    `alert-query-${queryId}`,
  );
  const deliveries = useResource(
    async (a, signal) => asPage<Delivery>(await a.get("/deliveries", { alert_id: id, limit: 50 }, signal)).items,
    `alert-deliveries-${id}`,
  );

  if (alert.loading && !alert.data) return <Spinner label="Loading alert…" />;
  if (alert.error && !alert.data) {
    const notFound = alert.error instanceof ApiError && alert.error.status === 404;
    return (
      <div className="page">
        <p className="breadcrumb">
          <Link href="/alerts">← All alerts</Link>
        </p>
        {notFound ? <EmptyState title="This alert doesn't exist" /> : <ErrorNote error={alert.error} onRetry={alert.reload} />}
      </div>
    );
  }
  const data = alert.data;
  if (!data) return null;
  const source = query.data?.sources?.find((s) => s.id === data.source_id);

  return (
    <div className="page narrow" data-testid="alert-detail">
      <title>Alert · Torale</title>
      <p className="breadcrumb">
        <Link href="/alerts">← All alerts</Link>
      </p>
      <h1 className="visually-hidden">Alert</h1>
      <AlertEvidence alert={data} queryText={query.data?.raw_query ?? "View monitor"} onChange={alert.setData} headingLevel={2} />
      <dl className="facts panel">
        <dt>Detected</dt>
        <dd>{formatDateTime(data.created_at)}</dd>
        {source && (
          <>
            <dt>Page</dt>
            <dd className="break">{source.url}</dd>
          </>
        )}
        {query.data?.condition && (
          <>
            <dt>Condition</dt>
            <dd>{query.data.condition}</dd>
          </>
        )}
        {data.check_id && (
          <>
            <dt>Check</dt>
            <dd className="mono small">{data.check_id}</dd>
          </>
        )}
      </dl>
      <section aria-labelledby="deliveries-title">
        <h2 id="deliveries-title">Notifications sent</h2>
        {deliveries.loading ? (
          <Spinner label="Loading deliveries…" />
        ) : deliveries.error ? (
          <ErrorNote error={deliveries.error} onRetry={deliveries.reload} testId="list-error" />
        ) : (deliveries.data ?? []).length === 0 ? (
          <p className="muted">
            No notifications were sent for this alert. <Link href="/settings">Set up a channel</Link> to be notified.
          </p>
        ) : (
          <DeliveryTable deliveries={deliveries.data ?? []} showAlert={false} />
        )}
      </section>
    </div>
  );
}
