#!/usr/bin/env bash
# Builds what the product ships: the native addon, the static CNI executable and the agent bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/Release/koa_native.node ] || [ -n "$(find native binding.gyp -newer build/Release/koa_native.node -print -quit)" ]; then
  npm run --silent build:native
fi
npm run --silent build:shim
npm run --silent build:agent
