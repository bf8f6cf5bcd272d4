-- Extensions where Supabase keeps them: pg_cron in pg_catalog (its tables stay in schema cron) and
-- pg_net in extensions (its functions stay in schema net). 20261122000200_caption_pipeline.sql
-- created them without a schema, which puts them in public where the project did not have them
-- yet (the advisor's extension_in_public).
--
-- Neither extension can be moved with ALTER EXTENSION ... SET SCHEMA, so one found in public is
-- dropped and created again in its place, in this transaction, keeping its rows: every pg_cron job
-- (the captioning sweeper and any other) with its run history, and pg_net's queued requests and
-- recorded responses. If anything else depends on the extension, or any step fails, nothing
-- changes and a warning says so.

create or replace function pg_temp.move_extension(ext text, target text, kept_tables text[])
returns void
language plpgsql
as $$
declare
  kept text;
  seq text;
  col text;
begin
  if not exists (select 1 from pg_extension where extname = ext and extnamespace = 'public'::regnamespace) then
    return;
  end if;

  begin
    -- Rows as jsonb, so a column the new version lacks or adds cannot break the copy.
    create temporary table if not exists moved_rows (tbl text, row_data jsonb) on commit drop;
    foreach kept in array kept_tables loop
      if to_regclass(kept) is not null then
        execute format('insert into moved_rows select %L, to_jsonb(t) from %s t', kept, kept);
      end if;
    end loop;

    execute format('drop extension %I', ext);
    execute format('create extension %I with schema %I', ext, target);

    foreach kept in array kept_tables loop
      if to_regclass(kept) is not null then
        execute format(
          'insert into %1$s select (jsonb_populate_record(null::%1$s, row_data)).* from moved_rows where tbl = %2$L',
          kept, kept
        );
        -- Ids drawn from a sequence (job ids, run ids, request ids) continue after the kept ones.
        for seq, col in
          select substring(pg_get_expr(d.adbin, d.adrelid) from $re$nextval\('([^']+)'$re$), a.attname
          from pg_attrdef d
          join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
          where d.adrelid = to_regclass(kept) and pg_get_expr(d.adbin, d.adrelid) like 'nextval(%'
        loop
          execute format('select setval(%L, greatest((select max(%I) from %s), 1))', seq, col, kept);
        end loop;
      end if;
    end loop;
    raise notice 'moved extension % from public to %', ext, target;
  exception when others then
    raise warning 'extension % stays in schema public (%): move it by hand, see the README', ext, sqlerrm;
  end;
end
$$;

select pg_temp.move_extension('pg_cron', 'pg_catalog', array['cron.job', 'cron.job_run_details']);
select pg_temp.move_extension('pg_net', 'extensions', array['net.http_request_queue', 'net._http_response']);

-- What Supabase grants when it installs pg_cron, so the project's owner can read and manage jobs.
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') and exists (select 1 from pg_roles where rolname = 'postgres') then
    grant usage on schema cron to postgres;
    grant all privileges on all tables in schema cron to postgres;
  end if;
end
$$;

drop function pg_temp.move_extension(text, text, text[]);
