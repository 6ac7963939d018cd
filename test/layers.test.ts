// The layers are enforced by the build: each native layer compiles against a view of native/ holding
// only the layers it may include (CMakeLists.txt, latte_layer). Here a probe file is compiled with a
// layer's own compile command: the includes it may use must compile, the forbidden ones must fail
// with "No such file". A control include proves the probe command itself works.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const commandsFile = path.join(root, 'build', 'compile_commands.json');

interface Entry { file: string; command?: string; arguments?: string[]; directory: string }

const argvOf = (e: Entry) => e.arguments ?? e.command!.split(/\s+/).filter(Boolean);

// the flags that decide what an include resolves to (-I, -isystem) in the compile command of
// `source` (a '*' matches any file name: the CUDA layer is .cu files, or cuda_absent.cc without CUDA)
function probeFlags(entries: Entry[], source: string): string[] {
  const [pre, post] = path.join(root, source).split('*');
  const matches = (f: string) => (post === undefined ? f === pre : f.startsWith(pre) && f.endsWith(post) && !f.slice(pre.length, f.length - post.length).includes('/'));
  const entry = entries.find((e) => matches(path.resolve(e.directory, e.file)));
  if (!entry) throw new Error(`${source} is not in build/compile_commands.json`);
  const argv = argvOf(entry);
  const flags: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-isystem' || a === '-I') flags.push(a, argv[++i]);
    else if (/^-(I|isystem)/.test(a)) flags.push(a);
  }
  return flags;
}

// [layer, a source file of it, includes it may use, includes it must not see]
const LAYERS: [string, string, string[], string[]][] = [
  ['core', 'native/core/ops.cc', ['core/backend.h', 'core/op_list.h'], ['latte/engine.h', 'io/safetensors.h', 'cpu/cpu_kernels.h', 'runtime/stream.h', 'model/graph.h']],
  ['io', 'native/io/safetensors.cc', ['core/tensor.h', 'io/safetensors.h'], ['latte/engine.h', 'cpu/host_memory.h', 'runtime/program.h', 'model/weights.h']],
  ['cpu', 'native/cpu/norm.cc', ['core/backend.h', 'cpu/cpu_kernels.h'], ['latte/engine.h', 'io/safetensors.h', 'runtime/stream.h', 'model/graph.h', 'cuda/cuda_kernels.h']],
  ['cuda', 'native/cuda/*', ['core/backend.h', 'core/backend_info.h'], ['latte/engine.h', 'cpu/cpu_kernels.h', 'runtime/stream.h', 'model/graph.h']],
  ['runtime', 'native/runtime/stream.cc', ['latte/engine.h', 'io/safetensors.h', 'runtime/program.h'], ['cpu/cpu_kernels.h', 'cpu/host_memory.h', 'model/graph.h']],
  ['model', 'native/model/weights.cc', ['latte/engine.h', 'io/safetensors.h', 'model/graph.h'], ['cpu/cpu_kernels.h', 'cpu/host_memory.h', 'runtime/program.h', 'runtime/backend_select.h']],
  ['bindings', 'bindings/tensor_wrap.cc', ['latte/engine.h', 'model/qwen2vl.h', 'io/safetensors.h'], ['runtime/program.h', 'runtime/stream.h', 'cpu/cpu_kernels.h', 'cuda/cuda_kernels.h']],
];

test('each native layer compiles against only the layers it may include', async (t) => {
  t.timeout(180_000);
  t.true(fs.existsSync(commandsFile), 'build/compile_commands.json exists (npm run build)');
  const entries = JSON.parse(fs.readFileSync(commandsFile, 'utf8')) as Entry[];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-layers-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // one C++ compiler for every probe (nvcc's own flags aside, the include search is the same)
  const core = entries.find((e) => e.file.endsWith('native/core/ops.cc'));
  t.truthy(core, 'core is in the compile commands');
  const compiler = argvOf(core!)[0];
  for (const [layer, source, allowed, forbidden] of LAYERS) {
    const flags = [...probeFlags(entries, source), '-std=c++17'];
    const probe = async (include: string) => {
      const file = path.join(dir, `${layer}.cc`);
      fs.writeFileSync(file, `#include "${include}"\n`);
      try {
        await run(compiler, [...flags, '-fsyntax-only', file], { cwd: path.join(root, 'build') });
        return '';
      } catch (e) {
        return String((e as { stderr?: string }).stderr ?? e);
      }
    };
    for (const inc of allowed) t.is(await probe(inc), '', `${layer} may include ${inc}`);
    for (const inc of forbidden) {
      const err = await probe(inc);
      t.regex(err, new RegExp(`${inc.replace(/[./]/g, '\\$&')}: No such file`), `${layer} must not see ${inc}`);
    }
  }
});
