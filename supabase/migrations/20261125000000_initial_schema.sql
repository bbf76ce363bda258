-- Torale's schema: monitors, sources, snapshots, passage embeddings, checks, alerts, notifications.
-- Every user-owned row carries user_id (FK auth.users, cascade) and is guarded by RLS on auth.uid().

create extension if not exists vector;

-- keeps updated_at honest on every table that has it
create or replace function public.torale_touch_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- ---------------------------------------------------------------- monitors
create table public.user_queries (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  raw_query text not null check (char_length(raw_query) between 3 and 2000),
  refined_query text,
  condition text,
  keywords text[] not null default '{}',
  status text not null default 'discovering'
    check (status in ('discovering', 'active', 'paused', 'needs_sources', 'failed')),
  status_reason text,
  config_hints_json jsonb not null default '{}'::jsonb,
  check_interval_seconds integer not null default 3600
    check (check_interval_seconds between 1 and 2592000),
  sensitivity text not null default 'medium' check (sensitivity in ('low', 'medium', 'high')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index user_queries_user_created on public.user_queries (user_id, created_at desc, id desc);

-- ---------------------------------------------------------------- sources
create table public.monitored_sources (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  user_query_id uuid not null references public.user_queries (id) on delete cascade,
  url text not null check (char_length(url) between 8 and 2048),
  title text,
  status text not null default 'active'
    check (status in ('active', 'paused', 'errored', 'disallowed')),
  config jsonb not null default '{}'::jsonb,
  check_interval_seconds integer check (check_interval_seconds between 1 and 2592000),
  next_check_at timestamptz not null default now(),
  last_checked_at timestamptz,
  etag text,
  last_modified text,
  last_body_hash text,
  last_content_hash text,
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (user_query_id, url)
);
create index monitored_sources_due on public.monitored_sources (next_check_at)
  where status = 'active';
create index monitored_sources_query on public.monitored_sources (user_query_id, created_at);
create index monitored_sources_user on public.monitored_sources (user_id, created_at desc, id desc);

-- ---------------------------------------------------------------- checks
create table public.source_checks (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  user_query_id uuid not null references public.user_queries (id) on delete cascade,
  monitored_source_id uuid not null references public.monitored_sources (id) on delete cascade,
  trigger text not null default 'schedule' check (trigger in ('schedule', 'manual')),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed')),
  outcome text check (outcome in ('unchanged', 'changed', 'alerted', 'not_modified', 'error')),
  attempts integer not null default 0,
  queued_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  http_status integer,
  error_class text,
  error text,
  scraped_content_id uuid,
  created_at timestamptz not null default now(),
  check ((status in ('succeeded', 'failed')) = (finished_at is not null))
);
create index source_checks_source_created
  on public.source_checks (monitored_source_id, created_at desc, id desc);
create index source_checks_in_flight on public.source_checks (status, queued_at)
  where status in ('queued', 'running');
-- never two checks of one source in flight at once
create unique index source_checks_one_in_flight on public.source_checks (monitored_source_id)
  where status in ('queued', 'running');

-- ---------------------------------------------------------------- snapshots
create table public.scraped_contents (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  monitored_source_id uuid not null references public.monitored_sources (id) on delete cascade,
  check_id uuid references public.source_checks (id) on delete set null,
  content text not null,
  content_hash text not null,
  content_type text,
  passage_hashes text[] not null default '{}',
  fetched_at timestamptz not null default now(),
  http_status integer
);
create index scraped_contents_source_fetched
  on public.scraped_contents (monitored_source_id, fetched_at desc);

alter table public.source_checks
  add constraint source_checks_scraped_content_fk
  foreign key (scraped_content_id) references public.scraped_contents (id) on delete set null;

-- one row per distinct passage of a source per model; snapshots list passage hashes
create table public.content_embeddings (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  monitored_source_id uuid not null references public.monitored_sources (id) on delete cascade,
  scraped_content_id uuid not null references public.scraped_contents (id) on delete cascade,
  passage_index integer not null check (passage_index >= 0),
  passage_hash text not null,
  passage_text text not null,
  model_name text not null,
  dims integer not null check (dims > 0),
  embedding vector not null,
  created_at timestamptz not null default now(),
  check (vector_dims(embedding) = dims),
  unique (monitored_source_id, model_name, passage_hash)
);
create index content_embeddings_snapshot on public.content_embeddings (scraped_content_id);
-- one HNSW index per supported model, cast to that model's dimension
create index content_embeddings_minilm_hnsw on public.content_embeddings
  using hnsw ((embedding::vector(384)) vector_cosine_ops)
  where model_name = 'all-MiniLM-L6-v2';
create index content_embeddings_te3small_hnsw on public.content_embeddings
  using hnsw ((embedding::vector(1536)) vector_cosine_ops)
  where model_name = 'text-embedding-3-small';

-- ---------------------------------------------------------------- alerts
create table public.change_alerts (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  user_query_id uuid not null references public.user_queries (id) on delete cascade,
  monitored_source_id uuid references public.monitored_sources (id) on delete set null,
  check_id uuid references public.source_checks (id) on delete set null,
  severity text not null check (severity in ('low', 'medium', 'high')),
  score real not null default 0,
  summary text not null default '',
  details jsonb not null default '{}'::jsonb,
  fingerprint text not null,
  acknowledged_at timestamptz,
  created_at timestamptz not null default now(),
  unique (user_query_id, fingerprint)
);
create index change_alerts_user_created on public.change_alerts (user_id, created_at desc, id desc);
create index change_alerts_query_created on public.change_alerts (user_query_id, created_at desc);
create index change_alerts_check on public.change_alerts (check_id);

-- ---------------------------------------------------------------- notifications
create table public.notification_channels (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  kind text not null check (kind in ('email', 'webhook', 'apprise')),
  name text not null default '',
  config jsonb not null default '{}'::jsonb,
  secret text,
  enabled boolean not null default true,
  verified_at timestamptz,
  verification_token_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index notification_channels_user on public.notification_channels (user_id, created_at);

create table public.notification_preferences (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  user_query_id uuid references public.user_queries (id) on delete cascade,
  min_severity text not null default 'low' check (min_severity in ('low', 'medium', 'high')),
  mode text not null default 'immediate' check (mode in ('immediate', 'digest')),
  digest_hour integer not null default 8 check (digest_hour between 0 and 23),
  timezone text not null default 'UTC',
  quiet_hours_start time,
  quiet_hours_end time,
  channel_ids uuid[],
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((quiet_hours_start is null) = (quiet_hours_end is null)),
  unique nulls not distinct (user_id, user_query_id)
);

create table public.notification_deliveries (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  alert_id uuid references public.change_alerts (id) on delete cascade,
  channel_id uuid not null references public.notification_channels (id) on delete cascade,
  kind text not null check (kind in ('alert', 'digest', 'test', 'verification')),
  message_id text not null,
  status text not null default 'pending'
    check (status in ('pending', 'sending', 'succeeded', 'retrying', 'failed', 'skipped')),
  attempts integer not null default 0,
  response_code integer,
  response_excerpt text,
  error text,
  next_retry_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index notification_deliveries_once
  on public.notification_deliveries (alert_id, channel_id) where kind = 'alert';
create index notification_deliveries_user_created
  on public.notification_deliveries (user_id, created_at desc, id desc);
create index notification_deliveries_due on public.notification_deliveries (next_retry_at)
  where status in ('pending', 'retrying');

-- ---------------------------------------------------------------- triggers
create trigger user_queries_touch before update on public.user_queries
  for each row execute function public.torale_touch_updated_at();
create trigger monitored_sources_touch before update on public.monitored_sources
  for each row execute function public.torale_touch_updated_at();
create trigger notification_channels_touch before update on public.notification_channels
  for each row execute function public.torale_touch_updated_at();
create trigger notification_preferences_touch before update on public.notification_preferences
  for each row execute function public.torale_touch_updated_at();
create trigger notification_deliveries_touch before update on public.notification_deliveries
  for each row execute function public.torale_touch_updated_at();

-- ---------------------------------------------------------------- row level security
-- A row belongs to auth.uid(); rows that point at a parent must point at the caller's parent
-- (foreign keys alone would let a user attach rows to someone else's monitor).
create or replace function public.torale_owns_query(query_id uuid) returns boolean
language sql stable security definer set search_path = public as $$
  select exists (select 1 from public.user_queries q where q.id = query_id and q.user_id = auth.uid())
$$;
create or replace function public.torale_owns_source(source_id uuid) returns boolean
language sql stable security definer set search_path = public as $$
  select exists (
    select 1 from public.monitored_sources s where s.id = source_id and s.user_id = auth.uid()
  )
$$;

alter table public.user_queries enable row level security;
alter table public.monitored_sources enable row level security;
alter table public.source_checks enable row level security;
alter table public.scraped_contents enable row level security;
alter table public.content_embeddings enable row level security;
alter table public.change_alerts enable row level security;
alter table public.notification_channels enable row level security;
alter table public.notification_preferences enable row level security;
alter table public.notification_deliveries enable row level security;

create policy user_queries_own on public.user_queries for all to authenticated
  using (user_id = auth.uid()) with check (user_id = auth.uid());

create policy monitored_sources_own on public.monitored_sources for all to authenticated
  using (user_id = auth.uid())
  with check (user_id = auth.uid() and public.torale_owns_query(user_query_id));

create policy source_checks_own on public.source_checks for all to authenticated
  using (user_id = auth.uid())
  with check (
    user_id = auth.uid()
    and public.torale_owns_query(user_query_id)
    and public.torale_owns_source(monitored_source_id)
  );

create policy scraped_contents_own on public.scraped_contents for select to authenticated
  using (user_id = auth.uid());

create policy content_embeddings_own on public.content_embeddings for select to authenticated
  using (user_id = auth.uid());

create policy change_alerts_own on public.change_alerts for all to authenticated
  using (user_id = auth.uid())
  with check (user_id = auth.uid() and public.torale_owns_query(user_query_id));

create policy notification_channels_own on public.notification_channels for all to authenticated
  using (user_id = auth.uid()) with check (user_id = auth.uid());

create policy notification_preferences_own on public.notification_preferences
  for all to authenticated
  using (user_id = auth.uid())
  with check (
    user_id = auth.uid()
    and (user_query_id is null or public.torale_owns_query(user_query_id))
  );

create policy notification_deliveries_own on public.notification_deliveries
  for select to authenticated using (user_id = auth.uid());

-- ---------------------------------------------------------------- privileges
revoke all on all tables in schema public from anon;
grant select, insert, update, delete on
  public.user_queries, public.monitored_sources, public.source_checks,
  public.notification_preferences
  to authenticated;
-- alerts are written by the detector; a user may only acknowledge or delete them
grant select, delete, update (acknowledged_at) on public.change_alerts to authenticated;
grant select on public.scraped_contents, public.content_embeddings,
  public.notification_deliveries to authenticated;
-- the webhook signing secret and verification token never leave the database to a user
grant select (id, user_id, kind, name, config, enabled, verified_at, created_at, updated_at),
  insert (user_id, kind, name, config, secret, enabled, verification_token_hash),
  update (name, config, enabled),
  delete
  on public.notification_channels to authenticated;
grant all on all tables in schema public to service_role;
grant usage, select on all sequences in schema public to authenticated, service_role;
grant execute on function public.torale_owns_query(uuid), public.torale_owns_source(uuid)
  to authenticated, service_role;
