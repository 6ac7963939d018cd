/**
 * The PyTorch peer: lib/bench/peer-torch.py in the Python given by --python (transformers, or this
 * checkout's reference), as a JSON-line server that stays up for the whole run, so each repetition is one
 * line each way and runs alternate with ours. Never required: a missing Python, torch or transformers is
 * a status with how to install it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { textIds, vlmGrid, vlmWorkload } from './understanding.js';
import type { BenchContext, Measure, Peer, PeerStatus, Timed } from './types.js';

// lib/bench/ or dist/bench/ -> the package's lib/bench/peer-torch.py (package.json "files" ships it)
export const PEER_SCRIPT = fileURLToPath(new URL('../../lib/bench/peer-torch.py', import.meta.url));
const INSTALL = (py: string) => `${py} -m pip install torch transformers`;

export function probePython(python: string | undefined): PeerStatus {
  if (!python) return { available: false, reason: 'not enabled', install: 'pass --python /path/to/python, a Python with torch and transformers (pip install torch transformers)' };
  const r = spawnSync(python, [PEER_SCRIPT, '--probe'], { encoding: 'utf8', timeout: 120_000 });
  if (r.error) return { available: false, reason: `cannot run ${python} (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`, install: 'pass --python with the path of a Python 3 executable' };
  if (r.status === 3) return { available: false, reason: `torch not installed for ${python}`, install: INSTALL(python) };
  if (r.status === 4) return { available: false, reason: `transformers not installed for ${python}`, install: INSTALL(python) };
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) return { available: false, reason: `${python} ${PEER_SCRIPT} --probe failed (exit ${r.status}): ${r.stderr.trim().split('\n').pop() ?? ''}`, install: INSTALL(python) };
  const p = JSON.parse(line) as { impl: string; version: string; torch: string };
  return { available: true, version: `${p.impl === 'transformers' ? `transformers ${p.version}` : p.version}, torch ${p.torch}`, detail: p.impl };
}

/** The server: one process, replies in order. */
class Server {
  readonly #child: ChildProcess;
  readonly #waiting: { resolve(v: Record<string, unknown>): void; reject(e: Error): void }[] = [];
  #stderr = '';
  #exited?: Error;

  constructor(python: string, args: string[]) {
    this.#child = spawn(python, [PEER_SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.#stderr = (this.#stderr + s).slice(-4000)));
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.#waiting.shift()?.resolve(JSON.parse(line) as Record<string, unknown>);
    });
    const fail = (why: string) => {
      this.#exited = new Error(`${why}: ${this.#stderr.trim().split('\n').slice(-3).join(' | ')}`);
      for (const w of this.#waiting.splice(0)) w.reject(this.#exited);
    };
    this.#child.on('error', (e) => fail(`cannot start ${python}: ${e.message}`));
    this.#child.on('exit', (code) => fail(`the PyTorch peer exited (${code})`));
  }

  /** The next reply (the first is {"ready": true}, once the model has loaded). */
  next(): Promise<Record<string, unknown>> {
    if (this.#exited) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  async send(cmd: object): Promise<Record<string, unknown>> {
    const reply = this.next();
    this.#child.stdin!.write(JSON.stringify(cmd) + '\n');
    const r = await reply;
    if (typeof r.error === 'string') throw new Error(r.error);
    return r;
  }

  async close(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin!.end(JSON.stringify({ op: 'quit' }) + '\n');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
}

/** The setup line for a measure: the engine's own workload (understanding.ts). */
function setupCommand(measure: Measure, ctx: BenchContext): object {
  const w = vlmWorkload(ctx.options.quick);
  if (measure.id === 'vlm.encode') return { measure: measure.id, grid: vlmGrid(w.image) };
  if (measure.id === 'vlm.prefill') return { measure: measure.id, ids: [...textIds(w.prefillTokens, 1)] };
  return { measure: measure.id, ids: [...textIds(w.decodePrompt, 2)], tokens: w.decodeTokens };
}

export function pytorchPeer(python: string | undefined): Peer {
  const status = probePython(python);
  let server: Promise<Server> | undefined;
  const start = async (ctx: BenchContext): Promise<Server> => {
    const dir = await ctx.randomVlm();
    ctx.log(`starting the PyTorch peer (${status.available ? status.version : ''}) on ${dir}`);
    const s = new Server(python!, ['--model', dir, '--threads', String(ctx.options.threads), '--dtype', ctx.options.dtype]);
    await s.next(); // {"ready": true}: loaded
    return s;
  };
  return {
    id: 'pytorch',
    title: status.available && status.detail === 'reference' ? 'PyTorch (reference)' : 'transformers',
    status,
    async prepare(measure: Measure, ctx: BenchContext): Promise<Timed> {
      server ??= start(ctx);
      const s = await server;
      const r = await s.send({ op: 'setup', ...setupCommand(measure, ctx) });
      if (typeof r.skip === 'string') throw new Error(r.skip);
      return { run: async () => Number((await s.send({ op: 'run' })).ms), teardown: async () => {}, note: `${ctx.options.dtype}, ${ctx.options.threads} thread${ctx.options.threads > 1 ? 's' : ''}` };
    },
    async close() {
      if (server) await (await server.catch(() => undefined))?.close();
    },
  };
}
