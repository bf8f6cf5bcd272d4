-- The captioning pipeline: an upload to the captions bucket writes a durable job in the same
-- transaction, then a Database Webhook (pg_net) calls the huggingface-image-captioning function at
-- once. A sweeper (pg_cron) re-sends jobs that are due: never picked up, whose worker died, or
-- whose failed attempt is due for a retry. Nothing depends on pg_net's unlogged queue surviving.

do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_net') then
    create extension if not exists pg_net;
  end if;
end
$$;

create schema if not exists captioning;
comment on schema captioning is 'Job state of the captioning pipeline; not exposed through the API.';
revoke all on schema captioning from public, anon, authenticated;
grant usage on schema captioning to service_role;

-- Tunables, changeable with a plain UPDATE (durations in seconds, fractions allowed).
create table if not exists captioning.settings (
  key text primary key,
  value text not null
);

insert into captioning.settings (key, value) values
  ('bucket', 'images'),
  ('function_path', '/functions/v1/huggingface-image-captioning'),
  ('webhook_timeout_ms', '5000'),
  ('max_attempts', '5'),
  ('lease_seconds', '180'),
  ('retry_base_seconds', '10'),
  ('retry_max_seconds', '600'),
  ('redispatch_seconds', '30'),
  ('sweep_batch', '50')
on conflict (key) do nothing;

create or replace function captioning.setting(name text)
returns text
language sql
stable
set search_path = ''
as $$
  select value from captioning.settings where key = name
$$;

create table if not exists captioning.jobs (
  object_id uuid primary key references storage.objects (id) on delete cascade,
  -- storage.objects.version this job captions; a re-upload resets the job to the new version.
  object_version text,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'done', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- A claim holds the job until lease_until; only the holder of lease_token may finish it.
  lease_until timestamptz,
  lease_token uuid,
  last_error text,
  last_dispatched_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz
);

comment on table captioning.jobs is
  'One captioning job per image object: pending -> processing -> done, or failed after max_attempts (dead letter).';

create index if not exists jobs_due_idx on captioning.jobs (next_attempt_at)
  where status in ('pending', 'processing');

alter table captioning.jobs enable row level security;
grant select on table captioning.jobs to service_role;

-- Whether an object is one the pipeline captions.
create or replace function captioning.is_captionable(bucket_id text, metadata jsonb)
returns boolean
language sql
stable
set search_path = ''
as $$
  select bucket_id = captioning.setting('bucket')
     and coalesce(metadata ->> 'mimetype', '') like 'image/%'
$$;

-- Sends the standard Database Webhook payload for one object to the function. Never raises: a
-- missing secret or a pg_net failure is a warning plus last_error on the job, and the sweeper
-- sends it again later.
create or replace function captioning.send_webhook(
  object_id uuid,
  event_type text default 'INSERT',
  old_record jsonb default null
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  project_url text;
  secret text;
  record jsonb;
  request_id bigint;
begin
  select to_jsonb(o) into record from storage.objects o where o.id = send_webhook.object_id;
  if record is null then
    return null;
  end if;

  begin
    select decrypted_secret into project_url from vault.decrypted_secrets where name = 'project_url';
    select decrypted_secret into secret from vault.decrypted_secrets where name = 'caption_webhook_secret';
    if project_url is null or secret is null then
      raise exception 'vault secret % is missing',
        case when project_url is null then 'project_url' else 'caption_webhook_secret' end;
    end if;

    select net.http_post(
      url := rtrim(project_url, '/') || captioning.setting('function_path'),
      body := jsonb_build_object(
        'type', event_type,
        'table', 'objects',
        'schema', 'storage',
        'record', record,
        'old_record', old_record
      ),
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'x-webhook-secret', secret
      ),
      timeout_milliseconds := captioning.setting('webhook_timeout_ms')::integer
    ) into request_id;

    update captioning.jobs j set last_dispatched_at = now() where j.object_id = send_webhook.object_id;
    return request_id;
  exception when others then
    raise warning 'captioning webhook for object % not sent: %', send_webhook.object_id, sqlerrm;
    update captioning.jobs j
      set last_error = 'webhook not sent: ' || sqlerrm, last_dispatched_at = now(), updated_at = now()
      where j.object_id = send_webhook.object_id;
    return null;
  end;
end
$$;

