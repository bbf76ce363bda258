// Shapes of the gateway's JSON, as described in /work/shared/API.md.
// Fields marked optional are ones the web app tolerates being absent.

export type QueryStatus = "discovering" | "active" | "needs_sources" | "failed" | "paused" | string;
export type Sensitivity = "low" | "medium" | "high";
export type Severity = "low" | "medium" | "high";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Source {
  id: string;
  query_id?: string;
  url: string;
  status: "active" | "errored" | "paused" | string;
  last_checked_at: string | null;
  last_error: string | null;
  title?: string | null;
  reason?: string | null;
  last_outcome?: CheckOutcome | null;
  last_check?: Check | null;
  created_at?: string;
}

export interface Query {
  id: string;
  raw_query: string;
  refined_query: string | null;
  condition: string | null;
  keywords: string[] | null;
  status: QueryStatus;
  check_interval_seconds: number;
  sensitivity: Sensitivity;
  created_at: string;
  updated_at: string;
  sources: Source[];
  /** Why discovery failed or needs the user (name not fixed by API.md; several are read). */
  failure_reason?: string | null;
  status_reason?: string | null;
  error?: string | null;
  last_alert_at?: string | null;
}

export type CheckStatus = "queued" | "running" | "succeeded" | "failed";
export type CheckOutcome = "unchanged" | "changed" | "alerted" | "not_modified" | "error";

export interface Check {
  id: string;
  source_id?: string;
  status: CheckStatus;
  outcome: CheckOutcome | null;
  started_at: string | null;
  finished_at: string | null;
  http_status: number | null;
  error: string | null;
  alert_ids?: string[] | null;
  created_at?: string;
}

export interface Change {
  kind: "added" | "modified" | "removed";
  before: string | null;
  after: string | null;
  relevance?: number | null;
}

export interface Alert {
  id: string;
  query_id: string;
  source_id: string | null;
  check_id: string | null;
  severity: Severity;
  score: number | null;
  summary: string | null;
  details: { changes?: Change[]; url?: string | null } | null;
  created_at: string;
  acknowledged_at: string | null;
}

export type ChannelKind = "email" | "webhook" | "apprise";

export interface NotificationChannel {
  id: string;
  kind: ChannelKind;
  name?: string | null;
  config?: {
    address?: string;
    url?: string;
    headers?: Record<string, string>;
  } | null;
  enabled?: boolean;
  created_at?: string;
  /** Only in the POST response of a webhook channel. */
  secret?: string;
}

export interface QuietHours {
  start: string;
  end: string;
}

export interface NotificationPreferences {
  min_severity: Severity;
  mode: "immediate" | "digest";
  digest_hour: number;
  timezone: string;
  quiet_hours: QuietHours | null;
}

export interface Delivery {
  id: string;
  alert_id: string | null;
  channel_id: string | null;
  channel_kind?: ChannelKind | null;
  kind?: ChannelKind | null;
  status: string;
  response_code: number | null;
  error: string | null;
  attempt?: number | null;
  attempts?: number | null;
  created_at: string;
  next_attempt_at?: string | null;
}
