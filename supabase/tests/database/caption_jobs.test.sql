-- The captioning job state machine, through the RPCs the function calls: pending -> processing ->
-- done, retries with backoff, dead letters, stale leases, and re-uploads.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(31);

-- Upload an image: the trigger records a pending job in the same transaction.
insert into storage.objects (id, bucket_id, name, metadata, version) values
  ('00000000-0000-4000-8000-0000000000a1', 'images', 'u/cat.png', '{"mimetype": "image/png", "size": 10}', 'v1'),
  ('00000000-0000-4000-8000-0000000000a2', 'images', 'u/notes.txt', '{"mimetype": "text/plain"}', 'v1');

create temporary table claims (label text primary key, outcome text, lease_token uuid, attempts int);
create function pg_temp.claim(label text, take boolean default true) returns text
language sql as $$
  insert into claims select label, c.outcome, c.lease_token, c.attempts
    from public.caption_job_claim('00000000-0000-4000-8000-0000000000a1', take) c
  returning outcome
$$;
create function pg_temp.token(label text) returns uuid
language sql as $$ select lease_token from claims where claims.label = token.label $$;
create function pg_temp.job() returns captioning.jobs
language sql as $$ select * from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000a1' $$;

select results_eq(
  $$select status, attempts, object_version from captioning.jobs$$,
  $$values ('pending', 0, 'v1')$$,
  'an image upload creates one pending job for its version; a non-image none'
);
select is((select outcome from public.caption_job_claim('00000000-0000-4000-8000-0000000000a2')), 'skipped',
  'a non-image is skipped');
select is((select outcome from public.caption_job_claim(gen_random_uuid())), 'missing', 'an unknown object is missing');

select is(pg_temp.claim('peek', false), 'due', 'a fresh job is due');
select is((pg_temp.job()).status, 'pending', 'looking does not claim');

select is(pg_temp.claim('first'), 'claimed', 'the first claim takes the job');
select isnt(pg_temp.token('first'), null, 'with a lease token');
select results_eq(
  $$select status, attempts, lease_until > now() from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000a1'$$,
  $$values ('processing', 1, true)$$,
  'the job is processing, on its first attempt, under a lease'
);
select is(pg_temp.claim('second'), 'busy', 'a second claim while the lease holds is busy');

select is(
  public.caption_job_complete('00000000-0000-4000-8000-0000000000a1', gen_random_uuid(), 'forged', 'm'),
  'stale', 'completing with a wrong token changes nothing'
);
select is_empty('select * from public.image_caption', 'and writes no caption');

-- A transient failure: back to pending, due later.
select is(
  public.caption_job_fail('00000000-0000-4000-8000-0000000000a1', pg_temp.token('first'), 'HF 503', true, 60),
  'retry', 'a retryable failure schedules a retry'
);
select results_eq(
  $$select status, last_error, lease_token is null, next_attempt_at >= now() + interval '60 seconds'
      from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000a1'$$,
  $$values ('pending', 'HF 503', true, true)$$,
  'pending again with the error, no lease, and not before Retry-After'
);
select is(pg_temp.claim('too-early'), 'scheduled', 'a claim before the retry is due is refused as scheduled');
select is(
  public.caption_job_fail('00000000-0000-4000-8000-0000000000a1', pg_temp.token('first'), 'late', true),
  'stale', 'the first lease cannot report again'
);

-- The retry comes due; its worker dies holding the lease, which expires.
update captioning.jobs set next_attempt_at = now() - interval '1 second'
  where object_id = '00000000-0000-4000-8000-0000000000a1';
select is(pg_temp.claim('retry'), 'claimed', 'the due retry is claimed');
select is((select attempts from claims where label = 'retry'), 2, 'as the second attempt');
update captioning.jobs set lease_until = now() - interval '1 second'
  where object_id = '00000000-0000-4000-8000-0000000000a1';
select is(pg_temp.claim('after-expiry'), 'claimed', 'an expired lease is claimed again');
select isnt(pg_temp.token('after-expiry'), pg_temp.token('retry'), 'with a new lease token');
select is(
  public.caption_job_complete('00000000-0000-4000-8000-0000000000a1', pg_temp.token('retry'), 'late caption', 'm'),
  'stale', 'the stale lease holder cannot complete'
);
select is(
  public.caption_job_complete('00000000-0000-4000-8000-0000000000a1', pg_temp.token('after-expiry'), 'a cat', 'm'),
  'done', 'the current lease holder completes'
);
select results_eq(
  $$select c.caption, c.object_version, j.status, j.lease_token is null, j.finished_at is not null
      from public.image_caption c join captioning.jobs j on j.object_id = c.id$$,
  $$values ('a cat', 'v1', 'done', true, true)$$,
  'one caption for the version, and the job is done'
);
select is(pg_temp.claim('after-done'), 'done', 'a done job is not claimed again');

-- A re-upload (upsert: same id, new version) starts over.
update storage.objects set version = 'v2' where id = '00000000-0000-4000-8000-0000000000a1';
select results_eq(
  $$select status, attempts, object_version from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000a1'$$,
  $$values ('pending', 0, 'v2')$$,
  'a new version resets the job to pending'
);

-- A permanent failure is a dead letter at once.
select is(pg_temp.claim('v2'), 'claimed', 'the new version is claimed');
select is(
  public.caption_job_fail('00000000-0000-4000-8000-0000000000a1', pg_temp.token('v2'), 'corrupt image', false),
  'failed', 'a permanent failure dead-letters the job'
);
select is(pg_temp.claim('dead'), 'failed', 'a failed job is not claimed again');

-- Attempts run out: the last retryable failure dead-letters too, and so does a lease expiring on it.
update captioning.settings set value = '1' where key = 'max_attempts';
select is(captioning.requeue_failed(), 1, 'requeue_failed puts the dead letter back');
select is(pg_temp.claim('last'), 'claimed', 'a requeued job is claimed');
update captioning.jobs set lease_until = now() - interval '1 second'
  where object_id = '00000000-0000-4000-8000-0000000000a1';
select is(captioning.sweep(), 0, 'the sweeper sends nothing for it');
select results_eq(
  $$select status, last_error from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000a1'$$,
  $$values ('failed', 'corrupt image; lease expired on the last attempt')$$,
  'a lease expiring on the last attempt dead-letters the job when the sweeper runs'
);

select * from finish();
rollback;
