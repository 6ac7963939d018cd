/**
 * One batch of fuzz cases in its own process, so that a case that crashes the process is a result:
 *
 *   node --unhandled-rejections=strict --import=tsx test/fuzz/child.ts <target> <seed> <from> <count> [--slow-ms N] [--mem-mb N] [--write DIR]
 *
 * Prints one line per event on stdout, each `@@FUZZ <json>`: {t:'ready'}, {t:'begin', index, desc}
 * before a case, {t:'case', ...CaseResult} after it, {t:'late', index, message} for an uncaught error
 * after its case ended, {t:'end'}; {t:'fatal', message} and exit 3 when the harness cannot start
 * (e.g. the native addon does not load). test/fuzz/runner.ts reads them.
 */
import { makeCase, markBad, newResult, runCase, setup, teardown, TARGETS, writeCaseInputs, type Ctx, type Target } from './targets.ts';

const emit = (o: object) => process.stdout.write(`@@FUZZ ${JSON.stringify(o)}\n`);

const [target, seedArg, fromArg, countArg, ...rest] = process.argv.slice(2);
const opt = (name: string) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
if (!(TARGETS as readonly string[]).includes(target)) {
  emit({ t: 'fatal', message: `unknown target ${target}` });
  process.exit(3);
}
const seed = Number(seedArg);
const from = Number(fromArg);
const count = Number(countArg);
const limits = { slowMs: Number(opt('--slow-ms') ?? 5000), memMb: Number(opt('--mem-mb') ?? 1024) };
const writeDir = opt('--write');

let ctx: Ctx | undefined;
let last = -1;
process.on('uncaughtException', (err, origin) => {
  const what = origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
  const body = `${err instanceof Error ? `${err.constructor?.name ?? err.name}${(err as { code?: unknown }).code ? ` ${String((err as { code?: unknown }).code)}` : ''}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 5).join('\n')}` : String(err)}`;
  if (ctx?.current) markBad(ctx.current, what, body);
  else emit({ t: 'late', index: last, message: `${what} after the case ended: ${body}` });
});

try {
  ctx = await setup(target as Target, limits);
} catch (e) {
  emit({ t: 'fatal', message: `setup failed: ${e instanceof Error ? `${(e as { code?: unknown }).code ?? e.name}: ${e.message}` : String(e)}` });
  process.exit(3);
}
emit({ t: 'ready', pid: process.pid, tmp: ctx.tmp });

// The harness's self-test (test/fuzz.test.ts): LATTE_FUZZ_SELFTEST="crash=2,poison=4,victim=6,reject=1"
// kills the process by SIGSEGV at case `crash`, and at case `victim` only if case `poison` ran
// earlier in the same process; case `reject` leaves a stray rejected promise.
const selftest: Record<string, number> = {};
for (const kv of (process.env.LATTE_FUZZ_SELFTEST ?? '').split(',').filter(Boolean)) {
  const [k, v] = kv.split('=');
  selftest[k] = Number(v);
}
if (process.env.LATTE_FUZZ_SELFTEST) {
  let poisoned = false;
  ctx.hook = (i) => {
    if (i === selftest.crash || (i === selftest.victim && poisoned)) process.kill(process.pid, 'SIGSEGV');
    if (i === selftest.poison) poisoned = true;
    if (i === selftest.reject) void Promise.reject(new Error('self-test: a stray rejection'));
  };
}

for (let i = from; i < from + count; i++) {
  let c;
  try {
    c = makeCase(target as Target, seed, i);
  } catch (e) {
    const r = newResult({ target: target as Target, seed, index: i, desc: '(no case)' });
    markBad(r, 'harness', `makeCase threw: ${(e as Error).stack ?? String(e)}`);
    emit({ t: 'begin', index: i, desc: r.desc });
    emit({ t: 'case', ...r });
    continue;
  }
  emit({ t: 'begin', index: i, desc: c.desc });
  if (writeDir) emit({ t: 'wrote', index: i, path: writeCaseInputs(c, writeDir) });
  const r = await runCase(ctx, c);
  last = i;
  emit({ t: 'case', ...r });
}
await teardown(ctx);
emit({ t: 'end' });
process.exit(0);
