-- captioning.backfill() enqueues images stored before the pipeline (or with their trigger off)
-- that have no caption; captioning.requeue_failed() puts dead letters back with a fresh budget.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(12);

insert into storage.buckets (id, name) values ('other', 'other') on conflict do nothing;
-- Stored with triggers off, as if uploaded before the pipeline existed.
set local session_replication_role = replica;
insert into storage.objects (id, bucket_id, name, metadata, version) values
  ('00000000-0000-4000-8000-0000000000b1', 'images', 'old/one.png', '{"mimetype": "image/png"}', 'v1'),
  ('00000000-0000-4000-8000-0000000000b2', 'images', 'old/two.jpg', '{"mimetype": "image/jpeg"}', 'v1'),
  ('00000000-0000-4000-8000-0000000000b3', 'images', 'old/captioned.png', '{"mimetype": "image/png"}', 'v1'),
  ('00000000-0000-4000-8000-0000000000b4', 'images', 'old/readme.txt', '{"mimetype": "text/plain"}', 'v1'),
  ('00000000-0000-4000-8000-0000000000b5', 'other', 'old/elsewhere.png', '{"mimetype": "image/png"}', 'v1');
set local session_replication_role = origin;
insert into public.image_caption (id, caption, model) values ('00000000-0000-4000-8000-0000000000b3', 'done', 'm');

select is_empty('select * from captioning.jobs', 'objects stored with triggers off have no job');
select is(captioning.backfill(), 2, 'backfill enqueues the two uncaptioned images');
select results_eq(
  $$select object_id::text, status, attempts from captioning.jobs order by object_id$$,
  $$values ('00000000-0000-4000-8000-0000000000b1', 'pending', 0), ('00000000-0000-4000-8000-0000000000b2', 'pending', 0)$$,
  'as pending jobs; not the captioned image, the text file or the other bucket'
);
select is(captioning.backfill(), 0, 'running it again enqueues nothing: live jobs are left alone');

-- A done job whose caption went missing is enqueued again; so is a failed one.
update captioning.jobs set status = 'done', finished_at = now() where object_id = '00000000-0000-4000-8000-0000000000b1';
update captioning.jobs set status = 'failed', attempts = 5, last_error = 'gave up', finished_at = now()
  where object_id = '00000000-0000-4000-8000-0000000000b2';
select is(captioning.backfill(), 2, 'backfill re-enqueues done and failed jobs that have no caption');
select results_eq(
  $$select status, attempts, finished_at is null from captioning.jobs order by object_id$$,
  $$values ('pending', 0, true), ('pending', 0, true)$$,
  'with a fresh attempt budget'
);

-- requeue_failed: one object's, then all.
update captioning.jobs set status = 'failed', attempts = 5, finished_at = now(), last_dispatched_at = now();
select is(captioning.requeue_failed('00000000-0000-4000-8000-0000000000b1'), 1, 'requeue_failed(id) requeues that job');
select results_eq(
  $$select object_id::text, status, attempts from captioning.jobs order by object_id$$,
  $$values ('00000000-0000-4000-8000-0000000000b1', 'pending', 0), ('00000000-0000-4000-8000-0000000000b2', 'failed', 5)$$,
  'and only that one'
);
select results_eq(
  $$select next_attempt_at <= now(), last_dispatched_at is null, finished_at is null
      from captioning.jobs where object_id = '00000000-0000-4000-8000-0000000000b1'$$,
  $$values (true, true, true)$$,
  'due now, so the next sweep sends it'
);
select is(captioning.requeue_failed(), 1, 'requeue_failed() requeues every other failed job');
select is(captioning.requeue_failed(), 0, 'and then there is nothing left to requeue');
select is(
  (select count(*)::int from captioning.jobs where status = 'pending' and attempts = 0), 2,
  'every job is pending again'
);

select * from finish();
rollback;
