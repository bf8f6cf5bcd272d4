-- Who may call the inference functions, how much, and what they used.
--
-- Quotas live in the `inference` schema (not exposed through the API) and are changed with plain
-- SQL. One function, public.inference_reserve, checks and takes a caller's per-minute request slot
-- and per-day units, and the project's daily units, in one transaction; public.inference_settle
-- gives back what a failed call did not use and writes the usage row, after the response. Windows
-- are fixed and aligned to UTC: the minute and the day. Both RPCs are for service_role only.

create schema if not exists inference;
comment on schema inference is 'Quotas of the inference functions; not exposed through the API.';
revoke all on schema inference from public, anon, authenticated;
grant usage on schema inference to service_role;

-- A tier's limits; null means unlimited.
create table if not exists inference.tiers (
  tier text primary key,
  requests_per_minute integer check (requests_per_minute >= 0),
  units_per_day integer check (units_per_day >= 0)
);

insert into inference.tiers (tier, requests_per_minute, units_per_day) values
  -- Users signed in anonymously (auth.users.is_anonymous), and IP callers under INFERENCE_ALLOW_ANON.
  ('anonymous', 5, 100),
  -- Every other signed-in user.
  ('authenticated', 20, 1000)
on conflict (tier) do nothing;

-- A bigger or smaller tier for one user.
create table if not exists inference.user_tiers (
  user_id uuid primary key,
  tier text not null references inference.tiers (tier) on update cascade
);

-- What one successful call of a task costs. A task missing here costs 1 unit.
create table if not exists inference.task_costs (
  task text primary key,
  units integer not null check (units >= 0)
);

-- Relative cost, roughly what the call costs a provider: a small encoder pass is 1, an LLM or
-- speech pass a few, an image generation 10.
insert into inference.task_costs (task, units) values
  ('text-classification', 1),
  ('fill-mask', 1),
  ('feature-extraction', 1),
  ('translation', 2),
  ('summarization', 2),
  ('image-classification', 2),
  ('audio-classification', 2),
  ('object-detection', 3),
  ('image-to-text', 3),
  ('image-segmentation', 4),
  ('text-generation', 5),
  ('text-to-speech', 5),
  ('automatic-speech-recognition', 5),
  ('image-caption', 5),
  ('text-to-image', 10)
on conflict (task) do nothing;

-- Owner's settings; project_units_per_day is the daily ceiling for everything, captioning included
-- (empty or null: no ceiling).
create table if not exists inference.settings (
  key text primary key,
  value text
);

insert into inference.settings (key, value) values ('project_units_per_day', '100000')
on conflict (key) do nothing;

-- One row per quota key ('user:<id>', 'ip:<address>', and 'project' for the ceiling): the
-- current minute's requests and the current day's units. A new window overwrites the old one, so
-- the table never grows beyond one row per caller.
create table if not exists inference.counters (
  key text primary key,
  minute timestamptz not null,
  requests integer not null,
  day date not null,
  units integer not null
);

alter table inference.tiers enable row level security;
alter table inference.user_tiers enable row level security;
alter table inference.task_costs enable row level security;
alter table inference.settings enable row level security;
alter table inference.counters enable row level security;

-- The usage log: one row per call, refused and failed calls included.
create table if not exists public.inference_usage (
  id bigint generated always as identity primary key,
  -- Null for the system caller (captioning), the service role and IP callers.
  user_id uuid,
  -- Who was metered: 'user:<id>', 'ip:<address>', 'service_role' or 'system:<pipeline>'.
  caller text not null,
  task text not null,
  model text,
  status integer not null,
  units integer not null default 0,
  latency_ms integer,
  input_bytes bigint,
  output_bytes bigint,
  -- 'hit' when a cache answered (0 units); null otherwise.
  cache text,
  created_at timestamptz not null default now()
);

comment on table public.inference_usage is
  'One row per call of an inference function; each user reads their own rows, only service_role writes.';

create index if not exists inference_usage_user_created_idx on public.inference_usage (user_id, created_at);
create index if not exists inference_usage_created_idx on public.inference_usage (created_at);

alter table public.inference_usage enable row level security;
revoke all on table public.inference_usage from public, anon, authenticated;
grant select on table public.inference_usage to authenticated;
grant all on table public.inference_usage to service_role;

drop policy if exists "Users read their own usage" on public.inference_usage;
create policy "Users read their own usage"
  on public.inference_usage
  for select
  to authenticated
  using (user_id = (select auth.uid()));

-- Usage per user per day (UTC), for the owner: select * from inference.usage_per_user_per_day.
create or replace view inference.usage_per_user_per_day as
  select (u.created_at at time zone 'UTC')::date as day,
         u.user_id,
         u.caller,
         count(*) as calls,
         count(*) filter (where u.status between 200 and 299) as succeeded,
         count(*) filter (where u.status in (429, 503)) as limited,
         count(*) filter (where u.status >= 400 and u.status not in (429, 503)) as failed,
         sum(u.units) as units,
         sum(u.output_bytes) as output_bytes,
         round(avg(u.latency_ms)) as avg_latency_ms
    from public.inference_usage u
   group by 1, 2, 3;

