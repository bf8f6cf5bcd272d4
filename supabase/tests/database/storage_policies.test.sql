-- The folder policies on storage.objects: in the images bucket a signed-in user uploads to, reads,
-- replaces and deletes files under their own folder (<user id>/...) only; anon does none of it.
begin;
create extension if not exists pgtap with schema extensions;
set local search_path = public, extensions;
select plan(13);

insert into storage.buckets (id, name) values ('other', 'other') on conflict do nothing;
insert into storage.objects (id, bucket_id, name, owner_id, metadata, version) values
  ('00000000-0000-4000-8000-00000000b001', 'images', '22222222-2222-4222-8222-222222222222/dog.png',
   '22222222-2222-4222-8222-222222222222', '{"mimetype": "image/png"}', 'v1'),
  ('00000000-0000-4000-8000-00000000c001', 'other', '11111111-1111-4111-8111-111111111111/elsewhere.png',
   null, '{"mimetype": "image/png"}', 'v1');

-- As alice.
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "11111111-1111-4111-8111-111111111111", "role": "authenticated"}', true);
-- The Storage API deletes with this set; without it the platform refuses any delete.
set local storage.allow_delete_query = 'true';

select lives_ok(
  $$insert into storage.objects (id, bucket_id, name, owner_id, metadata, version) values
    ('00000000-0000-4000-8000-00000000a001', 'images', '11111111-1111-4111-8111-111111111111/cat.png',
     '11111111-1111-4111-8111-111111111111', '{"mimetype": "image/png"}', 'v1')$$,
  'a user uploads into their own folder'
);
select lives_ok(
  $$insert into storage.objects (bucket_id, name, metadata) values
    ('images', '11111111-1111-4111-8111-111111111111/nested/deeper.png', '{"mimetype": "image/png"}')$$,
  'and into folders below it'
);
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('images', '22222222-2222-4222-8222-222222222222/evil.png')$$,
  '42501', null, 'a user cannot upload into another user''s folder'
);
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('images', 'loose.png')$$,
  '42501', null, 'a user cannot upload outside any folder'
);
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('other', '11111111-1111-4111-8111-111111111111/x.png')$$,
  '42501', null, 'the policies cover the images bucket only'
);
select results_eq(
  'select name from storage.objects order by name',
  $$values ('11111111-1111-4111-8111-111111111111/cat.png'), ('11111111-1111-4111-8111-111111111111/nested/deeper.png')$$,
  'a user lists only their own folder'
);
select is_empty(
  $$update storage.objects set version = 'v2' where id = '00000000-0000-4000-8000-00000000b001' returning id$$,
  'a user cannot replace another user''s file'
);
select lives_ok(
  $$update storage.objects set version = 'v2' where id = '00000000-0000-4000-8000-00000000a001'$$,
  'a user replaces their own file'
);
select throws_ok(
  $$update storage.objects set name = '22222222-2222-4222-8222-222222222222/cat.png'
     where id = '00000000-0000-4000-8000-00000000a001'$$,
  '42501', null, 'a user cannot move their file into another user''s folder'
);
select is_empty(
  $$delete from storage.objects where id = '00000000-0000-4000-8000-00000000b001' returning id$$,
  'a user cannot delete another user''s file'
);
select results_eq(
  $$delete from storage.objects where id = '00000000-0000-4000-8000-00000000a001' returning name$$,
  $$values ('11111111-1111-4111-8111-111111111111/cat.png')$$,
  'a user deletes their own file'
);

-- As anon.
reset role;
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('images', 'loose.png')$$,
  '42501', null, 'anon cannot upload'
);
select is_empty('select * from storage.objects', 'anon lists nothing');

reset role;
select * from finish();
rollback;
