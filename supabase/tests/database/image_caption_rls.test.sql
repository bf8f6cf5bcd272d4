-- Row-level security of public.image_caption: a signed-in user reads the captions of their own
-- images only, anon reads none, nobody but the service role writes.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(9);

insert into storage.objects (id, bucket_id, name, owner_id, metadata, version) values
  ('00000000-0000-4000-8000-00000000a001', 'images', '11111111-1111-4111-8111-111111111111/cat.png',
   '11111111-1111-4111-8111-111111111111', '{"mimetype": "image/png", "size": 10}', 'v1'),
  ('00000000-0000-4000-8000-00000000b001', 'images', '22222222-2222-4222-8222-222222222222/dog.png',
   '22222222-2222-4222-8222-222222222222', '{"mimetype": "image/png", "size": 10}', 'v1');
insert into public.image_caption (id, caption, model, object_version) values
  ('00000000-0000-4000-8000-00000000a001', 'a cat', 'test-model', 'v1'),
  ('00000000-0000-4000-8000-00000000b001', 'a dog', 'test-model', 'v1');

-- The owner (alice).
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "11111111-1111-4111-8111-111111111111", "role": "authenticated"}', true);
select results_eq(
  'select caption from public.image_caption',
  $$values ('a cat')$$,
  'the owner reads the caption of their image and no other'
);
select throws_ok(
  $$insert into public.image_caption (id, caption, model) values ('00000000-0000-4000-8000-00000000a001', 'x', 'm')$$,
  '42501', null, 'a user cannot write captions'
);
select throws_ok(
  $$update public.image_caption set caption = 'changed'$$,
  '42501', null, 'a user cannot change captions'
);
select throws_ok($$delete from public.image_caption$$, '42501', null, 'a user cannot delete captions');

-- Another user (bob) sees only his own; a user with no images sees nothing.
select set_config('request.jwt.claims', '{"sub": "22222222-2222-4222-8222-222222222222", "role": "authenticated"}', true);
select results_eq('select caption from public.image_caption', $$values ('a dog')$$, 'another user reads only their own');
select set_config('request.jwt.claims', '{"sub": "33333333-3333-4333-8333-333333333333", "role": "authenticated"}', true);
select is_empty('select * from public.image_caption', 'a user without images reads no caption');

-- anon (the public anon key) has no access at all.
reset role;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select throws_ok('select * from public.image_caption', '42501', null, 'anon cannot read captions');

-- The service role (the captioning function) reads and writes every row.
reset role;
set local role service_role;
select is((select count(*)::int from public.image_caption), 2, 'the service role reads every caption');
select lives_ok(
  $$update public.image_caption set caption = 'a black cat' where id = '00000000-0000-4000-8000-00000000a001'$$,
  'the service role writes captions'
);

reset role;
select * from finish();
rollback;
