#!/usr/bin/env bash
# `npm run pack:check`: proves the npm tarball works as a user gets it.
#   1. builds dist/ (tsc) and packs the package with `npm pack`; checks what the tarball holds;
#   2. installs the tarball into a fresh temp project, with compilers and build tools replaced on PATH
#      by traps, and checks nothing was compiled: no trap fired, no install scripts, no binding.gyp,
#      no build/ directory in the installed package;
#   3. checks with ldd that the installed addon takes every bundled library (libdnnl.so.2, ...) from
#      node_modules/latte-flow/prebuilds/<platform>-<arch>/, not from the system;
#   4. runs a smoke script (getBackendInfo, Engine({backend:'cpu'}), linear on two f32 tensors, read,
#      dispose) which also reads /proc/self/maps to show which files were really loaded;
#   5. runs that script again with the system copies of the bundled libraries made unusable, to show the
#      package works without libdnnl-dev (see hide_system_libs below for how and why).
# Needs a prebuilt prebuilds/ (npm run build:prebuilds) and the npm registry (for node-gyp-build).
# LATTE_PACK_KEEP=DIR (an empty or new folder) works in DIR and keeps it: the tarball, pack.json and
# app/ stay for other tests (test/helpers/pack-once.ts); otherwise a temp folder is removed at exit.
# Exits non-zero with a message on the first failure; prints `pack-check: ok` at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tuple="$(node -p 'process.platform + "-" + process.arch')"
say() { printf 'pack-check: %s\n' "$*"; }
fail() { printf 'pack-check: FAIL: %s\n' "$*" >&2; exit 1; }

# Variables that `npm run` exports to its child would steer the nested npm (npm_config_prefix=/usr
# makes a nested `npm install` target the global prefix); drop them, keep registry/cache/proxy settings.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^npm_(config_(prefix|local_prefix|global_prefix)|package_|lifecycle_)' || true)

