#!/usr/bin/env node
/**
 * `latte-flow`: the command line over the library. generate draws what a prompt asks for, ask
 * answers a question about an image (streamed), inspect shows the backends and the model, eval
 * scores the model (ShapesEval + VQA) in the engine, serve runs the HTTP API and its web page (lib/serve/)
 * until SIGTERM or SIGINT, bench times the engine against its peers on this machine (lib/bench/). Errors are one line with their code; the exit
 * status is 1 for a LatteError, 2 for bad usage. Paths given (-o, ask's image) are checked before a
 * model loads; generate replaces an existing output file and says so on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { getBackendInfo, LatteError, LatteFlow, SHIPPED_MODEL, smartResize, type BackendRequest, type GeneratedImage, type PreprocessorConfig } from './index.js';
import { imageHeader } from './image-decode.js';
import { DEFAULT_BODY_LIMIT, DEFAULT_GRACE_MS } from './serve/limits.js';
import { MEASURES, selectMeasures } from './bench/measures.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The shipped shapes-world model (K = 4) and its vanilla twin (K = 1). */
export const DEFAULT_MODEL = SHIPPED_MODEL;
export const VANILLA_MODEL = path.join(PACKAGE_ROOT, 'models', 'shapes-vanilla');

function packageVersion(): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
  } catch {
    return 'unknown';
  }
}

const ENCODERS: Record<string, (img: GeneratedImage) => Uint8Array> = {
  '.png': (img) => img.toPNG(),
  '.jpg': (img) => img.toJPEG(),
  '.jpeg': (img) => img.toJPEG(),
};

/**
 * The files `generate -o out --count n` writes, checked before the model loads (a wrong path should
 * not cost a generation): a known extension, an existing writable folder, no folder in the way.
 */
