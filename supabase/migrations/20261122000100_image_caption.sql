-- Captions of images in Storage: one row per object, written by the huggingface-image-captioning
-- function with the service role, readable by the object's owner.

create table if not exists public.image_caption (
  -- Deleting the file through the Storage API is an SQL DELETE on storage.objects; the cascade
  -- lets it through and removes the caption with it (a plain foreign key would block the delete).
  id uuid primary key references storage.objects (id) on delete cascade,
  caption text not null,
  model text not null,
  -- storage.objects.version the caption describes; a re-upload gets a new version.
  object_version text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.image_caption is
  'Captions of images in the captions bucket, one per storage object (see captioning.jobs for progress).';

alter table public.image_caption enable row level security;

revoke all on table public.image_caption from anon, authenticated;
grant select on table public.image_caption to authenticated;
grant all on table public.image_caption to service_role;

-- Ownership is read from storage.objects without the caller's storage policies in the way.
create or replace function public.storage_object_owner(object_id uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select o.owner_id from storage.objects o where o.id = object_id
$$;

revoke execute on function public.storage_object_owner(uuid) from public, anon;
grant execute on function public.storage_object_owner(uuid) to authenticated, service_role;

drop policy if exists "Owners read the captions of their images" on public.image_caption;
create policy "Owners read the captions of their images"
  on public.image_caption
  for select
  to authenticated
  using (public.storage_object_owner(id) = (select auth.uid())::text);

-- A signed-in user manages their own folder (<user id>/...) in the images bucket, which is how a
-- frontend uploads with supabase-js.
drop policy if exists "Users upload to their folder in images" on storage.objects;
create policy "Users upload to their folder in images"
  on storage.objects
  for insert
  to authenticated
  with check (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid())::text);

drop policy if exists "Users read their folder in images" on storage.objects;
create policy "Users read their folder in images"
  on storage.objects
  for select
  to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid())::text);

drop policy if exists "Users replace files in their folder in images" on storage.objects;
create policy "Users replace files in their folder in images"
  on storage.objects
  for update
  to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid())::text)
  with check (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid())::text);

drop policy if exists "Users delete files in their folder in images" on storage.objects;
create policy "Users delete files in their folder in images"
  on storage.objects
  for delete
  to authenticated
  using (bucket_id = 'images' and (storage.foldername(name))[1] = (select auth.uid())::text);
