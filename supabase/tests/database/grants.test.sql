-- What the API roles may reach: the job RPCs and the captioning schema belong to the service role
-- (the captioning function); anon and signed-in users reach neither, whatever key they hold.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(25);

select ok(not has_schema_privilege(r, 'captioning', 'usage'), format('%s cannot use the captioning schema', r))
  from unnest(array['anon', 'authenticated']) as r;
select ok(has_schema_privilege('service_role', 'captioning', 'usage'), 'the service role uses the captioning schema');

select ok(
  not has_function_privilege(r, f, 'execute'),
  format('%s cannot execute %s', r, f)
)
from unnest(array['anon', 'authenticated']) as r,
     unnest(array[
       'public.caption_job_claim(uuid, boolean)',
       'public.caption_job_complete(uuid, uuid, text, text)',
       'public.caption_job_fail(uuid, uuid, text, boolean, integer)',
       'captioning.sweep()',
       'captioning.backfill()',
       'captioning.requeue_failed(uuid)',
       'captioning.send_webhook(uuid, text, jsonb)'
     ]) as f;

select ok(has_function_privilege('service_role', f, 'execute'), format('the service role executes %s', f))
from unnest(array[
  'public.caption_job_claim(uuid, boolean)',
  'public.caption_job_complete(uuid, uuid, text, text)',
  'public.caption_job_fail(uuid, uuid, text, boolean, integer)'
]) as f;

select ok(not has_function_privilege('anon', 'public.storage_object_owner(uuid)', 'execute'),
  'anon cannot look up who owns an object');

-- And by calling, as PostgREST would for a request with the anon key or a user's token.
set local role anon;
select throws_ok($$select * from public.caption_job_claim(gen_random_uuid())$$, '42501', null,
  'anon calling caption_job_claim is refused');
select throws_ok($$select * from captioning.jobs$$, '42501', null, 'anon cannot read the jobs');
reset role;
set local role authenticated;
select throws_ok(
  $$select public.caption_job_complete(gen_random_uuid(), gen_random_uuid(), 'forged caption', 'm')$$,
  '42501', null, 'a signed-in user calling caption_job_complete is refused'
);
select throws_ok($$select captioning.requeue_failed()$$, '42501', null, 'a signed-in user cannot requeue jobs');
reset role;

select * from finish();
rollback;
