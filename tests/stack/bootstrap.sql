-- tests/stack/bootstrap.sql
-- What the Supabase platform provides before a project's migrations run: API roles, auth, storage,
-- vault and a pg_net stand-in. Written from the public column/behaviour facts; safe to run again.
-- Runs as a superuser, in one transaction (see database.ts).

set local client_min_messages = warning;

-- Against a database that already has the platform's schemas (a real Supabase Postgres), nothing it
-- has is replaced: functions, triggers and views are created only when missing, tables `if not exists`.
create or replace function pg_temp.create_missing_function(signature text, ddl text) returns void
language plpgsql
as $$
begin
  if to_regprocedure(signature) is null then
    execute ddl;
  end if;
end
$$;

create or replace function pg_temp.create_missing_trigger(tablename regclass, trigger_name text, ddl text) returns void
language plpgsql
as $$
begin
  if not exists (select from pg_trigger where tgrelid = tablename and tgname = trigger_name) then
    execute ddl;
  end if;
end
$$;

-- ---------------------------------------------------------------- roles
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- ---------------------------------------------------------------- extensions
-- Supabase keeps extensions in their own schema; migrations often call extensions.uuid_generate_v4().
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
do $$
begin
  if exists (select from pg_available_extensions where name = 'pgcrypto') then
    create extension if not exists pgcrypto with schema extensions;
  end if;
  if exists (select from pg_available_extensions where name = 'uuid-ossp') then
    create extension if not exists "uuid-ossp" with schema extensions;
  end if;
end
$$;

-- ---------------------------------------------------------------- auth
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  id uuid primary key default gen_random_uuid(),
  email text,
  created_at timestamptz default now()
);

-- What the Auth stand-in (auth_api.ts) keeps: Auth's own columns and its sessions and refresh tokens.
alter table auth.users
  add column if not exists aud text,
  add column if not exists role text,
  add column if not exists encrypted_password text,
  add column if not exists email_confirmed_at timestamptz,
  add column if not exists last_sign_in_at timestamptz,
  add column if not exists raw_app_meta_data jsonb,
  add column if not exists raw_user_meta_data jsonb,
  add column if not exists is_anonymous boolean not null default false,
  add column if not exists updated_at timestamptz default now();
create unique index if not exists users_email_partial_key on auth.users (email) where email is not null;

create table if not exists auth.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  aal text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  refreshed_at timestamptz,
  not_after timestamptz
);

create table if not exists auth.refresh_tokens (
  id bigserial primary key,
  token text unique,
  user_id text,
  session_id uuid references auth.sessions (id) on delete cascade,
  revoked boolean not null default false,
  parent text,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

-- The claims PostgREST (and our rest/storage stand-ins) put in the transaction-local GUC.
select pg_temp.create_missing_function('auth.jwt()', $ddl$
create function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;
$ddl$);

-- Null when there is no user (anon/service keys have no sub).
select pg_temp.create_missing_function('auth.uid()', $ddl$
create function auth.uid() returns uuid
language sql stable
as $$
  select nullif(coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), auth.jwt() ->> 'sub'), '')::uuid
$$;
$ddl$);

select pg_temp.create_missing_function('auth.role()', $ddl$
create function auth.role() returns text
language sql stable
as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), auth.jwt() ->> 'role')
$$;
$ddl$);

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

-- ---------------------------------------------------------------- storage
create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table if not exists storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  owner_id text,
  public boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  user_metadata jsonb
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

select pg_temp.create_missing_function('storage.foldername(text)', $ddl$
create function storage.foldername(name text) returns text[]
language sql immutable
as $$
  select (string_to_array(name, '/'))[1:cardinality(string_to_array(name, '/')) - 1]
$$;
$ddl$);

select pg_temp.create_missing_function('storage.filename(text)', $ddl$
create function storage.filename(name text) returns text
language sql immutable
as $$
  select (string_to_array(name, '/'))[cardinality(string_to_array(name, '/'))]
$$;
$ddl$);

-- Like the platform's: the text after the last dot of the file name (the whole name when it has no dot).
select pg_temp.create_missing_function('storage.extension(text)', $ddl$
create function storage.extension(name text) returns text
language sql immutable
as $$
  select reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;
$ddl$);

grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to anon, authenticated, service_role;

select pg_temp.create_missing_function('storage.touch_updated_at()', $ddl$
create function storage.touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
$ddl$);

select pg_temp.create_missing_trigger('storage.objects', 'update_objects_updated_at', $ddl$
  create trigger update_objects_updated_at before update on storage.objects
  for each row execute function storage.touch_updated_at()
$ddl$);

-- Recent platform versions refuse plain SQL deletes; only the Storage API (which sets the GUC) may delete.
select pg_temp.create_missing_function('storage.protect_delete()', $ddl$
create function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), '') is distinct from 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using errcode = '42501',
            hint = 'This prevents accidental data loss from orphaned objects.';
  end if;
  return null;
end
$$;
$ddl$);

select pg_temp.create_missing_trigger('storage.objects', 'protect_objects_delete', $ddl$
  create trigger protect_objects_delete before delete on storage.objects
  for each statement execute function storage.protect_delete()
$ddl$);

select pg_temp.create_missing_trigger('storage.buckets', 'protect_buckets_delete', $ddl$
  create trigger protect_buckets_delete before delete on storage.buckets
  for each statement execute function storage.protect_delete()
$ddl$);

