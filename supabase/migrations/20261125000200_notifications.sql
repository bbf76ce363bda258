-- Notifications: per-query preferences that inherit, digests that remember their alerts, an
-- attempt log per delivery, and one message id per channel (digests are made once per day).

-- A per-query override may leave min_severity unset (NULL: inherit the user's default);
-- the user's default row (user_query_id is null) always has one.
alter table public.notification_preferences alter column min_severity drop not null;
alter table public.notification_preferences
  add constraint notification_preferences_default_has_min_severity
  check (user_query_id is not null or min_severity is not null);

-- A digest delivery lists the alerts it carries (alert_id stays null for digests).
alter table public.notification_deliveries add column alert_ids uuid[];
-- One entry per attempt: {attempt, at, outcome, response_code, error, duration_ms}.
alter table public.notification_deliveries
  add column attempt_log jsonb not null default '[]'::jsonb;

-- A message is sent once per channel: the digest of a day, a test, a verification.
create unique index notification_deliveries_message
  on public.notification_deliveries (channel_id, message_id);
-- The scheduler's sweep finds deliveries lost in `sending` by age.
create index notification_deliveries_sending on public.notification_deliveries (updated_at)
  where status = 'sending';

-- The service reads an account's own address (auto-verified as an email channel) through this
-- one function instead of a grant on auth.users; users cannot call it.
create or replace function public.torale_account_email(account uuid) returns text
language sql stable security definer set search_path = '' as $$
  select email::text from auth.users where id = account
$$;
revoke all on function public.torale_account_email(uuid) from public, anon, authenticated;
grant execute on function public.torale_account_email(uuid) to service_role;