-- The trigger: a new version of an image in the bucket gets a fresh pending job (same
-- transaction as the upload, so it cannot be missed) and an immediate webhook.
create or replace function captioning.on_object_written()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not captioning.is_captionable(new.bucket_id, new.metadata) then
    return null;
  end if;

  insert into captioning.jobs as j (object_id, object_version)
  values (new.id, new.version)
  on conflict (object_id) do update
    set object_version = excluded.object_version,
        status = 'pending',
        attempts = 0,
        next_attempt_at = now(),
        lease_until = null,
        lease_token = null,
        last_error = null,
        finished_at = null,
        updated_at = now();

  perform captioning.send_webhook(
    new.id,
    tg_op,
    case when tg_op = 'UPDATE' then to_jsonb(old) end
  );
  return null;
end
$$;

drop trigger if exists caption_new_image on storage.objects;
create trigger caption_new_image
  after insert on storage.objects
  for each row execute function captioning.on_object_written();

-- An upsert over an existing path keeps the id and fires UPDATE with a new version.
drop trigger if exists caption_replaced_image on storage.objects;
create trigger caption_replaced_image
  after update on storage.objects
  for each row
  when (old.version is distinct from new.version)
  execute function captioning.on_object_written();

-- Claims the job of one object for a worker, or with take = false only says whether it could.
-- Outcomes: claimed (lease_token set) or due (take = false), missing (no such object), skipped
-- (not captionable), busy (another worker holds it), done (this version is captioned), failed
-- (dead letter), scheduled (a retry is due later).
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

  -- Objects stored before this migration (or whose trigger was disabled) get their job here.
  insert into captioning.jobs (object_id, object_version) values (obj.id, obj.version)
  on conflict do nothing;

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
  elsif not take then
    outcome := 'due';
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

-- Locks a job for its lease holder; all nulls when the lease is no longer theirs (expired and
-- re-claimed, the object replaced or deleted).
create or replace function captioning.lock_leased_job(object_id uuid, lease_token uuid)
returns captioning.jobs
language sql
set search_path = ''
as $$
  select * from captioning.jobs j
  where j.object_id = lock_leased_job.object_id
    and j.lease_token = lock_leased_job.lease_token
    and j.status = 'processing'
  for update
$$;

