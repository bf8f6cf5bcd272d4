-- The inference result cache: never pay twice for the same answer.
--
-- An entry is keyed by a SHA-256 over the task, the answering model, the canonical parameters
-- and the input's content (see supabase/functions/_shared/cache_key.ts). JSON answers live in
-- cache.entries (a schema the API does not expose); binary answers (images, audio) are objects
-- in the private Storage bucket `inference-cache`, with their path in cache.entries. Functions
-- reach it only through the service_role RPCs below.
--
-- Expiry: a TTL per task (cache.ttl, the '*' row for the rest) and a size cap for the whole
-- cache (cache.settings max_bytes). cache.evict() deletes entries past their TTL, then the least
-- recently used beyond the cap. SQL cannot delete a Storage object's bytes (only the Storage API
-- can; a plain DELETE on storage.objects is refused, and would orphan the bytes anyway), so an
-- evicted binary entry's path goes to cache.orphaned_objects, and the functions' cache layer
-- removes those objects through the Storage API (inference_cache_evict hands them out).

create schema if not exists cache;
comment on schema cache is 'Inference result cache; not exposed through the API, reached through inference_cache_* RPCs.';
revoke all on schema cache from public, anon, authenticated;

-- Tunables, changeable with a plain UPDATE.
create table if not exists cache.settings (
  key text primary key,
  value text not null
);

insert into cache.settings (key, value) values
  -- Total bytes of all ready entries (JSON and objects) before least-recently-used eviction.
  ('max_bytes', '1073741824'),
  -- A pending entry whose producer died is taken over after its lease; dead rows go after this.
  ('pending_grace_seconds', '60')
on conflict (key) do nothing;

create or replace function cache.setting(name text)
returns text
language sql
stable
set search_path = ''
as $$
  select value from cache.settings where key = name
$$;

-- Time to live per task; the '*' row applies to tasks without their own.
create table if not exists cache.ttl (
  task text primary key,
  ttl_seconds integer not null check (ttl_seconds >= 0)
);

insert into cache.ttl (task, ttl_seconds) values
  ('*', 604800),            -- 7 days
  ('caption', 7776000),     -- 90 days: captions by content, for the captioning pipeline
  ('feature-extraction', 2592000),
  ('text-to-image', 2592000),
  ('text-to-speech', 2592000)
on conflict (task) do nothing;

create or replace function cache.ttl_of(task text)
returns interval
language sql
stable
set search_path = ''
as $$
  select make_interval(secs => coalesce(
    (select t.ttl_seconds from cache.ttl t where t.task = ttl_of.task),
    (select t.ttl_seconds from cache.ttl t where t.task = '*'),
    0))
$$;

create table if not exists cache.entries (
  key text primary key check (key ~ '^[0-9a-f]{64}$'),
  task text not null,
  model text not null,
  -- pending: one producer holds a lease and is calling upstream; the others wait for it.
  status text not null default 'pending' check (status in ('pending', 'ready')),
  lease_token uuid,
  lease_until timestamptz,
  content_type text,
  -- A JSON answer, kept as sent (json, not jsonb: the bytes a hit returns are the bytes stored).
  body json,
  -- A binary answer's object in the inference-cache bucket.
  object_path text,
  byte_size bigint not null default 0,
  hits bigint not null default 0,
  created_at timestamptz not null default now(),
  last_hit_at timestamptz,
  constraint ready_entries_hold_one_answer check (
    status = 'pending' or (content_type is not null and ((body is null) <> (object_path is null)))
  )
);

comment on table cache.entries is
  'Cached inference answers by content key; evicted by TTL (cache.ttl) and size (cache.settings max_bytes).';

create index if not exists entries_recency_idx on cache.entries ((coalesce(last_hit_at, created_at)))
  where status = 'ready';

alter table cache.entries enable row level security;

-- Objects of evicted or replaced entries, waiting for the Storage API to delete them.
create table if not exists cache.orphaned_objects (
  path text primary key,
  queued_at timestamptz not null default now()
);

-- The private bucket for binary answers. No storage policy names it, so only the service role
-- (which bypasses RLS) can read or write it.
insert into storage.buckets (id, name, public)
values ('inference-cache', 'inference-cache', false)
on conflict (id) do nothing;

-- A fresh, ready entry: counts the hit and returns the answer (nothing when absent or expired).
create or replace function public.inference_cache_lookup(cache_key text)
returns table (
  task text,
  model text,
  content_type text,
  body text,
  object_path text,
  byte_size bigint,
  hits bigint,
  created_at timestamptz
)
language sql
volatile
security definer
set search_path = ''
as $$
  update cache.entries e
    set hits = e.hits + 1, last_hit_at = now()
    where e.key = inference_cache_lookup.cache_key
      and e.status = 'ready'
      and e.created_at + cache.ttl_of(e.task) > now()
  returning e.task, e.model, e.content_type, e.body::text, e.object_path, e.byte_size, e.hits, e.created_at
