/**
 * Who is calling: Supabase JWTs (HS256, or ES256/RS256 through the JWKS), the API keys, and the
 * caller a quota is counted on. Also the project's service key.
 * @module
 */
export {
  type Caller,
  callerConfigFromEnv,
  type CallerIdentifier,
  callerOf,
  createCallerIdentifier,
  createIdentify,
  type IdentifyDeps,
} from "./caller.ts";
export { bearerToken } from "./jwt.ts";
export { serviceKeyFromEnv } from "./service_key.ts";
