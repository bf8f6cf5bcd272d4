-- Where the captioning of the caller's own images stands, and why a job failed, for a frontend
-- (the captioning schema itself stays unexposed). Only jobs of objects the caller owns.
create or replace function public.my_caption_jobs()
returns table (object_id uuid, status text, attempts integer, last_error text, updated_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  select j.object_id, j.status, j.attempts, j.last_error, j.updated_at
    from captioning.jobs j
    join storage.objects o on o.id = j.object_id
   where o.owner_id = (select auth.uid())::text
$$;

revoke execute on function public.my_caption_jobs() from public, anon;
grant execute on function public.my_caption_jobs() to authenticated, service_role;