function outputFiles(out: string, count: number): string[] {
  const ext = path.extname(out);
  const fail = (why: string) => new LatteError('E_ARG', `-o ${out}: ${why}`);
  if (!Object.hasOwn(ENCODERS, ext.toLowerCase())) throw fail('the file name must end in .png, .jpg or .jpeg');
  const stem = out.slice(0, out.length - ext.length);
  const files = count === 1 ? [out] : Array.from({ length: count }, (_, i) => `${stem}-${i + 1}${ext}`);
  const dir = path.dirname(path.resolve(out));
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch {
    // missing, or a file on the way (ENOTDIR): no such folder either way
  }
  if (!st?.isDirectory()) throw fail(`${st ? 'not a folder' : 'no such folder'}: ${dir}`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw fail(`cannot write to the folder ${dir} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  for (const f of files) if (fs.statSync(f, { throwIfNoEntry: false })?.isDirectory()) throw fail(`${f} is a folder`);
  return files;
}

/** Writes one image in the format its extension names; says so on stderr when it replaces a file. */
function writeImage(file: string, img: GeneratedImage): void {
  const existed = fs.existsSync(file);
  try {
    fs.writeFileSync(file, ENCODERS[path.extname(file).toLowerCase()](img));
  } catch (e) {
    throw new LatteError('E_ARG', `cannot write ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (existed) console.error(`latte-flow: replaced the existing file ${file}`);
}

/** `ask`'s image must be a readable file: checked before the model loads. */
function checkImageFile(file: string): void {
  let why = '';
  try {
    if (fs.statSync(file).isFile()) fs.accessSync(file, fs.constants.R_OK);
    else why = 'not a file';
  } catch (e) {
    why = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  if (why) throw new LatteError('E_BAD_IMAGE', `cannot read image ${file}: ${why}`);
}

/**
 * A note on stderr when the model will see the image at a small fraction (or a large multiple) of its
 * size: a model trained on small images answers poorly about a photo squeezed into a few patches.
 */
function noteResize(file: string, pre: PreprocessorConfig): void {
  let size: { width: number; height: number };
  try {
    size = imageHeader(fs.readFileSync(file));
  } catch {
    return; // not a PNG/JPEG: answering reports that with its code
  }
  const [h, w] = smartResize(size.height, size.width, pre.patch_size * pre.merge_size, pre.min_pixels, pre.max_pixels);
  const ratio = (size.width * size.height) / (w * h);
  if (ratio > 16 || ratio < 1 / 16)
    console.error(`latte-flow: note: the image is ${size.width}x${size.height}; the model sees it resized to ${w}x${h} (its images are ${pre.min_pixels}-${pre.max_pixels} pixels), so answers may be unreliable`);
}

const int = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
// one weight, or one per expert group: "5" or "5/5/3/1"
const weights = (name: string) => (v: string) => {
  const ws = v.split('/').map(Number);
  if (!ws.every(Number.isFinite)) throw new InvalidArgumentError(`${name} must be a number or numbers joined by / (one per expert group)`);
  return ws.length === 1 ? ws[0] : ws;
};
const intRange = (name: string, min: number, max: number) => (v: string) => {
  const n = int(name, min)(v);
  if (n > max) throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}]`);
  return n;
};
const choice = (name: string, values: string[]) => (v: string) => {
  if (!values.includes(v)) throw new InvalidArgumentError(`${name} must be ${values.join(' or ')}`);
  return v;
};
// more threads than cores only time-slice (the engine refuses them too): say so before anything runs
const threadCount = (v: string) => intRange('threads', 1, getBackendInfo().cpu.cores)(v);
const measureFilter = (v: string) => {
  const { unknown } = selectMeasures(v);
  if (unknown.length || !v.trim()) throw new InvalidArgumentError(`no measure matches ${unknown.join(', ') || '""'} (measures: ${MEASURES.map((m) => m.id).join(', ')})`);
  return v;
};
const backend = (v: string): BackendRequest => {
  if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new InvalidArgumentError("backend must be auto, cpu or cuda");
  return v;
};

interface ModelOpts {
  model?: string;
  vanilla?: boolean;
  backend: BackendRequest;
  threads?: number;
}

function modelDir(o: ModelOpts): string {
  if (o.model) return o.model;
  return o.vanilla ? VANILLA_MODEL : DEFAULT_MODEL;
}

/** A one-line progress bar on stderr when it is a terminal. */
function progressBar(label: string): { update(done: number, total: number, extra?: string): void; end(): void } {
  const tty = process.stderr.isTTY;
  return {
    update(done, total, extra = '') {
      if (!tty) return;
      const w = 30;
      const fill = Math.round((w * done) / total);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${done}/${total} ${extra}`);
    },
    end() {
      if (tty) process.stderr.write('\n');
    },
  };
}

function withModelOptions(c: Command): Command {
  return c
    .option('-m, --model <dir>', 'model directory (default: the shipped shapes-world model)')
    .option('--vanilla', 'use the shipped K = 1 (vanilla) twin')
    .option('--backend <name>', 'auto | cpu | cuda', backend, 'auto')
    .option('--threads <n>', 'CPU threads (default: all cores)', int('threads', 1));
}

