#!/usr/bin/env bash
# On the GPU machine, in the repository root: `source tools/gpu-unpack.sh` unpacks what
# tools/gpu-bundle.sh packed (the CUDA build, its libraries, node_modules for the tests) and puts
# the libraries, and node when the image has none, on the paths. Then `npm run test:gpu` (or
# `node --import=tsx tools/test-gpu.mjs` where npm is missing).
tar -xJf .gpu/bundle.tar.xz || return 1 2>/dev/null || exit 1
export LD_LIBRARY_PATH="$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ! command -v node >/dev/null 2>&1; then
  if [ -f .gpu/node.xz ]; then
    mkdir -p /tmp/latte-node && xz -dc .gpu/node.xz > /tmp/latte-node/node && chmod +x /tmp/latte-node/node
    export PATH="/tmp/latte-node:$PATH"
  else
    echo "no node on this machine and no .gpu/node.xz (run tools/gpu-bundle.sh --with-node)" >&2
  fi
fi
node --version