$$;

-- Claims the right to produce an answer, so identical calls on other instances wait for one
-- upstream call. Outcomes: claimed (lease_token set: call upstream, then put or release), ready
-- (a fresh answer is there: look it up), pending (another producer holds a live lease: wait).
-- An expired entry or a dead producer's lease is taken over.
create or replace function public.inference_cache_claim(
  cache_key text,
  task text,
  model text,
  lease_seconds double precision
)
returns table (outcome text, lease_token uuid)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  entry cache.entries%rowtype;
  token uuid := gen_random_uuid();
  until timestamptz := now() + make_interval(secs => greatest(lease_seconds, 1));
begin
  insert into cache.entries (key, task, model, status, lease_token, lease_until)
  values (cache_key, inference_cache_claim.task, inference_cache_claim.model, 'pending', token, until)
  on conflict (key) do nothing;
  if found then
    return query select 'claimed', token;
    return;
  end if;

  select * into entry from cache.entries e where e.key = cache_key for update;
  if entry.status = 'ready' and entry.created_at + cache.ttl_of(entry.task) > now() then
    return query select 'ready', null::uuid;
    return;
  end if;
  if entry.status = 'pending' and entry.lease_until > now() then
    return query select 'pending', null::uuid;
    return;
  end if;

  if entry.object_path is not null then
    insert into cache.orphaned_objects (path) values (entry.object_path) on conflict do nothing;
  end if;
  update cache.entries e
    set task = inference_cache_claim.task, model = inference_cache_claim.model, status = 'pending',
        lease_token = token, lease_until = until, content_type = null, body = null, object_path = null,
        byte_size = 0, hits = 0, created_at = now(), last_hit_at = null
    where e.key = cache_key;
  return query select 'claimed', token;
end
$$;

