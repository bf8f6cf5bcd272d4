/**
 * The gateway's task table and the HTTP handler that serves any of its rows.
 * @module
 */
export { type CacheDeps } from "./cache.ts";
export {
  createTaskContext,
  describeTask,
  type ParsedTask,
  parsedTaskOf,
  parseTask,
  runTask,
  taskHandler,
} from "./handler.ts";
export { TASKS } from "./table.ts";
