/**
 * `latte-flow serve`: listen, load the model in the background (/health is 503 until it is loaded),
 * serve until SIGTERM or SIGINT, then drain: stop accepting, let requests in flight finish (or abort
 * them after the grace period), dispose the model and return, so the process exits 0. A second signal
 * aborts what is in flight at once. One line is logged when listening; requests are never logged.
 */
import type { LatteError } from '../errors.js';
import { createServer } from './server.js';
import type { ServeOptions } from './server.js';

export interface CliServeOptions extends ServeOptions {
  host: string;
  port: number;
}

const log = (line: string) => console.error(`latte-flow serve: ${line}`);

export async function serve(o: CliServeOptions): Promise<void> {
  const { host, port, ...options } = o;
  const app = await createServer({ ...options, log });
  const address = await app.listen({ host, port });
  console.log(`latte-flow serve: listening on ${address} (model ${app.latte.modelId}; /health is 200 once it is loaded)`);

  let signals = 0;
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (name: string) => {
      if (++signals === 1) resolve(name);
      else {
        log(`${name} again: aborting the requests in flight`);
        app.latte.abortAll();
      }
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  const why = await Promise.race([stopped, app.latte.loaded.then(() => undefined)]);
  if (why === undefined && app.latte.state === 'failed') {
    await app.close();
    throw app.latte.error as LatteError; // main() prints it with its code, exit 1
  }
  log(`${why ?? (await stopped)}: stopping`);
  await app.close();
}
