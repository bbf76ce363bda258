-- Every new alert is announced on the `torale_alerts` channel (the gateway's live stream
-- listens); the payload carries ids only, the stream reads the row as its owner.
create or replace function public.torale_notify_alert() returns trigger
language plpgsql as $$
begin
  perform pg_notify(
    'torale_alerts',
    json_build_object('id', new.id, 'user_id', new.user_id, 'query_id', new.user_query_id)::text
  );
  return new;
end
$$;

create trigger change_alerts_notify after insert on public.change_alerts
  for each row execute function public.torale_notify_alert();
