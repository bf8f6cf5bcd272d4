-- Local development data: the captions bucket and the Vault secrets the webhook reads.
-- On a hosted project, see docs/deploy.md.

insert into storage.buckets (id, name, public, file_size_limit)
values ('images', 'images', false, 10485760)
on conflict (id) do nothing;

-- Where the database reaches the functions, and the secret the webhook sends. `deno task dev`
-- rewrites project_url to the port it actually serves on.
select vault.create_secret('http://127.0.0.1:54321', 'project_url')
where not exists (select 1 from vault.secrets where name = 'project_url');

select vault.create_secret('local-caption-webhook-secret-change-me', 'caption_webhook_secret')
where not exists (select 1 from vault.secrets where name = 'caption_webhook_secret');
