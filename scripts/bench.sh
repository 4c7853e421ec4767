#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the Release configuration and run ufp-bench (default: the tour).
# Usage: scripts/bench.sh [ufp-bench arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
exec build/release/bench/ufp-bench "$@"