-- Stores an answer (JSON in body, or the path of an object already uploaded to the bucket),
-- replacing whatever the key held; a replaced object is queued for deletion.
create or replace function public.inference_cache_put(
  cache_key text,
  task text,
  model text,
  content_type text,
  body text default null,
  object_path text default null,
  byte_size bigint default 0
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  previous text;
begin
  select e.object_path into previous from cache.entries e where e.key = cache_key for update;
  if previous is not null and previous is distinct from inference_cache_put.object_path then
    insert into cache.orphaned_objects (path) values (previous) on conflict do nothing;
  end if;

  insert into cache.entries as e (key, task, model, status, content_type, body, object_path, byte_size)
  values (cache_key, inference_cache_put.task, inference_cache_put.model, 'ready', inference_cache_put.content_type,
          inference_cache_put.body::json, inference_cache_put.object_path, inference_cache_put.byte_size)
  on conflict (key) do update
    set task = excluded.task, model = excluded.model, status = 'ready', lease_token = null, lease_until = null,
        content_type = excluded.content_type, body = excluded.body, object_path = excluded.object_path,
        byte_size = excluded.byte_size, hits = 0, created_at = now(), last_hit_at = null;
end
$$;

-- Gives up a claim (the upstream call failed or its answer is not cacheable), so waiters stop waiting.
create or replace function public.inference_cache_release(cache_key text, lease_token uuid)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
  with released as (
    delete from cache.entries e
    where e.key = inference_cache_release.cache_key
      and e.lease_token = inference_cache_release.lease_token
      and e.status = 'pending'
    returning 1
  )
  select exists (select 1 from released)
$$;

-- Evicts entries past their TTL, dead pending rows, then the least recently used ready entries
-- beyond max_bytes (the newest are kept). Evicted objects are queued for the Storage API.
-- Returns the number of entries evicted.
create or replace function cache.evict()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  expired integer;
  over_cap integer;
begin
  with gone as (
    delete from cache.entries e
    where (e.status = 'ready' and e.created_at + cache.ttl_of(e.task) <= now())
       or (e.status = 'pending'
           and e.lease_until < now() - make_interval(secs => cache.setting('pending_grace_seconds')::double precision))
    returning e.object_path
  ), queued as (
    insert into cache.orphaned_objects (path)
    select object_path from gone where object_path is not null
    on conflict do nothing
  )
  select count(*) into expired from gone;

  with ranked as (
    select e.key,
           sum(e.byte_size) over (order by coalesce(e.last_hit_at, e.created_at) desc, e.key) as kept_bytes
    from cache.entries e
    where e.status = 'ready'
  ), gone as (
    delete from cache.entries e
    using ranked r
    where e.key = r.key and r.kept_bytes > cache.setting('max_bytes')::bigint
    returning e.object_path
  ), queued as (
    insert into cache.orphaned_objects (path)
    select object_path from gone where object_path is not null
    on conflict do nothing
  )
  select count(*) into over_cap from gone;

  return expired + over_cap;
end
$$;

-- Runs eviction, then hands out up to max_objects bucket paths for the caller to delete through
-- the Storage API (and confirm with inference_cache_forget_objects).
create or replace function public.inference_cache_evict(max_objects integer default 100)
returns table (path text)
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  perform cache.evict();
  return query select o.path from cache.orphaned_objects o order by o.queued_at, o.path limit max_objects;
end
$$;

-- Forgets orphaned objects the Storage API has deleted; `paths` holds one path a line (a Storage
-- key cannot contain a newline).
create or replace function public.inference_cache_forget_objects(paths text)
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
  with forgotten as (
    delete from cache.orphaned_objects o
    where o.path = any (string_to_array(paths, E'\n'))
    returning 1
  )
  select count(*)::integer from forgotten
$$;

-- Empties the cache: every entry goes, and every object is queued for the Storage API.
create or replace function cache.clear(only_task text default null)
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
  with gone as (
    delete from cache.entries e where only_task is null or e.task = only_task returning e.object_path
  ), queued as (
    insert into cache.orphaned_objects (path)
    select object_path from gone where object_path is not null
    on conflict do nothing
  )
  select count(*)::integer from gone
$$;

-- Captions by content: the captioning job records whether its caption came from the cache.
alter table captioning.jobs add column if not exists cache text check (cache in ('hit', 'miss'));
comment on column captioning.jobs.cache is
  'hit: the caption of identical bytes was reused with no Hugging Face call; miss: the model was called.';

-- A new version (or a job sent back to the queue) has not been captioned yet.
create or replace function captioning.forget_cache_outcome()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.cache := null;
  return new;
end
$$;

drop trigger if exists forget_cache_outcome on captioning.jobs;
create trigger forget_cache_outcome
  before update on captioning.jobs
  for each row
  when (new.object_version is distinct from old.object_version
        or (new.status = 'pending' and old.status is distinct from 'pending'))
  execute function captioning.forget_cache_outcome();

-- Records the cache outcome of the current attempt, only for the lease holder.
create or replace function public.caption_job_record_cache(object_id uuid, lease_token uuid, cache text)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
  with recorded as (
    update captioning.jobs j
      set cache = caption_job_record_cache.cache
      where j.object_id = caption_job_record_cache.object_id
        and j.lease_token = caption_job_record_cache.lease_token
        and j.status = 'processing'
    returning 1
  )
  select exists (select 1 from recorded)
$$;

revoke execute on all functions in schema cache from public, anon, authenticated;
revoke execute on function public.inference_cache_lookup(text) from public, anon, authenticated;
revoke execute on function public.inference_cache_claim(text, text, text, double precision) from public, anon, authenticated;
revoke execute on function public.inference_cache_put(text, text, text, text, text, text, bigint) from public, anon, authenticated;
revoke execute on function public.inference_cache_release(text, uuid) from public, anon, authenticated;
revoke execute on function public.inference_cache_evict(integer) from public, anon, authenticated;
revoke execute on function public.inference_cache_forget_objects(text) from public, anon, authenticated;
revoke execute on function public.caption_job_record_cache(uuid, uuid, text) from public, anon, authenticated;
grant execute on function public.inference_cache_lookup(text) to service_role;
grant execute on function public.inference_cache_claim(text, text, text, double precision) to service_role;
grant execute on function public.inference_cache_put(text, text, text, text, text, text, bigint) to service_role;
grant execute on function public.inference_cache_release(text, uuid) to service_role;
grant execute on function public.inference_cache_evict(integer) to service_role;
grant execute on function public.inference_cache_forget_objects(text) to service_role;
grant execute on function public.caption_job_record_cache(uuid, uuid, text) to service_role;

-- Eviction every minute where pg_cron is installed. Without it, eviction still runs: the
-- functions call inference_cache_evict() at most once a minute per instance while they store.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    create extension if not exists pg_cron;
    perform cron.schedule('inference-cache-evict', '* * * * *', 'select cache.evict()');
  else
    raise warning 'pg_cron is not available: the cache is evicted only while functions store answers';
  end if;
exception when others then
  raise warning 'pg_cron could not be set up (%): the cache is evicted only while functions store answers', sqlerrm;
end
$$;
