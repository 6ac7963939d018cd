// `npm run build:prebuilds`: builds prebuilds/<platform>-<arch>/ for the npm package.
//
// 1. prebuildify (--napi --strip --tag-libc) compiles through tools/prebuild-shim.cjs, which runs
//    `cmake-js rebuild` into build-prebuild/build (never the developer's build/), and names the addon
//    so node-gyp-build finds it: prebuilds/linux-x64/latte-flow.napi.glibc.node.
// 2. Every shared library the addon loads (ldd, transitively) that a base Debian/glibc system may
//    lack is copied next to it under its soname: today libdnnl.so.2, libgomp.so.1 and libOpenCL.so.1
//    (Debian builds oneDNN with the OpenCL runtime). The addon finds them through its RUNPATH
//    $ORIGIN (CMakeLists.txt). A DT_RUNPATH applies only to the object's own NEEDED entries, so a
//    bundled library that needs another bundled one (libdnnl -> libOpenCL, libgomp) gets RUNPATH
//    $ORIGIN too, with patchelf (Debian package `patchelf`; needed only here, not by users).
// 3. Checks the result: RUNPATHs, every NEEDED resolved, bundled ones from the bundle, the addon loads.
//
// Env: LATTE_CUDA (AUTO|ON|OFF, default AUTO), LATTE_CUDA_ARCHS (CMAKE_CUDA_ARCHITECTURES).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const stage = path.join(root, 'build-prebuild');
const dest = path.join(root, 'prebuilds', `${os.platform()}-${os.arch()}`);
const shim = path.join(root, 'tools', 'prebuild-shim.cjs');

// Present on any glibc system that runs Node (node itself links libstdc++ and libgcc_s): never bundled.
const BASE = new Set([
  'linux-vdso.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1', 'libc.so.6', 'libm.so.6',
  'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'libstdc++.so.6', 'libgcc_s.so.1',
]);
// Driver and toolkit libraries must come from the user's system (cudart is linked statically).
const NEVER = /^(libcuda\.so|libnvidia-|libcudart\.so|libcublas)/;

function die(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}
const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' });
function have(cmd) {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
function dynamic(file) {
  const d = sh('readelf', ['-d', file]);
  return {
    needed: [...d.matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1]),
    runpath: /\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*?)\]/.exec(d)?.[1],
  };
}
/** soname -> resolved path (or 'not found') for the object and everything it loads. */
function ldd(file) {
  const map = new Map();
  for (const line of sh('ldd', [file]).split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(.+?)(?:\s+\(0x[0-9a-f]+\))?$/.exec(line);
    if (m) map.set(m[1], m[2]);
  }
  return map;
}

if (os.platform() !== 'linux') die('only linux prebuilds are built here');
for (const tool of ['readelf', 'objdump', 'strip', 'ldd']) if (!have(tool)) die(`${tool} not found (Debian: binutils, libc-bin)`);

// ---- 1. build with prebuildify through the shim ------------------------------------------------
fs.rmSync(dest, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });
const prebuildify = require('prebuildify');
await new Promise((resolve, reject) =>
  prebuildify(
    {
      napi: true,
      strip: true,
      tagLibc: true,
      name: pkg.name,
      cwd: stage, // the shim builds into <cwd>/build; prebuildify takes <cwd>/build/Release/*.node
      out: root, // -> <root>/prebuilds/<platform>-<arch>/
      cache: path.join(stage, 'cache'),
      nodeGyp: `"${process.execPath}" "${shim}"`,
      shell: '/bin/sh', // nodeGyp is a command line, not one executable
    },
    (err) => (err ? reject(err) : resolve()),
  ),
).catch((err) => die(`prebuildify failed: ${err.message}`));

const addons = fs.readdirSync(dest).filter((f) => f.endsWith('.node'));
if (addons.length !== 1) die(`expected one .node in ${dest}, found: ${addons.join(', ') || 'none'}`);
const addon = path.join(dest, addons[0]);
if (dynamic(addon).runpath !== '$ORIGIN') die(`${addons[0]} has RUNPATH ${dynamic(addon).runpath ?? '(none)'}, want $ORIGIN (CMakeLists.txt)`);

// ---- 2. bundle the non-base shared libraries ---------------------------------------------------
const bundled = [];
for (const [name, where] of ldd(addon)) {
  if (BASE.has(name)) continue;
  if (NEVER.test(name)) die(`${addons[0]} links ${name}, which must not be bundled (link it statically or dlopen it)`);
  if (where === 'not found' || !where.startsWith('/')) die(`${name} is not found on this machine (ldd: ${where})`);
  // prebuildify and node-gyp-build only treat *.node as addons; keep soname file names
  fs.copyFileSync(fs.realpathSync(where), path.join(dest, name));
  fs.chmodSync(path.join(dest, name), 0o755);
  bundled.push(name);
}
const bundledSet = new Set(bundled);
for (const name of bundled) {
  const file = path.join(dest, name);
  const { needed, runpath } = dynamic(file);
  if (!needed.some((n) => bundledSet.has(n)) || runpath === '$ORIGIN') continue;
  if (!have('patchelf')) die(`${name} needs ${needed.filter((n) => bundledSet.has(n)).join(', ')} from the bundle: install patchelf (apt-get install -y patchelf)`);
  sh('patchelf', ['--set-rpath', '$ORIGIN', file]);
}

// ---- 3. check ------------------------------------------------------------------------------------
const real = fs.realpathSync(dest);
for (const file of [addon, ...bundled.map((n) => path.join(dest, n))]) {
  for (const [name, where] of ldd(file)) {
    if (where === 'not found') die(`${path.basename(file)}: ${name} not found`);
    if (bundledSet.has(name) && path.dirname(fs.realpathSync(where)) !== real) die(`${path.basename(file)}: ${name} resolves to ${where}, not the bundle`);
  }
}
const needsPatch = bundled.filter((n) => dynamic(path.join(dest, n)).needed.some((x) => bundledSet.has(x)));
for (const n of needsPatch) if (dynamic(path.join(dest, n)).runpath !== '$ORIGIN') die(`${n}: RUNPATH is not $ORIGIN`);
const info = require(addon).backendInfo();

// The newest glibc / libstdc++ symbol versions any shipped object needs (the README's claim).
const newest = (re) => {
  let best = '0';
  for (const f of fs.readdirSync(dest)) {
    for (const m of sh('objdump', ['-T', path.join(dest, f)]).matchAll(re)) {
      const a = m[1].split('.').map(Number);
      const b = best.split('.').map(Number);
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if ((a[i] ?? 0) !== (b[i] ?? 0)) {
          if ((a[i] ?? 0) > (b[i] ?? 0)) best = m[1];
          break;
        }
      }
    }
  }
  return best;
};

console.log(`prebuild: ${path.relative(root, dest)}/ (backends: ${info.compiled.join(', ')})`);
for (const f of fs.readdirSync(dest).sort()) {
  const { runpath } = dynamic(path.join(dest, f));
  console.log(`  ${f.padEnd(30)} ${(fs.statSync(path.join(dest, f)).size / 1048576).toFixed(2).padStart(7)} MiB  RUNPATH ${runpath ?? '-'}`);
}
console.log(`  needs glibc >= ${newest(/\bGLIBC_([0-9.]+)/g)}, libstdc++ GLIBCXX_${newest(/\bGLIBCXX_([0-9.]+)/g)}`);