-- Stores the caption and finishes the job in one transaction, only for the current lease holder:
-- a stale attempt (lease expired and re-claimed, or the object replaced) changes nothing.
create or replace function public.caption_job_complete(
  object_id uuid,
  lease_token uuid,
  caption text,
  model text
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  job captioning.jobs%rowtype;
begin
  job := captioning.lock_leased_job(caption_job_complete.object_id, caption_job_complete.lease_token);
  if job.object_id is null then
    return 'stale';
  end if;

  insert into public.image_caption as c (id, caption, model, object_version)
  values (job.object_id, caption_job_complete.caption, caption_job_complete.model, job.object_version)
  on conflict (id) do update
    set caption = excluded.caption,
        model = excluded.model,
        object_version = excluded.object_version,
        updated_at = now();

  update captioning.jobs j
    set status = 'done', lease_token = null, lease_until = null, last_error = null,
        finished_at = now(), updated_at = now()
    where j.object_id = job.object_id;
  return 'done';
end
$$;

-- Records a failed attempt: retried later with exponential backoff and jitter (never sooner than
-- retry_after_seconds), or dead-lettered as failed when it is permanent or attempts run out.
create or replace function public.caption_job_fail(
  object_id uuid,
  lease_token uuid,
  error text,
  retryable boolean,
  retry_after_seconds integer default null
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  job captioning.jobs%rowtype;
  backoff double precision;
begin
  job := captioning.lock_leased_job(caption_job_fail.object_id, caption_job_fail.lease_token);
  if job.object_id is null then
    return 'stale';
  end if;

  if retryable and job.attempts < captioning.setting('max_attempts')::integer then
    backoff := least(
      captioning.setting('retry_max_seconds')::double precision,
      captioning.setting('retry_base_seconds')::double precision * 2 ^ (job.attempts - 1)
    ) * (0.5 + random() / 2);
    update captioning.jobs j
      set status = 'pending', lease_token = null, lease_until = null,
          last_error = left(caption_job_fail.error, 1000),
          next_attempt_at = now() + make_interval(secs => greatest(backoff, coalesce(retry_after_seconds, 0))),
          updated_at = now()
      where j.object_id = job.object_id;
    return 'retry';
  end if;

  update captioning.jobs j
    set status = 'failed', lease_token = null, lease_until = null,
        last_error = left(caption_job_fail.error, 1000), finished_at = now(), updated_at = now()
    where j.object_id = job.object_id;
  return 'failed';
end
$$;

-- Re-sends due jobs; pg_cron runs it every few seconds. A job is due when it is pending and its
-- time has come (and it was not just sent), or processing with an expired lease (its worker
-- died). A lease that expires on the last attempt dead-letters the job.
create or replace function captioning.sweep()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  job record;
  sent integer := 0;
begin
  update captioning.jobs j
    set status = 'failed', lease_token = null, lease_until = null, finished_at = now(), updated_at = now(),
        last_error = coalesce(j.last_error || '; ', '') || 'lease expired on the last attempt'
    where j.status = 'processing'
      and j.lease_until < now()
      and j.attempts >= captioning.setting('max_attempts')::integer;

  for job in
    select j.object_id from captioning.jobs j
    where (j.status = 'pending' and j.next_attempt_at <= now()
           and (j.last_dispatched_at is null
                or j.last_dispatched_at < now() - make_interval(secs => captioning.setting('redispatch_seconds')::double precision)
                or j.last_dispatched_at < j.next_attempt_at))
       or (j.status = 'processing' and j.lease_until < now()
           and (j.last_dispatched_at is null or j.last_dispatched_at < j.lease_until))
    order by j.next_attempt_at
    limit captioning.setting('sweep_batch')::integer
    for update skip locked
  loop
    perform captioning.send_webhook(job.object_id, 'UPDATE');
    sent := sent + 1;
  end loop;
  return sent;
end
$$;

-- Puts failed jobs (all, or one object's) back in the queue with a fresh attempt budget.
create or replace function captioning.requeue_failed(only_object uuid default null)
returns integer
language sql
security definer
set search_path = ''
as $$
  with requeued as (
    update captioning.jobs j
      set status = 'pending', attempts = 0, next_attempt_at = now(), last_dispatched_at = null,
          finished_at = null, updated_at = now()
      where j.status = 'failed' and (only_object is null or j.object_id = only_object)
      returning 1
  )
  select count(*)::integer from requeued
$$;

-- Enqueues every image in the bucket that has no caption and no live job; the sweeper sends them.
create or replace function captioning.backfill()
returns integer
language sql
security definer
set search_path = ''
as $$
  with missing as (
    insert into captioning.jobs (object_id, object_version)
    select o.id, o.version
    from storage.objects o
    where captioning.is_captionable(o.bucket_id, o.metadata)
      and not exists (select 1 from public.image_caption c where c.id = o.id)
    on conflict (object_id) do update
      set status = 'pending', attempts = 0, next_attempt_at = now(), last_dispatched_at = null,
          finished_at = null, updated_at = now()
      where captioning.jobs.status in ('done', 'failed')
    returning 1
  )
  select count(*)::integer from missing
$$;

revoke execute on all functions in schema captioning from public, anon, authenticated;
revoke execute on function public.caption_job_claim(uuid, boolean) from public, anon, authenticated;
revoke execute on function public.caption_job_complete(uuid, uuid, text, text) from public, anon, authenticated;
revoke execute on function public.caption_job_fail(uuid, uuid, text, boolean, integer) from public, anon, authenticated;
grant execute on function public.caption_job_claim(uuid, boolean) to service_role;
grant execute on function public.caption_job_complete(uuid, uuid, text, text) to service_role;
grant execute on function public.caption_job_fail(uuid, uuid, text, boolean, integer) to service_role;

-- The sweeper, where pg_cron can be had. pg_cron 1.5+ takes a seconds interval; older versions
-- only minutes.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    create extension if not exists pg_cron;
    begin
      perform cron.schedule('captioning-sweep', '5 seconds', 'select captioning.sweep()');
    exception when others then
      perform cron.schedule('captioning-sweep', '* * * * *', 'select captioning.sweep()');
    end;
  else
    raise warning 'pg_cron is not available: run select captioning.sweep() periodically yourself';
  end if;
exception when others then
  raise warning 'pg_cron could not be set up (%): run select captioning.sweep() periodically yourself', sqlerrm;
end
$$;
