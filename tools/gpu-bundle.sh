#!/usr/bin/env bash
# Packs what `npm run test:gpu` needs on a GPU machine that has no registry (and maybe no Node) into
# .gpu/ (git-ignored through .git/info/exclude), small enough to travel beside the tracked tree
# (the device tool's 64 MiB cap covers both):
#   .gpu/bundle.tar.xz  build/Release/latte_flow.node (built with CUDA), its shared libraries
#                       (libdnnl, libgomp, libOpenCL from prebuilds/linux-x64), and node_modules
#                       reduced to the runtime dependencies + ava (no onnxruntime-node), with
#                       tools/gpu-tsx standing in for tsx (typescript's transpiler instead of the
#                       11 MB esbuild binary: the bundle must fit the 64 MiB cap beside the tree)
#   .gpu/node.xz        this machine's node binary (only with --with-node: the GPU image may lack it)
# On the GPU machine (docs/cuda.md has the whole command):
#   source tools/gpu-unpack.sh && npm run test:gpu     (or: node --import=tsx tools/test-gpu.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }

addon=build/Release/latte_flow.node
[ -f "$addon" ] || { echo "missing $addon: build with LATTE_CUDA=ON first" >&2; exit 1; }
strings "$addon" | grep 'kernels built for' >/dev/null || { echo "$addon has no CUDA backend (rebuild with LATTE_CUDA=ON)" >&2; exit 1; }

# the node_modules closure of the runtime dependencies and ava
node -e '
const fs = require("fs"), path = require("path");
const seen = new Set();
function resolve(name, from) {
  for (let d = from; ; d = path.dirname(d)) {
    const p = path.join(d, "node_modules", name);
    if (fs.existsSync(path.join(p, "package.json"))) return p;
    if (path.dirname(d) === d) return null;
  }
}
function walk(dir) {
  if (!dir || seen.has(dir)) return;
  seen.add(dir);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, "package.json")));
  for (const dep of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies })) walk(resolve(dep, dir));
}
const root = process.cwd();
const pj = JSON.parse(fs.readFileSync("package.json"));
for (const d of [...Object.keys(pj.dependencies), "ava"]) walk(resolve(d, root));
console.log([...seen].map((p) => path.relative(root, p)).join("\n"));
' > .gpu/modules.txt

libs=$(ls prebuilds/linux-x64/*.so* 2>/dev/null || true)
[ -n "$libs" ] || libs="/lib/x86_64-linux-gnu/libdnnl.so.2 /lib/x86_64-linux-gnu/libgomp.so.1 /lib/x86_64-linux-gnu/libOpenCL.so.1"
rm -rf .gpu/lib && mkdir -p .gpu/lib && cp -L $libs .gpu/lib/
# source maps, typings and docs are dead weight there
tar -cf - --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' --exclude='*.md' \
  --transform 's,^tools/gpu-tsx,node_modules/tsx,' "$addon" .gpu/lib -T .gpu/modules.txt \
  node_modules/typescript/package.json node_modules/typescript/lib/typescript.js tools/gpu-tsx | xz -T2 -9e > .gpu/bundle.tar.xz
rm -rf .gpu/lib
if [ "${1:-}" = "--with-node" ]; then
  # stripped: Debian's node carries its debug info (a third of the compressed size)
  if [ ! -s .gpu/node.xz ]; then
    strip -o .gpu/node "$(readlink -f "$(command -v node)")"
    xz -T2 -9e -c .gpu/node > .gpu/node.xz && rm .gpu/node
  fi
fi
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
untracked=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
carry=$(du -cb .gpu/bundle.tar.xz .gpu/node.xz 2>/dev/null | tail -1 | cut -f1)
awk -v t="$tracked" -v u="${untracked:-0}" -v c="$carry" 'BEGIN {
  m = 1048576; printf "tree %.1f MiB + carry .gpu %.1f MiB = %.1f MiB of the 64 MiB the device tool takes\n", (t + u) / m, c / m, (t + u + c) / m
  exit (t + u + c > 64 * m) }' || { echo "over the 64 MiB cap" >&2; exit 1; }