create or replace function inference.project_units_per_day()
returns integer
language sql
stable
set search_path = ''
as $$
  select nullif(trim(value), '')::integer from inference.settings where key = 'project_units_per_day'
$$;

-- Adds delta units to key's counter for day, leaving another day's counter alone; never below 0.
create or replace function inference.add_units(key text, day date, delta integer)
returns void
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
begin
  insert into inference.counters as k (key, minute, requests, day, units)
  values (add_units.key, date_trunc('minute', now()), 0, add_units.day, greatest(add_units.delta, 0))
  on conflict (key) do update
    set units = case when k.day = excluded.day then greatest(0, k.units + add_units.delta) else excluded.units end,
        day = excluded.day
    where k.day <= excluded.day;
end
$$;

-- Checks and takes, in one transaction, one request of key's per-minute limit and the task's units
-- of key's daily limit and of the project's ceiling. key null is the system caller: only the
-- ceiling applies. The tier is the user's in inference.user_tiers, else default_tier.
-- Returns {granted, refused ('requests_per_minute' | 'units_per_day' | 'project_units_per_day'),
-- units, tier, day, requests_per_minute, requests_remaining, minute_reset, units_per_day,
-- units_remaining, day_reset}; resets are seconds from now.
create or replace function public.inference_reserve(key text, user_id uuid, default_tier text, task text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  this_minute timestamptz := date_trunc('minute', now());
  today date := (now() at time zone 'UTC')::date;
  cost integer;
  ceiling integer := inference.project_units_per_day();
  t inference.tiers%rowtype;
  c inference.counters%rowtype;
  refused text;
begin
  -- A counter lost in a crash costs a few requests of quota; waiting for a flush costs every caller.
  perform set_config('synchronous_commit', 'off', true);
  select tc.units into cost from inference.task_costs tc where tc.task = inference_reserve.task;
  cost := coalesce(cost, 1);

  if inference_reserve.key is not null then
    select * into t from inference.tiers tr
     where tr.tier = coalesce(
       (select ut.tier from inference.user_tiers ut where ut.user_id = inference_reserve.user_id),
       inference_reserve.default_tier);
    if not found then
      raise exception 'inference tier % does not exist', inference_reserve.default_tier;
    end if;
    if t.requests_per_minute = 0 then
      refused := 'requests_per_minute';
    elsif cost > t.units_per_day then
      refused := 'units_per_day';
    else
      insert into inference.counters as k (key, minute, requests, day, units)
      values (inference_reserve.key, this_minute, 1, today, cost)
      on conflict (key) do update
        set requests = case when k.minute = excluded.minute then k.requests + 1 else 1 end,
            minute = excluded.minute,
            units = case when k.day = excluded.day then k.units + excluded.units else excluded.units end,
            day = excluded.day
        where (t.requests_per_minute is null or k.minute <> excluded.minute or k.requests < t.requests_per_minute)
          and (t.units_per_day is null or k.day <> excluded.day or k.units + excluded.units <= t.units_per_day)
      returning * into c;
      if not found then
        select * into c from inference.counters k where k.key = inference_reserve.key;
        refused := case
          when t.requests_per_minute is not null and c.minute = this_minute and c.requests >= t.requests_per_minute
            then 'requests_per_minute'
          else 'units_per_day' end;
      end if;
    end if;
  end if;

  if refused is null then
    if ceiling is not null and cost > ceiling then
      refused := 'project_units_per_day';
    else
      insert into inference.counters as k (key, minute, requests, day, units)
      values ('project', this_minute, 1, today, cost)
      on conflict (key) do update
        set requests = case when k.minute = excluded.minute then k.requests + 1 else 1 end,
            minute = excluded.minute,
            units = case when k.day = excluded.day then k.units + excluded.units else excluded.units end,
            day = excluded.day
        where ceiling is null or k.day <> excluded.day or k.units + excluded.units <= ceiling;
      if not found then
        refused := 'project_units_per_day';
      end if;
    end if;
    if refused is not null and inference_reserve.key is not null then
      -- Give back what this call took from the caller: the row is still locked by this transaction.
      update inference.counters k
         set requests = k.requests - 1, units = k.units - cost
       where k.key = inference_reserve.key
      returning * into c;
    end if;
  end if;

  return jsonb_build_object(
    'granted', refused is null,
    'refused', refused,
    'units', case when refused is null then cost else 0 end,
    'tier', t.tier,
    'day', today,
    'requests_per_minute', t.requests_per_minute,
    'requests_remaining', case when t.requests_per_minute is not null then
      greatest(0, t.requests_per_minute - case when c.minute = this_minute then c.requests else 0 end) end,
    'minute_reset', greatest(1, ceil(extract(epoch from this_minute + interval '1 minute' - now())))::integer,
    'units_per_day', t.units_per_day,
    'units_remaining', case when t.units_per_day is not null then
      greatest(0, t.units_per_day - case when c.day = today then c.units else 0 end) end,
    'day_reset', greatest(1, ceil(extract(epoch from (today + 1)::timestamp at time zone 'UTC' - now())))::integer
  );
end
$$;

-- The settlements of a JSON array (inference_settle's arguments by name), with what each is
-- charged: a charged call costs what was reserved (the task's cost when nothing was, as for
-- service_role), anything else costs nothing and gives the reservation back.
create or replace function inference.parse_settlements(settlements jsonb)
returns table (
  key text, day date, reserved integer, charged integer, caller text, user_id uuid, task text, model text,
  status integer, latency_ms integer, input_bytes bigint, output_bytes bigint, cache text
)
language sql
stable
set search_path = ''
as $$
  select x.key,
         coalesce(x.day, (now() at time zone 'UTC')::date),
         coalesce(x.reserved, 0),
         case when x.charge then coalesce(nullif(x.reserved, 0),
           (select tc.units from inference.task_costs tc where tc.task = x.task), 1) else 0 end,
         x.caller, x.user_id, x.task, x.model, x.status, x.latency_ms, x.input_bytes, x.output_bytes, x.cache
    from jsonb_to_recordset(settlements) as x(
      key text, day date, reserved integer, charge boolean, caller text, user_id uuid, task text, model text,
      status integer, latency_ms integer, input_bytes bigint, output_bytes bigint, cache text)
$$;

-- Settles calls after their answers, many in one round trip: each caller's counter on the
-- reservation's day (a late refund for yesterday leaves today alone), then the project's, then the
-- usage rows. Callers are locked in key order and the project last, as inference_reserve locks
-- them, so a settle and the reserves running beside it cannot deadlock.
create or replace function public.inference_settle_many(settlements jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  r record;
begin
  perform set_config('synchronous_commit', 'off', true);
  for r in
    select s.key, s.day, sum(s.charged - s.reserved)::integer as delta
      from inference.parse_settlements(settlements) s
     where s.key is not null
     group by s.key, s.day
    having sum(s.charged - s.reserved) <> 0
     order by s.key, s.day
  loop
    perform inference.add_units(r.key, r.day, r.delta);
  end loop;
  for r in
    select s.day, sum(s.charged - s.reserved)::integer as delta
      from inference.parse_settlements(settlements) s
     group by s.day
    having sum(s.charged - s.reserved) <> 0
     order by s.day
  loop
    perform inference.add_units('project', r.day, r.delta);
  end loop;
  insert into public.inference_usage
    (user_id, caller, task, model, status, units, latency_ms, input_bytes, output_bytes, cache)
  select s.user_id, s.caller, s.task, s.model, s.status, s.charged, s.latency_ms, s.input_bytes, s.output_bytes,
         s.cache
    from inference.parse_settlements(settlements) s;
end
$$;

-- Settles one call (see inference_settle_many).
create or replace function public.inference_settle(
  key text,
  day date,
  reserved integer,
  charge boolean,
  caller text,
  user_id uuid,
  task text,
  model text,
  status integer,
  latency_ms integer,
  input_bytes bigint,
  output_bytes bigint,
  cache text default null
)
returns void
language sql
security definer
set search_path = ''
as $$
  select public.inference_settle_many(jsonb_build_array(jsonb_build_object(
    'key', key, 'day', day, 'reserved', reserved, 'charge', charge, 'caller', caller, 'user_id', user_id,
    'task', task, 'model', model, 'status', status, 'latency_ms', latency_ms, 'input_bytes', input_bytes,
    'output_bytes', output_bytes, 'cache', cache)))
$$;

-- Captioning: gives a claimed job back to the queue until `until` (the project's daily reset),
-- without spending an attempt, when the project ceiling is met. 'stale' when the lease is gone.
create or replace function public.caption_job_defer(object_id uuid, lease_token uuid, until timestamptz, reason text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  job captioning.jobs%rowtype;
begin
  job := captioning.lock_leased_job(caption_job_defer.object_id, caption_job_defer.lease_token);
  if job.object_id is null then
    return 'stale';
  end if;
  update captioning.jobs j
    set status = 'pending', lease_token = null, lease_until = null,
        attempts = greatest(0, j.attempts - 1),
        last_error = left(caption_job_defer.reason, 1000),
        next_attempt_at = caption_job_defer.until,
        updated_at = now()
    where j.object_id = job.object_id;
  return 'deferred';
end
$$;

revoke execute on all functions in schema inference from public, anon, authenticated;
revoke execute on function public.inference_reserve(text, uuid, text, text) from public, anon, authenticated;
revoke execute on function public.inference_settle(text, date, integer, boolean, text, uuid, text, text, integer,
  integer, bigint, bigint, text) from public, anon, authenticated;
revoke execute on function public.inference_settle_many(jsonb) from public, anon, authenticated;
revoke execute on function public.caption_job_defer(uuid, uuid, timestamptz, text) from public, anon, authenticated;
grant execute on function public.inference_reserve(text, uuid, text, text) to service_role;
grant execute on function public.inference_settle(text, date, integer, boolean, text, uuid, text, text, integer,
  integer, bigint, bigint, text) to service_role;
grant execute on function public.inference_settle_many(jsonb) to service_role;
grant execute on function public.caption_job_defer(uuid, uuid, timestamptz, text) to service_role;
grant select on all tables in schema inference to service_role;
