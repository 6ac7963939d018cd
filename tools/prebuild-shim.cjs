#!/usr/bin/env node
// Stands in for node-gyp under prebuildify (tools/prebuild.mjs passes it as `nodeGyp`).
// prebuildify calls `<shim> rebuild --target=<node> --devdir=<dir> --arch=<arch> --release` with its
// `cwd` option as the working directory, then takes the addon from <cwd>/build/Release/*.node.
// We run `cmake-js rebuild` on the package root with that build directory, so the developer's own
// build/ is never touched. --target and --devdir are node-gyp's and mean nothing here: the addon is
// Node-API 8 and cmake-js takes the headers from node-api-headers (package.json "binary").
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const os = require('node:os');

const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`prebuild-shim: expected "rebuild" from prebuildify, got: ${args.join(' ')}`);
  process.exit(2);
}
const flag = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const root = path.resolve(__dirname, '..');
const out = path.join(process.cwd(), 'build');

const cmakeArgs = [
  require.resolve('cmake-js/bin/cmake-js', { paths: [root] }),
  'rebuild',
  '--directory', root,
  '--out', out,
  '--config', args.includes('--debug') ? 'Debug' : 'Release',
  '--arch', flag('arch') || os.arch(),
  '--parallel', String(os.availableParallelism()),
  `--CDLATTE_CUDA=${process.env.LATTE_CUDA || 'AUTO'}`,
  '--CDLATTE_NATIVE_TESTS=OFF',
  '--CDLATTE_NATIVE_BENCH=OFF',
];
// Release prebuilds set e.g. LATTE_CUDA_ARCHS="75-real;80-real;86-real;89-real;90-real;100-real;120"
if (process.env.LATTE_CUDA_ARCHS) cmakeArgs.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.LATTE_CUDA_ARCHS}`);

console.log(`prebuild-shim: cmake-js ${cmakeArgs.slice(1).join(' ')}`);
const r = spawnSync(process.execPath, cmakeArgs, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
