/** The service's defaults, apart from the modules that load Fastify (the CLI reads them for --help). */

/** The largest request body: room for a few large images as data URLs. */
export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024;
/** How long a shutdown lets requests in flight run before aborting them. */
export const DEFAULT_GRACE_MS = 10_000;
