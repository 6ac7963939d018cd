/**
 * One lazily started worker thread that decodes and preprocesses images, so a big or hostile image
 * never blocks the event loop. It is unref()ed while idle (it never keeps a process alive) and
 * stopped after IDLE_MS without work (a 12 MP JPEG leaves ~400 MB of garbage in its heap). Its
 * death rejects the tasks in flight with E_BAD_IMAGE and the next task starts a fresh one. If it
 * cannot start at all (an unusual loader), tasks run on the calling thread, with a warning.
 */
import { Worker } from 'node:worker_threads';
import { LatteError } from './errors.js';
import type { ImageTask, runImageTask } from './image-task.js';

type Result = ReturnType<typeof runImageTask>['result'];

// The task module sits next to this one, as .ts under tsx or as .js in dist/.
const EXT = /\.[cm]?[jt]s$/.exec(new URL(import.meta.url).pathname)?.[0] ?? '.js';
const TASK_URL = new URL(`./image-task${EXT}`, import.meta.url).href;

// Plain JavaScript, the same for both layouts, valid as a script or a module (--input-type=module
// reaches eval workers): hence import() and no require. Node 20 does not carry tsx's hooks
// (--import=tsx) into workers, so when running from .ts sources the worker registers tsx itself.
const SOURCE = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  const { runImageTask } = await import(workerData.task);
  parentPort.on('message', ({ id, task }) => {
    let reply, transfer = [];
    try {
      const r = runImageTask(task);
      reply = { id, result: r.result };
      transfer = r.transfer;
    } catch (e) {
      reply = { id, error: String((e && e.message) || e) };
    }
    parentPort.postMessage(reply, transfer);
  });
  parentPort.postMessage({ ready: true });
}).catch(async (e) => (await import('node:worker_threads')).parentPort.postMessage({ loadError: String((e && e.stack) || e) }));
`;

function tsxUrl(): string | undefined {
  if (!EXT.endsWith('ts')) return undefined;
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return undefined; // the worker's import then fails and tasks run inline
  }
}

const IDLE_MS = 10_000;

class LoadFailure extends Error {}

interface Handle {
  worker: Worker;
  ready: Promise<void>;
  pending: Map<number, { resolve(r: Result): void; reject(e: Error): void }>;
  users: number;
  dead: boolean;
  idle?: NodeJS.Timeout;
}

let current: Handle | undefined;
let inlineReason: string | undefined;
let nextId = 0;

const bad = (message: string, cause?: unknown): LatteError => new LatteError('E_BAD_IMAGE', message, cause === undefined ? undefined : { cause });

function spawn(): Handle {
  const worker = new Worker(SOURCE, { eval: true, workerData: { task: TASK_URL, tsx: tsxUrl() } });
  worker.unref();
  const h: Handle = { worker, ready: undefined as never, pending: new Map(), users: 0, dead: false };
  let up = false;
  let fail: (e: Error) => void = () => {};
  h.ready = new Promise<void>((resolve, reject) => {
    fail = reject;
    worker.on('message', (m: { ready?: true; loadError?: string; id: number; result?: Result; error?: string }) => {
      if (m.ready) {
        up = true;
        resolve();
      } else if (m.loadError !== undefined) {
        reject(new LoadFailure(m.loadError));
        void worker.terminate();
      } else {
        const p = h.pending.get(m.id);
        h.pending.delete(m.id);
        if (m.error !== undefined) p?.reject(bad(m.error));
        else p?.resolve(m.result!);
      }
    });
  });
  h.ready.catch(() => {}); // observed by each task; no unhandled rejection if none waits
  const died = (why: string, cause?: unknown): void => {
    h.dead = true;
    clearTimeout(h.idle);
    if (current === h) current = undefined;
    if (!up) fail(new LoadFailure(why));
    for (const p of h.pending.values()) p.reject(bad(`the image worker stopped: ${why}`, cause));
    h.pending.clear();
  };
  worker.on('error', (e) => died((e as Error)?.message ?? String(e), e)); // an uncaught error or out of memory inside it
  worker.on('exit', (code) => died(`it exited with code ${code}`));
  return h;
}

/** Stops an idle worker; detached first, so no task is handed to it while it exits. */
function retire(h: Handle): void {
  h.dead = true;
  if (current === h) current = undefined;
  void h.worker.terminate();
}

async function runInline(task: ImageTask): Promise<Result> {
  const { runImageTask } = await import('./image-task.js');
  try {
    return runImageTask(task).result;
  } catch (e) {
    throw bad((e as Error)?.message ?? String(e), e);
  }
}

/** Runs a task in the worker; `transfer` lists buffers the task owns (they are detached here). */
export async function runInWorker(task: ImageTask, transfer: ArrayBuffer[]): Promise<Result> {
  if (inlineReason !== undefined) return runInline(task);
  const h = (current ??= spawn());
  h.users++;
  clearTimeout(h.idle);
  h.worker.ref(); // a pending task keeps the process alive until it settles
  try {
    await h.ready;
    return await new Promise<Result>((resolve, reject) => {
      if (h.dead) return reject(bad('the image worker stopped'));
      const id = nextId++;
      h.pending.set(id, { resolve, reject });
      try {
        h.worker.postMessage({ id, task }, transfer);
      } catch (e) {
        h.pending.delete(id);
        reject(bad(`cannot pass the image to its worker: ${(e as Error).message}`, e));
      }
    });
  } catch (e) {
    if (!(e instanceof LoadFailure)) throw e;
    if (inlineReason === undefined) {
      inlineReason = e.message;
      process.emitWarning(`latte-flow decodes images on the main thread: its image worker cannot start (${e.message.split('\n')[0]})`);
    }
    return runInline(task);
  } finally {
    if (--h.users === 0 && !h.dead) {
      h.worker.unref();
      h.idle = setTimeout(() => retire(h), IDLE_MS).unref();
    }
  }
}

/** For tests: the started worker, if any, and why tasks run inline, if they do. */
export function imageWorkerState(): { worker: Worker | undefined; inlineReason: string | undefined } {
  return { worker: current?.worker, inlineReason };
}