prebuilds="$root/prebuilds/$tuple"
ls "$prebuilds"/*.node >/dev/null 2>&1 || fail "no addon in prebuilds/$tuple/: run \`npm run build:prebuilds\` first"
mapfile -t bundled < <(cd "$prebuilds" && ls | grep -E '\.so(\.[0-9]+)*$' || true)
[ "${#bundled[@]}" -gt 0 ] || fail "prebuilds/$tuple/ holds no shared libraries: run \`npm run build:prebuilds\`"

if [ -n "${LATTE_PACK_KEEP:-}" ]; then
  mkdir -p "$LATTE_PACK_KEEP"
  tmp="$(cd "$LATTE_PACK_KEEP" && pwd)"
  [ -z "$(ls -A "$tmp")" ] || fail "LATTE_PACK_KEEP=$tmp is not empty"
else
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/latte-pack-check.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
fi

# ---- 1. pack ---------------------------------------------------------------------------------
say "building dist/ (tsc)"
(cd "$root" && npx --no-install tsc -p tsconfig.json) || fail "tsc failed"
(cd "$root" && npm pack --json --pack-destination "$tmp" > "$tmp/pack.json" 2> "$tmp/pack.log") \
  || { cat "$tmp/pack.log" >&2; fail "npm pack failed"; }
read -r tgz size unpacked < <(node -e '
  const [p] = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(p.filename, p.size, p.unpackedSize);' "$tmp/pack.json")
tgz="$tmp/$tgz"
[ -f "$tgz" ] || fail "npm pack wrote no tarball"
say "tarball $(basename "$tgz"): $((size / 1048576)).$(( (size % 1048576) * 100 / 1048576 )) MiB packed, $((unpacked / 1048576)) MiB unpacked"
tar -tzf "$tgz" > "$tmp/files.txt"
for f in package/package.json package/dist/index.js package/dist/index.d.ts; do
  grep -qx "$f" "$tmp/files.txt" || fail "tarball lacks $f"
done
for lib in "${bundled[@]}"; do
  grep -qx "package/prebuilds/$tuple/$lib" "$tmp/files.txt" || fail "tarball lacks prebuilds/$tuple/$lib"
done
grep -qE "^package/prebuilds/$tuple/[^/]+\.node$" "$tmp/files.txt" || fail "tarball lacks the prebuilt addon"
if grep -qE '^package/(build|build-[^/]*|node_modules|test)/|^package/binding\.gyp$' "$tmp/files.txt"; then
  fail "tarball holds files it must not: $(grep -E '^package/(build|build-[^/]*|node_modules|test)/|^package/binding\.gyp$' "$tmp/files.txt" | head -3 | tr '\n' ' ')"
fi

# ---- 2. install into a fresh project, with build tools trapped --------------------------------
app="$tmp/app"
mkdir -p "$app" "$tmp/trap"
printf '{ "name": "latte-pack-check", "version": "0.0.0", "private": true, "type": "module" }\n' > "$app/package.json"
for tool in cmake cmake-js node-gyp make gmake ninja cc gcc g++ c++ clang clang++ nvcc; do
  printf '#!/bin/sh\necho "%s $*" >> "%s"\nexit 97\n' "$tool" "$tmp/trap.log" > "$tmp/trap/$tool"
  chmod +x "$tmp/trap/$tool"
done
say "npm install $(basename "$tgz") into an empty project"
(cd "$app" && PATH="$tmp/trap:$PATH" npm install --prefix "$app" --no-audit --no-fund --foreground-scripts "$tgz" > "$tmp/install.log" 2>&1) \
  || { cat "$tmp/install.log" >&2; fail "npm install of the tarball failed"; }
pkgdir="$app/node_modules/latte-flow"
[ -f "$pkgdir/package.json" ] || fail "latte-flow is not in $app/node_modules"
[ ! -s "$tmp/trap.log" ] || fail "the install ran build tools: $(cat "$tmp/trap.log")"
[ ! -e "$pkgdir/build" ] || fail "the installed package has a build/ directory (something compiled)"
[ ! -e "$pkgdir/binding.gyp" ] || fail "the installed package has binding.gyp (npm would run node-gyp)"
node -e '
  const s = require(process.argv[1]).scripts || {};
  const bad = ["preinstall", "install", "postinstall", "prepare"].filter((k) => s[k]);
  if (bad.length) { console.error("install scripts: " + bad.join(", ")); process.exit(1); }' "$pkgdir/package.json" \
  || fail "the package declares install scripts"
if grep -qiE 'cmake|node-gyp|gyp info' "$tmp/install.log"; then fail "the install log mentions a native build: $(grep -iE 'cmake|node-gyp|gyp info' "$tmp/install.log" | head -3)"; fi
installed="$pkgdir/prebuilds/$tuple"
addon="$(ls "$installed"/*.node)"

# ---- 3. ldd: bundled libraries resolve inside the package --------------------------------------
check_ldd() {
  local out lib where
  out="$(ldd "$addon")" || fail "ldd failed on $addon"
  if grep -q 'not found' <<<"$out"; then fail "unresolved libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"; fi
  for lib in "${bundled[@]}"; do
    where="$(awk -v n="$lib" '$1 == n && $2 == "=>" { print $3 }' <<<"$out")"
    [ -n "$where" ] || fail "ldd does not list $lib for $(basename "$addon")"
    [ "$(dirname "$(readlink -f "$where")")" = "$(readlink -f "$installed")" ] || fail "$lib resolves to $where, not the bundled copy"
  done
}
check_ldd
say "ldd: ${bundled[*]} -> node_modules/latte-flow/prebuilds/$tuple/"

# ---- 4. smoke test -----------------------------------------------------------------------------
cat > "$app/smoke.mjs" <<'EOF'
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { getBackendInfo, Engine } from 'latte-flow';

const require = createRequire(import.meta.url);
const pkgdir = path.dirname(require.resolve('latte-flow/package.json'));
const bundle = fs.realpathSync(path.join(pkgdir, 'prebuilds', `${process.platform}-${process.arch}`));
const bundled = fs.readdirSync(bundle).filter((f) => /\.so(\.\d+)*$/.test(f));
const fail = (msg) => { console.error(`smoke: ${msg}`); process.exit(1); };

// node-gyp-build must pick the prebuilt addon (there is no build/ in an installed package)
const loaded = createRequire(path.join(pkgdir, 'package.json'))('node-gyp-build').resolve(pkgdir);
if (path.dirname(fs.realpathSync(loaded)) !== bundle) fail(`node-gyp-build resolved ${loaded}`);

const info = getBackendInfo();
if (!info.compiled.includes('cpu')) fail(`no cpu backend: ${JSON.stringify(info.compiled)}`);
const engine = new Engine({ backend: 'cpu' });
if (engine.backend.name !== 'cpu') fail(`backend ${engine.backend.name}`);
const x = engine.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]); // [B=2, in=3]
const w = engine.tensor(new Float32Array([1, 0, -1, 0.5, 0.5, 0.5]), [2, 3]); // [out=2, in=3]
const y = engine.linear(x, w); // x W^T -> [2, 2]
const got = Array.from(await y.readFloat32());
const want = [-2, 3, -2, 7.5];
if (y.shape.join() !== '2,2' || got.some((v, i) => Math.abs(v - want[i]) > 1e-5)) fail(`linear gave ${got} (shape ${y.shape}), want ${want}`);
await engine.dispose();
if (!engine.disposed) fail('engine not disposed');

// what the process really mapped: every bundled soname must come from the bundle, none from elsewhere
const maps = new Set(fs.readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5]).filter((f) => f?.startsWith('/')));
const stems = bundled.map((f) => f.replace(/\.so.*$/, '.so'));
const libs = [...maps].filter((f) => stems.some((s) => path.basename(f).startsWith(s)));
const stray = libs.filter((f) => path.dirname(fs.realpathSync(f)) !== bundle);
if (stray.length) fail(`loaded outside the bundle: ${stray.join(', ')}`);
for (const f of bundled) if (!libs.some((l) => path.basename(l) === f)) fail(`${f} was not loaded`);
console.log(`smoke: ${info.compiled.join('+')} compiled, gemm ${info.cpu.gemm}, cuda: ${info.cuda.available ? info.cuda.device : info.cuda.reason}`);
console.log(`smoke: linear [2,3]x[2,3]^T = ${got.join(', ')}; mapped from the bundle: ${libs.map((f) => path.basename(f)).join(', ')}`);
EOF
node_bin="$(command -v node)"
(cd "$app" && "$node_bin" smoke.mjs) || fail "smoke test failed"

# ---- 5. again, with the system copies unusable --------------------------------------------------
# We must not uninstall libdnnl-dev (other work on this machine needs it), and LD_LIBRARY_PATH cannot
# hide a library that ld.so.cache and the default directories provide. So, in a private mount
# namespace (unshare -m; only this subshell sees it), /dev/null is bind-mounted over every system copy
# of each bundled library: a load that fell through to the system would read an empty file and fail.
# node runs under `env -i`, so no LD_LIBRARY_PATH or NODE_OPTIONS helps it either. Where unshare is
# not permitted, step 4's /proc/self/maps check still shows every bundled soname was mapped from the
# bundle (the loader stops at the first hit, so the system copies were never used), and we say so.
hide_system_libs() {
  local lib f
  for f in $(for lib in "${bundled[@]}"; do
               { ldconfig -p 2>/dev/null | awk -v n="$lib" '$1 == n { print $NF }'
                 ls /lib/*/"$lib" /usr/lib/*/"$lib" /lib/"$lib" /usr/lib/"$lib" /usr/local/lib/"$lib" 2>/dev/null; } \
                 | xargs -r readlink -f
             done | sort -u); do
    case "$f" in "$tmp"/*) continue ;; esac
    mount --bind /dev/null "$f" || return 1
    [ ! -s "$f" ] || return 1
    echo "hidden: $f"
  done
}
export -f hide_system_libs fail
export tmp addon installed app node_bin
bundled_list="${bundled[*]}"; export bundled_list
hidden_run='set -euo pipefail; read -ra bundled <<<"$bundled_list"
  hide_system_libs > "$tmp/hidden.txt" || { echo "cannot hide the system libraries" >&2; exit 3; }
  cd "$app" && env -i PATH=/usr/bin:/bin HOME="$tmp" "$node_bin" smoke.mjs && ldd "$addon"'
unshare_cmd=()
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then unshare_cmd=(unshare -m --propagation private)
elif unshare -rm true 2>/dev/null; then unshare_cmd=(unshare -rm --propagation private)
fi
if [ "${#unshare_cmd[@]}" -gt 0 ]; then
  "${unshare_cmd[@]}" bash -c "$hidden_run" > "$tmp/hidden.log" 2>&1 || { cat "$tmp/hidden.log" >&2; fail "the package does not work with the system copies hidden"; }
  [ -s "$tmp/hidden.txt" ] || say "note: no system copy of ${bundled[*]} exists here; nothing to hide"
  sed 's/^/  /' "$tmp/hidden.txt"
  grep '^smoke:' "$tmp/hidden.log" | sed 's/^/  /'
  if awk '$2 == "=>" && $3 !~ /^\//' "$tmp/hidden.log" | grep -q .; then fail "ldd with the system copies hidden: $(grep 'not found' "$tmp/hidden.log")"; fi
  say "works with the system copies hidden (unshare -m + bind mounts, env -i)"
else
  say "note: unshare -m is not permitted here, so the system copies were not hidden; the /proc/self/maps check above is the proof"
fi
# ---- 6. the README's main job in the installed package ----------------------------------------------
# `npx latte-flow generate "<prompt>" -o out.png` on the shipped model, from the empty project.
if [ -f "$root/models/shapes/latte_flow.json" ]; then
  prompt="a red circle to the left of a blue square"
  (cd "$app" && npx --no-install latte-flow generate "$prompt" -o out.png > "$tmp/main-job.log" 2>&1) \
    || { cat "$tmp/main-job.log" >&2; fail "npx latte-flow generate failed in the installed package"; }
  node -e '
    const b = require("fs").readFileSync(process.argv[1]);
    if (b.readUInt32BE(0) !== 0x89504e47) { console.error("not a PNG"); process.exit(1); }
    const w = b.readUInt32BE(16), h = b.readUInt32BE(20);
    if (w !== 64 || h !== 64) { console.error("PNG is " + w + "x" + h); process.exit(1); }' "$app/out.png" \
    || fail "out.png is not the 64x64 PNG the main job makes"
  say "npx latte-flow generate \"$prompt\" -o out.png: $(head -1 "$tmp/main-job.log")"
  # the issue's bar: the picture the main job makes is one ShapesEval accepts
  (cd "$root" && node --import=tsx tools/shapes/score-png.ts "$app/out.png" "$prompt") > "$tmp/score.log" 2>&1 \
    || { cat "$tmp/score.log" >&2; fail "ShapesEval does not accept the main job's picture"; }
  say "$(cat "$tmp/score.log")"
else
  fail "models/shapes is missing: the package must ship its default model"
fi

say ok
