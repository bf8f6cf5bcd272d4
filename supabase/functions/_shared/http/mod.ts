/**
 * HTTP plumbing every function shares: JSON errors, middleware composition, CORS, bounded body
 * reads, parameter rules, media sniffing and streamed answers. Imports no other folder.
 * @module
 */
export { concatBytes } from "./bytes.ts";
export { cors } from "./cors.ts";
export { readJson, readLimited } from "./body.ts";
export { allowMethods, compose, type Handler, type Middleware } from "./compose.ts";
export { type RequestValue, requestValue } from "./context.ts";
export { catchErrors, HttpError, jsonError } from "./errors.ts";
export { ACCEPTED_TYPES, canonicalType, checkMedia, type MediaKind } from "./media.ts";
export {
  boolean,
  checkFields,
  describeRules,
  either,
  integer,
  listOf,
  number,
  object,
  oneOf,
  type Rule,
  type Rules,
  text,
} from "./params.ts";
export { bodyLength, endingWithDone, keepingBody } from "./streaming.ts";
