// tools/pack-check.sh, run once per ava run and shared by the test files that need the packed tarball
// (test/packaging.test.ts, test/readme.test.ts). ava runs each test file in its own child process of
// the ava process, so the first caller takes a folder named after that parent (and a fingerprint of
// what goes into the tarball, so a re-run in watch mode packs afresh), runs pack-check there with
// LATTE_PACK_KEEP, and writes result.json; the others wait for it. A detached watcher removes the
// folder once the ava process has exited; folders of ava processes that are gone are removed on entry.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PackCheck {
  /** pack-check's exit status (null when it was killed or did not start). */
  status: number | null;
  /** why it did not finish, if it did not */
  error?: string;
  stdout: string;
  /** stdout and stderr, in that order */
  output: string;
  /** the tarball npm pack wrote (it stays until the ava run ends), or undefined */
  tarball?: string;
}

const PREFIX = 'latte-flow-pack-';
const TIMEOUT_MS = 240_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A hash of the names, sizes and times of what pack-check packs. */
function fingerprint(): string {
  const h = crypto.createHash('sha256');
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const f of fs.readdirSync(p).sort()) walk(path.join(p, f));
    } else {
      h.update(`${path.relative(root, p)}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const p of ['package.json', 'README.md', 'tools/pack-check.sh', 'lib', 'prebuilds', 'models', 'docs', 'benchmarks/RESULTS.md']) walk(path.join(root, p));
  return h.digest('hex').slice(0, 12);
}

function removeStale(): void {
  for (const f of fs.readdirSync(os.tmpdir())) {
    const m = f.startsWith(PREFIX) ? /^(\d+)-/.exec(f.slice(PREFIX.length)) : null;
    try {
      if (m && !alive(Number(m[1]))) fs.rmSync(path.join(os.tmpdir(), f), { recursive: true, force: true });
    } catch {
      // another user's folder: not ours to remove
    }
  }
}

function run(dir: string): Promise<PackCheck> {
  const env = { ...process.env, LATTE_PACK_KEEP: path.join(dir, 'work') };
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(root, 'tools', 'pack-check.sh')], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let error: string | undefined;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      error = `timed out after ${TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('error', (e) => (error = e.message));
    child.on('close', (status) => {
      clearTimeout(timer);
      let tarball: string | undefined;
      try {
        const [p] = JSON.parse(fs.readFileSync(path.join(dir, 'work', 'pack.json'), 'utf8')) as { filename: string }[];
        tarball = path.join(dir, 'work', p.filename);
        if (!fs.existsSync(tarball)) tarball = undefined;
      } catch {
        tarball = undefined;
      }
      resolve({ status, error, stdout, output: stdout + stderr, tarball });
    });
  });
}

async function waitFor(dir: string): Promise<PackCheck> {
  const result = path.join(dir, 'result.json');
  const deadline = Date.now() + TIMEOUT_MS + 30_000;
  for (;;) {
    if (fs.existsSync(result)) return JSON.parse(fs.readFileSync(result, 'utf8')) as PackCheck;
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner'), 'utf8'));
    } catch {
      // not written yet
    }
    if (owner > 0 && !alive(owner) && !fs.existsSync(result)) {
      return { status: null, error: `the test process ${owner} that ran pack-check exited before it finished`, stdout: '', output: '' };
    }
    if (Date.now() > deadline) return { status: null, error: `no pack-check result in ${dir}`, stdout: '', output: '' };
    await new Promise((r) => setTimeout(r, 500));
  }
}

let once: Promise<PackCheck> | undefined;

/** pack-check's result, from the one run of this ava run. */
export function packCheckOnce(): Promise<PackCheck> {
  once ??= (async () => {
    removeStale();
    const dir = path.join(os.tmpdir(), `${PREFIX}${process.ppid}-${fingerprint()}`);
    try {
      fs.mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      return waitFor(dir);
    }
    fs.writeFileSync(path.join(dir, 'owner'), String(process.pid));
    if (process.ppid > 1) {
      const watch = `const [pid, dir] = process.argv.slice(1); const t = setInterval(() => {
        try { process.kill(Number(pid), 0); } catch (e) { if (e.code !== 'ESRCH') return;
          clearInterval(t); require('fs').rmSync(dir, { recursive: true, force: true }); } }, 2000);`;
      spawn(process.execPath, ['-e', watch, String(process.ppid), dir], { detached: true, stdio: 'ignore', env: {} }).unref();
    }
    const r = await run(dir);
    fs.writeFileSync(path.join(dir, 'result.json.tmp'), JSON.stringify(r));
    fs.renameSync(path.join(dir, 'result.json.tmp'), path.join(dir, 'result.json'));
    return r;
  })();
  return once;
}