grant all on storage.buckets, storage.objects to service_role;
grant select, insert, update, delete on storage.objects to anon, authenticated;
grant select on storage.buckets to anon, authenticated;

-- ---------------------------------------------------------------- vault
-- NO ENCRYPTION here: `secret` holds the plain text and decrypted_secrets just exposes it. Test use only.
create schema if not exists vault;
revoke all on schema vault from public;

create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index if not exists secrets_name_idx on vault.secrets (name) where name is not null;

do $$
begin
  if to_regclass('vault.decrypted_secrets') is null then
    create view vault.decrypted_secrets as
      select id, name, description, secret, secret as decrypted_secret, key_id, nonce, created_at, updated_at
      from vault.secrets;
  end if;
end
$$;

select pg_temp.create_missing_function('vault.create_secret(text, text, text)', $ddl$
create function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default ''
) returns uuid
language sql
as $$
  insert into vault.secrets (secret, name, description)
  values (new_secret, new_name, coalesce(new_description, ''))
  returning id
$$;
$ddl$);

select pg_temp.create_missing_function('vault.update_secret(uuid, text, text, text)', $ddl$
create function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null
) returns void
language sql
as $$
  update vault.secrets
     set secret = coalesce(new_secret, secret),
         name = coalesce(new_name, name),
         description = coalesce(new_description, description),
         updated_at = now()
   where id = secret_id
$$;
$ddl$);

-- As on the platform, the API roles (service_role included) cannot read Vault; only postgres can.
revoke all on vault.secrets, vault.decrypted_secrets from public, anon, authenticated, service_role;
revoke all on function vault.create_secret(text, text, text), vault.update_secret(uuid, text, text, text)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------- net (pg_net stand-in)
-- Only when neither the real extension nor an earlier stand-in is there; pg_net's own worker then runs instead.
do $do$
begin
  if exists (select from pg_namespace where nspname = 'net')
     or exists (select from pg_available_extensions where name = 'pg_net') then
    return;
  end if;

  create schema net;
  comment on schema net is 'pg_net stand-in (tests/stack); requests are sent by pg_net_worker.ts';

  create unlogged table net.http_request_queue (
    id bigserial primary key,
    method text not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
  );

  create unlogged table net._http_response (
    id bigint,
    status_code int,
    content_type text,
    headers jsonb,
    content text,
    timed_out bool,
    error_msg text,
    created timestamptz not null default now()
  );
  create index _http_response_created_idx on net._http_response (created);

  -- RFC 3986 percent-encoding of everything but the unreserved characters.
  create function net._urlencode(value text) returns text
  language sql immutable strict
  as $f$
    select coalesce(string_agg(
      case when b between 48 and 57 or b between 65 and 90 or b between 97 and 122 or b in (45, 46, 95, 126)
           then chr(b) else '%' || upper(lpad(to_hex(b), 2, '0')) end, '' order by i), '')
    from (select i, get_byte(convert_to(value, 'UTF8'), i) as b
            from generate_series(0, octet_length(convert_to(value, 'UTF8')) - 1) as i) as bytes
  $f$;

  create function net._with_params(url text, params jsonb) returns text
  language sql immutable
  as $f$
    select case when params is null or params = '{}'::jsonb then url
                else url || case when position('?' in url) > 0 then '&' else '?' end
                         || (select string_agg(net._urlencode(key) || '=' || net._urlencode(value), '&')
                               from jsonb_each_text(params))
           end
  $f$;

  -- NOTIFY is transactional: the worker is woken only after COMMIT, and a rollback drops the row and the wake-up.
  create function net._enqueue(method text, url text, headers jsonb, body bytea, timeout_milliseconds int)
  returns bigint
  language plpgsql
  as $f$
  declare
    request_id bigint;
  begin
    insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
    values (method, url, coalesce(headers, '{}'::jsonb), body, timeout_milliseconds)
    returning id into request_id;
    perform pg_notify('pg_net_queue', request_id::text);
    return request_id;
  end
  $f$;

  create function net.http_post(
    url text,
    body jsonb default '{}'::jsonb,
    params jsonb default '{}'::jsonb,
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    timeout_milliseconds int default 5000
  ) returns bigint
  language sql volatile security definer set search_path = net
  as $f$
    select net._enqueue('POST', net._with_params(url, params), headers,
                        case when body is null then null else convert_to(body::text, 'UTF8') end,
                        timeout_milliseconds)
  $f$;

  create function net.http_get(
    url text,
    params jsonb default '{}'::jsonb,
    headers jsonb default '{}'::jsonb,
    timeout_milliseconds int default 5000
  ) returns bigint
  language sql volatile security definer set search_path = net
  as $f$
    select net._enqueue('GET', net._with_params(url, params), headers, null, timeout_milliseconds)
  $f$;

  -- As on the platform: the API roles may call the request functions, not read the queue.
  grant usage on schema net to anon, authenticated, service_role;
  revoke all on all functions in schema net from public;
  grant execute on function net.http_post(text, jsonb, jsonb, jsonb, int), net.http_get(text, jsonb, jsonb, int)
    to anon, authenticated, service_role;
end
$do$;

-- ---------------------------------------------------------------- API grants
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