/** Lock and stalled-check periods from LATTE_QUEUE_LOCK_MS / LATTE_QUEUE_STALLED_MS (tests shorten them; default BullMQ's 30 s). */
function workerTimings(): { lockDuration?: number; stalledInterval?: number } {
  const ms = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
  return { lockDuration: ms('LATTE_QUEUE_LOCK_MS'), stalledInterval: ms('LATTE_QUEUE_STALLED_MS') };
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('latte-flow')
    .description('LaTtE-Flow: draw images from text and answer questions about images')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  withModelOptions(
    program
      .command('generate')
      .description('draw the picture a prompt asks for')
      .argument('<prompt>', 'what to draw, e.g. "a red circle to the left of a blue square"')
      .option('-o, --out <file>', 'output .png, .jpg or .jpeg (with --count, -1, -2, ... go before the extension); an existing file is replaced', 'out.png')
      .option('--steps <n>', 'sampling steps (default: the model’s)', int('steps', 1))
      .option('--guidance <w>', 'classifier-free guidance weight, or one per expert group as 5/5/3/1 (default: the model’s)', weights('guidance'))
      .option('--seed <n>', 'noise seed', int('seed', 0), 0)
      .option('--count <n>', 'images to make', int('count', 1), 1)
      .option('--sampler <name>', 'euler | heun'),
  ).action(async (prompt: string, o: ModelOpts & { out: string; steps?: number; guidance?: number | number[]; seed: number; count: number; sampler?: 'euler' | 'heun' }) => {
    const files = outputFiles(o.out, o.count);
    await using lf = await LatteFlow.load(modelDir(o), { backend: o.backend, threads: o.threads });
    const bar = progressBar('generating');
    const t0 = performance.now();
    const images = await lf.generateImage({ prompt, steps: o.steps, guidance: o.guidance, seed: o.seed, count: o.count, sampler: o.sampler, onProgress: (p) => bar.update(p.step, p.steps, `(group ${p.group})`) });
    bar.end();
    for (const w of images[0]?.warnings ?? []) console.error(`latte-flow: warning: ${w}`);
    images.forEach((img, i) => {
      writeImage(files[i], img);
      console.log(`${files[i]}: ${img.width}x${img.height}, seed ${img.seed}`);
    });
    console.error(`done in ${((performance.now() - t0) / 1e3).toFixed(2)} s on ${lf.engine.backend.name}`);
  });

  withModelOptions(
    program
      .command('ask')
      .description('answer a question about an image, streaming the answer')
      .argument('<image>', 'a PNG or JPEG file')
      .argument('<question>', 'e.g. "what colour is the circle?"')
      .option('--max-tokens <n>', 'longest answer in tokens', int('max-tokens', 1), 64)
      .option('--temperature <t>', '0 = greedy', num('temperature'), 0)
      .option('--seed <n>', 'sampling seed', int('seed', 0), 0),
  ).action(async (image: string, question: string, o: ModelOpts & { maxTokens: number; temperature: number; seed: number }) => {
    checkImageFile(image);
    await using lf = await LatteFlow.load(modelDir(o), { backend: o.backend, threads: o.threads });
    // a model that knows its world says how far the input is from it; others note a drastic resize
    if (lf.world) for (const w of [...(await lf.imageWarnings(image)), ...lf.promptWarnings(question)]) console.error(`latte-flow: warning: ${w}`);
    else noteResize(image, lf.vlm.preprocessor);
    for await (const piece of lf.answerStream({ image, question, maxTokens: o.maxTokens, temperature: o.temperature, seed: o.seed })) process.stdout.write(piece);
    process.stdout.write('\n');
  });

  withModelOptions(program.command('inspect').description('show the backends, CPU features and the model found')).action(async (o: ModelOpts) => {
    const info = getBackendInfo();
    console.log(`backends compiled: ${info.compiled.join(', ')}`);
    console.log(`cuda: ${info.cuda.available ? `available (${info.cuda.device})` : `not available (${info.cuda.reason})`}`);
    const c = info.cpu;
    console.log(`cpu: ${c.cores} cores; avx2 ${c.avx2}, fma ${c.fma}, avx512f ${c.avx512f}, avx512bf16 ${c.avx512bf16}, amx-bf16 ${c.amxBf16} (permitted ${c.amxPermitted}); gemm ${c.gemm}`);
    const dir = modelDir(o);
    await using lf = await LatteFlow.load(dir, { backend: o.backend, threads: o.threads });
    const b = lf.engine.backend;
    console.log(`engine: ${b.name} (${b.reason}), ${b.threads} threads`);
    const v = lf.vlm.config;
    const g = lf.generator.config;
    console.log(`model: ${dir}`);
    console.log(`  vlm: hidden ${v.hiddenSize}, ${v.layers} layers, vocabulary ${v.vocabSize}, vision ${v.visionDepth} blocks (patch ${v.patchSize}, merge ${v.mergeSize})`);
    console.log(`  generator: ${g.numLayers} layers in K = ${g.numGroups} groups (boundaries ${g.boundaries.map((x) => +x.toFixed(3)).join(', ')}), latent ${g.latentChannels}x${g.latentSize.join('x')}`);
    console.log(`  defaults: ${g.numSteps} steps, ${g.sampler}, guidance ${g.guidancePerGroup ? `${g.guidancePerGroup.join('/')} (per group)` : g.guidanceScale}, shift ${g.timeShift}`);
    console.log(`  vae: ${lf.vae.config.latentChannels} latent channels, x${lf.vae.config.factor} -> ${g.latentSize[0] * lf.vae.config.factor}x${g.latentSize[1] * lf.vae.config.factor} images`);
  });
  withModelOptions(
    program
      .command('eval')
      .description('score the model in the engine: ShapesEval on generated images and VQA accuracy, in template and held-out wording')
      .option('--limit <n>', 'ShapesEval prompts per wording (of 200; bare prompts: of the 100 single-object ones)', int('limit', 1), 200)
      .option('--vqa <n>', 'VQA questions per wording on freshly rendered images', int('vqa', 1), 200)
      .option('--blanks <n>', 'blank images asked about per wording (6 questions each)', int('blanks', 0), 4)
      .option('--steps <n>', 'sampling steps (default: the model’s)', int('steps', 1))
      .option('--guidance <w>', 'guidance weight, or one per expert group as 5/5/3/1 (default: the model’s)', weights('guidance'))
      .option('--json', 'print the full report as JSON'),
  ).action(async (o: ModelOpts & { limit: number; vqa: number; blanks: number; steps?: number; guidance?: number | number[]; json?: boolean }) => {
    const { evaluateShapes, evaluateVqa } = await import('./shapes/evaluate.js');
    const { evalTable } = await import('./shapes/eval-report.js');
    await using lf = await LatteFlow.load(modelDir(o), { backend: o.backend, threads: o.threads });
    const shapes: Awaited<ReturnType<typeof evaluateShapes>>[] = [];
    for (const wording of ['template', 'heldout', 'bare'] as const) {
      const bar = progressBar(`ShapesEval ${wording}`);
      shapes.push(await evaluateShapes(lf, { wording, limit: o.limit, steps: o.steps, guidance: o.guidance, onProgress: (d, n) => bar.update(d, n) }));
      bar.end();
    }
    const vqa: Awaited<ReturnType<typeof evaluateVqa>>[] = [];
    for (const wording of ['template', 'heldout'] as const) {
      const bar = progressBar(`VQA ${wording}`);
      vqa.push(await evaluateVqa(lf, { wording, count: o.vqa, blanks: o.blanks, onProgress: (d, n) => bar.update(d, n) }));
      bar.end();
    }
    const [template, heldout, bare] = shapes;
    if (o.json) {
      const strip = ({ perPrompt: _, captions: __, ...summary }: (typeof shapes)[number]) => summary;
      console.log(JSON.stringify({ shapesEval: { template: strip(template), heldout: strip(heldout), bare: strip(bare) }, vqa: { template: vqa[0], heldout: vqa[1] } }, null, 1));
      return;
    }
    console.log(evalTable({ template, heldout, bare }, { template: vqa[0], heldout: vqa[1] }));
  });
  withModelOptions(
    program
      .command('serve')
      .description('serve the OpenAI-style HTTP API (/v1/images/generations, /v1/chat/completions) and a web page at /')
      .option('--host <host>', 'the interface to listen on', '127.0.0.1')
      .option('--port <n>', 'the port (0: any free one)', int('port', 0), 8080)
      .option('--max-queue <n>', 'requests of each kind that may wait before the next is refused with 429 (default: the library\'s)', int('max-queue', 0))
      .option('--max-batch <n>', 'rows one batched model step may take (default: the library\'s)', int('max-batch', 1))
      .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1 (or set LATTE_FLOW_API_KEY)')
      .option('--body-limit <bytes>', 'the largest request body; larger is 413', int('body-limit', 1024), DEFAULT_BODY_LIMIT)
      .option('--grace-ms <ms>', 'on SIGTERM/SIGINT, how long requests in flight may run before they are aborted', int('grace-ms', 0), DEFAULT_GRACE_MS)
      .option('--redis <url>', 'serve through a job queue on Redis (redis://host:port): `latte-flow worker`s run the model, this server only enqueues'),
  ).action(async (o: ModelOpts & { host: string; port: number; maxQueue?: number; maxBatch?: number; apiKey?: string; bodyLimit: number; graceMs: number; redis?: string }) => {
    const { serve } = await import('./serve/cli-serve.js');
    // --redis: the model is the queue, ready once a worker has announced itself (until then /health is 503)
    const client = o.redis ? await (await import('./queue/index.js')).createQueueClient({ redis: o.redis }) : undefined;
    try {
      await serve({
        model: client ? client.ready() : modelDir(o),
        modelId: client ? `latte-flow-${path.basename(path.resolve(modelDir(o)))}` : undefined, // the name the workers' model has by default
        load: { backend: o.backend, threads: o.threads, maxQueue: o.maxQueue, maxBatch: o.maxBatch },
        host: o.host,
        port: o.port,
        apiKey: o.apiKey ?? (process.env.LATTE_FLOW_API_KEY || undefined),
        bodyLimit: o.bodyLimit,
        graceMs: o.graceMs,
      });
    } finally {
      await client?.close();
    }
  });
  program
    .command('bench')
    .description('time the engine on this machine (shipped model, a random 2B-shaped checkpoint) against the peers installed; writes bench-report.md, .json and a chart')
    .option('--quick', 'small workloads and 2 repetitions (a smoke run: figures not comparable with a full run)')
    .option('--filter <ids>', `measures, comma-separated ids or groups (${MEASURES.map((m) => m.id).join(', ')})`, measureFilter)
    .option('--threads <n>', 'CPU threads for us and every peer (default: all cores)', threadCount)
    .option('--layers <n>', 'decoder layers / vision blocks of the random 2B-shaped checkpoint (and per expert group of the generator)', intRange('layers', 1, 28), 2)
    .option('--reps <n>', 'timed repetitions per side (default 5; --quick 2)', int('reps', 1))
    .option('--warmup <n>', 'untimed runs per side first', int('warmup', 0), 1)
    .option('--dtype <t>', 'weights of the random checkpoints: bf16 | f32 (the PyTorch peer uses the same)', choice('dtype', ['bf16', 'f32']), 'bf16')
    .option('--backend <name>', 'auto (the CPU, and CUDA where present) | cpu | cuda', backend, 'auto')
    .option('--python <path>', 'a Python with torch and transformers: the PyTorch peer')
    .option('--gguf <file>', 'the node-llama-cpp peer runs this GGUF instead of the ones it writes from the random checkpoint (Qwen2-VL-2B\'s text decoder: use --layers 28)')
    .option('-o, --out <dir>', 'where the report goes (made if missing)', 'bench-report')
    .action(async (o: { quick?: boolean; filter?: string; threads?: number; layers: number; reps?: number; warmup: number; dtype: 'bf16' | 'f32'; backend: BackendRequest; python?: string; gguf?: string; out: string }) => {
      const { runBench } = await import('./bench/command.js');
      await runBench({ ...o, version: packageVersion() });
    });
  withModelOptions(
    program
      .command('worker')
      .description('run jobs from the job queue on Redis (images and answers for `latte-flow serve --redis`) on this machine\'s model')
      .requiredOption('--redis <url>', 'the Redis the API servers use (redis://host:port)')
      .option('--concurrency <n>', 'jobs of each kind run (and batched) at once', int('concurrency', 1), 4),
  ).action(async (o: ModelOpts & { redis: string; concurrency: number }) => {
    const { createWorker } = await import('./queue/index.js');
    const log = (line: string) => console.error(`latte-flow worker: ${line}`);
    const worker = await createWorker({ redis: o.redis, model: modelDir(o), load: { backend: o.backend, threads: o.threads }, concurrency: o.concurrency, ...workerTimings() });
    console.log(`latte-flow worker: taking jobs from ${o.redis} (concurrency ${o.concurrency})`);
    const name = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    log(`${name}: finishing the jobs in hand, taking no new ones`);
    await worker.close();
  });
  return program;
}

/** Runs the CLI; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram(); // exitOverride: commander throws instead of exiting, for every command
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (e instanceof LatteError) {
      console.error(`latte-flow: ${e.code}: ${e.message}`);
      return 1;
    }
    // commander has printed its one-line message (or the help / version asked for)
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) return err.exitCode === 0 ? 0 : 2;
    console.error(`latte-flow: E_INTERNAL: ${err.message ?? String(e)}`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
