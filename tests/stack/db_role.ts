/**
 * Switches a transaction to an API role with the request's JWT claims, as PostgREST and the
 * Storage API do, so RLS policies and `auth.uid()` see the caller.
 *
 * @module
 */
import type postgres from "npm:postgres@3.4.9";

/** Sets role and `request.jwt.claims` for the rest of the transaction; returns false (changing nothing) for a role `authenticator` cannot become, throws on database errors. */
export async function actAs(
  tx: postgres.Sql,
  role: string,
  claims: Record<string, unknown>,
): Promise<boolean> {
  // pg_has_role on an oid (not a name) so an unknown role yields no row instead of an error.
  const [row] = await tx`
    select pg_has_role('authenticator', oid, 'member') as ok from pg_roles where rolname = ${role}`;
  if (!row?.ok) return false;
  await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
  return true;
}
