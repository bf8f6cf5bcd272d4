-- One rate toward Hugging Face for the whole project. Function instances come and go as the
-- platform likes, so their own limits cannot bound the calls in flight; the claim can:
--   * a job is claimed only while fewer than `max_in_flight` jobs hold a live lease;
--   * when any instance is told to slow down (429, or 503 with a retry hint) it records a pause
--     here, and no instance claims a job or calls Hugging Face until it ends.
-- A job refused for either reason stays pending, and the sweeper sends it again.

insert into captioning.settings (key, value) values
  ('max_in_flight', '16')
on conflict (key) do nothing;

-- The project-wide pause: one row, visible with `select * from captioning.rate`.
create table if not exists captioning.hf_pause (
  id boolean primary key default true check (id),
  paused_at timestamptz,
  paused_until timestamptz,
  upstream_status integer,
  updated_at timestamptz not null default now()
);
insert into captioning.hf_pause (id) values (true) on conflict (id) do nothing;
alter table captioning.hf_pause enable row level security;
grant select on table captioning.hf_pause to service_role;

comment on table captioning.hf_pause is
  'Project-wide pause toward Hugging Face: no job is claimed and no call is made before paused_until.';

-- Jobs holding a live lease: the Hugging Face work in flight across every instance.
create or replace function captioning.in_flight()
returns integer
language sql
stable
set search_path = ''
as $$
  select count(*)::integer from captioning.jobs j where j.status = 'processing' and j.lease_until > now()
$$;

create or replace view captioning.rate as
  select captioning.in_flight() as in_flight,
         captioning.setting('max_in_flight')::integer as max_in_flight,
         p.paused_until,
         greatest(p.paused_until - now(), interval '0') as paused_for,
         p.upstream_status,
         p.paused_at
  from captioning.hf_pause p;

comment on view captioning.rate is 'Captioning work in flight against max_in_flight, and the project-wide pause.';

-- Records a pause asked for by the upstream; a longer pause already recorded wins.
create or replace function public.caption_rate_pause(seconds double precision, upstream_status integer)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
declare
  until timestamptz := now() + make_interval(secs => least(greatest(seconds, 0), 3600));
  result timestamptz;
begin
  update captioning.hf_pause p
    set paused_at = case when p.paused_until is null or p.paused_until <= now() then now() else p.paused_at end,
        paused_until = greatest(coalesce(p.paused_until, until), until),
        upstream_status = case when p.paused_until is null or p.paused_until < until
                               then caption_rate_pause.upstream_status else p.upstream_status end,
        updated_at = now()
    where p.id
    returning p.paused_until into result;
  return result;
end
$$;

-- How long calls must still wait, in seconds (0 when they may go out).
create or replace function public.caption_rate_wait()
returns double precision
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(greatest(extract(epoch from (p.paused_until - now())), 0), 0)::double precision
  from captioning.hf_pause p
$$;

-- Records why an attempt could not start (e.g. the function is misconfigured) without touching
-- the job's state: the sweeper keeps sending it, and `select * from captioning.jobs` says why.
create or replace function public.caption_job_note(object_id uuid, error text)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with noted as (
    update captioning.jobs j
      set last_error = left(caption_job_note.error, 1000), updated_at = now()
      where j.object_id = caption_job_note.object_id and j.status in ('pending', 'processing')
    returning 1
  )
  select exists (select 1 from noted)
$$;

