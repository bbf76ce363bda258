"use client";

import Link from "next/link";
import { RelativeTime } from "./ui";
import { deliveryStatusLabel, explainDelivery, responseCodeLabel } from "@/lib/format";
import type { Delivery, NotificationChannel } from "@/lib/types";

function statusTone(status: string): string {
  if (["sent", "delivered", "succeeded"].includes(status)) return "ok";
  if (["failed"].includes(status)) return "bad";
  if (["retrying"].includes(status)) return "warn";
  return "neutral";
}

export function channelLabel(channel: NotificationChannel | undefined): string | null {
  if (!channel) return null;
  const target = channel.config?.address ?? channel.config?.url ?? null;
  return channel.name || (target ? `${channel.kind}: ${target}` : channel.kind);
}

/** Delivery attempts with status, response code and the error in words. */
export function DeliveryTable({
  deliveries,
  channels,
  showAlert = true,
}: {
  deliveries: Delivery[];
  channels?: Map<string, NotificationChannel>;
  showAlert?: boolean;
}) {
  return (
    <ul className="delivery-list" data-testid="delivery-list">
      {deliveries.map((d) => {
        const channel = d.channel_id ? channels?.get(d.channel_id) : undefined;
        const kind = d.channel_kind ?? d.kind ?? channel?.kind ?? null;
        const attempts = d.attempts ?? d.attempt ?? null;
        return (
          <li key={d.id} className="delivery-row" data-testid="delivery-row" data-status={d.status}>
            <div className="delivery-head">
              <span className={`badge tone-${statusTone(d.status)}`} data-testid="delivery-status">
                {deliveryStatusLabel(d.status)}
              </span>
              {kind && <span className="badge badge-outline">{kind}</span>}
              <span className="small muted">
                <RelativeTime iso={d.created_at} />
              </span>
              <span className="small muted" data-testid="delivery-code">
                {d.response_code !== null && d.response_code !== undefined ? responseCodeLabel(d.response_code, kind) : "no response code"}
              </span>
              {attempts !== null && attempts > 1 && <span className="small muted">attempt {attempts}</span>}
            </div>
            <p className="small delivery-explain" data-testid="delivery-explanation">
              {explainDelivery(d, kind)}
            </p>
            <p className="small muted delivery-meta">
              {channelLabel(channel) && <span className="break">To {channelLabel(channel)}</span>}
              {showAlert && d.alert_id && (
                <>
                  {channelLabel(channel) ? " · " : ""}
                  <Link href={`/alerts/${d.alert_id}`}>View alert</Link>
                </>
              )}
              {d.status === "retrying" && d.next_attempt_at && (
                <>
                  {" "}
                  · next try <RelativeTime iso={d.next_attempt_at} />
                </>
              )}
            </p>
          </li>
        );
      })}
    </ul>
  );
}