-- The claim, as before, plus the project-wide limits. New outcomes: paused (a pause is recorded;
-- the job's next attempt moves to its end) and throttled (max_in_flight jobs hold a lease; the
-- job stays due and the next sweep sends it again). An object deleted while it is being claimed
-- is missing, not an error.
create or replace function public.caption_job_claim(object_id uuid, take boolean default true)
returns table (
  outcome text,
  lease_token uuid,
  bucket_id text,
  name text,
  object_version text,
  mimetype text,
  size bigint,
  attempts integer,
  last_error text
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  obj storage.objects%rowtype;
  job captioning.jobs%rowtype;
  pause_until timestamptz;
begin
  select * into obj from storage.objects o where o.id = caption_job_claim.object_id;
  if not found then
    return query select 'missing', null::uuid, null::text, null::text, null::text, null::text, null::bigint, 0, null::text;
    return;
  end if;
  if not captioning.is_captionable(obj.bucket_id, obj.metadata) then
    return query select 'skipped', null::uuid, obj.bucket_id, obj.name, obj.version, obj.metadata ->> 'mimetype', null::bigint, 0, null::text;
    return;
  end if;

  -- Objects stored before the pipeline (or whose trigger was disabled) get their job here.
  begin
    insert into captioning.jobs (object_id, object_version) values (obj.id, obj.version)
    on conflict do nothing;
  exception when foreign_key_violation then
    -- Deleted since the select above.
    return query select 'missing', null::uuid, null::text, null::text, null::text, null::text, null::bigint, 0, null::text;
    return;
  end;

  select * into job from captioning.jobs j where j.object_id = obj.id for update skip locked;
  if not found then
    outcome := 'busy';
  elsif job.status = 'done' then
    outcome := 'done';
  elsif job.status = 'failed' then
    outcome := 'failed';
  elsif job.status = 'processing' and job.lease_until > now() then
    outcome := 'busy';
  elsif job.status = 'pending' and job.next_attempt_at > now() then
    outcome := 'scheduled';
  else
    select p.paused_until into pause_until from captioning.hf_pause p where p.paused_until > now();
    if pause_until is not null then
      update captioning.jobs j
        set status = 'pending', lease_token = null, lease_until = null,
            next_attempt_at = greatest(j.next_attempt_at, pause_until), updated_at = now()
        where j.object_id = obj.id
        returning * into job;
      outcome := 'paused';
    elsif not take then
      outcome := 'due';
    else
      -- One claim at a time across the project, so two claims cannot both see the last free slot.
      perform pg_advisory_xact_lock(hashtext('captioning.max_in_flight'));
      if captioning.in_flight() >= captioning.setting('max_in_flight')::integer then
        -- Still due; cleared so the next sweep sends it again.
        update captioning.jobs j set last_dispatched_at = null, updated_at = now() where j.object_id = obj.id;
        outcome := 'throttled';
      else
        update captioning.jobs j
          set status = 'processing',
              attempts = j.attempts + 1,
              object_version = obj.version,
              lease_token = gen_random_uuid(),
              lease_until = now() + make_interval(secs => captioning.setting('lease_seconds')::double precision),
              updated_at = now()
          where j.object_id = obj.id
          returning * into job;
        outcome := 'claimed';
      end if;
    end if;
  end if;

  return query select
    outcome,
    case when outcome = 'claimed' then job.lease_token end,
    obj.bucket_id,
    obj.name,
    obj.version,
    obj.metadata ->> 'mimetype',
    (obj.metadata ->> 'size')::bigint,
    coalesce(job.attempts, 0),
    job.last_error;
end
$$;

-- Claims the job that has waited longest among those due, for an instance that just finished one:
-- a slot freed by a finished job is filled at once instead of at the next sweep. Same outcomes as
-- caption_job_claim; no row when nothing is due.
create or replace function public.caption_job_claim_next()
returns table (
  object_id uuid,
  outcome text,
  lease_token uuid,
  bucket_id text,
  name text,
  object_version text,
  mimetype text,
  size bigint,
  attempts integer,
  last_error text
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  next_id uuid;
begin
  select j.object_id into next_id from captioning.jobs j
    where j.status = 'pending' and j.next_attempt_at <= now()
    order by j.next_attempt_at
    limit 1
    for update skip locked;
  if next_id is null then
    return;
  end if;
  return query select next_id, c.* from public.caption_job_claim(next_id, true) c;
end
$$;

-- The sweeper, as before, but it sends no more jobs than there are free slots, and none during a
-- pause: a burst of uploads is fed to the functions at the project's rate instead of all at once.
create or replace function captioning.sweep()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  job record;
  sent integer := 0;
  budget integer;
begin
  update captioning.jobs j
    set status = 'failed', lease_token = null, lease_until = null, finished_at = now(), updated_at = now(),
        last_error = coalesce(j.last_error || '; ', '') || 'lease expired on the last attempt'
    where j.status = 'processing'
      and j.lease_until < now()
      and j.attempts >= captioning.setting('max_attempts')::integer;

  if exists (select 1 from captioning.hf_pause p where p.paused_until > now()) then
    return 0;
  end if;
  budget := least(
    captioning.setting('sweep_batch')::integer,
    greatest(captioning.setting('max_in_flight')::integer - captioning.in_flight(), 0)
  );

  for job in
    select j.object_id from captioning.jobs j
    where (j.status = 'pending' and j.next_attempt_at <= now()
           and (j.last_dispatched_at is null
                or j.last_dispatched_at < now() - make_interval(secs => captioning.setting('redispatch_seconds')::double precision)
                or j.last_dispatched_at < j.next_attempt_at))
       or (j.status = 'processing' and j.lease_until < now()
           and (j.last_dispatched_at is null or j.last_dispatched_at < j.lease_until))
    order by j.next_attempt_at
    limit budget
    for update skip locked
  loop
    perform captioning.send_webhook(job.object_id, 'UPDATE');
    sent := sent + 1;
  end loop;
  return sent;
end
$$;

revoke execute on all functions in schema captioning from public, anon, authenticated;
revoke execute on function public.caption_rate_pause(double precision, integer) from public, anon, authenticated;
revoke execute on function public.caption_rate_wait() from public, anon, authenticated;
revoke execute on function public.caption_job_note(uuid, text) from public, anon, authenticated;
revoke execute on function public.caption_job_claim_next() from public, anon, authenticated;
grant execute on function public.caption_job_claim_next() to service_role;
grant execute on function public.caption_rate_pause(double precision, integer) to service_role;
grant execute on function public.caption_rate_wait() to service_role;
grant execute on function public.caption_job_note(uuid, text) to service_role;
revoke all on captioning.rate from public, anon, authenticated;
grant select on captioning.rate to service_role;

-- pg_cron older than 1.5 takes no seconds interval; the first migration then fell back to once a
-- minute without a word. Say so.
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    begin
      perform cron.schedule('captioning-sweep', '5 seconds', 'select captioning.sweep()');
    exception when others then
      perform cron.schedule('captioning-sweep', '* * * * *', 'select captioning.sweep()');
      raise notice 'pg_cron % takes no seconds interval: the captioning sweeper runs once a minute, so a retry or a throttled job can wait up to a minute',
        (select extversion from pg_extension where extname = 'pg_cron');
    end;
  end if;
exception when others then
  raise warning 'pg_cron could not be set up (%): run select captioning.sweep() periodically yourself', sqlerrm;
end
$$;
