#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every ufp-bench scenario (release build) and keep the readable tables
# for docs/benchmarks.md (add --json to any scenario for machine output).
# Usage: bench/run_all.sh OUTDIR [REPS]   (from the repository root)
set -euo pipefail
out=${1:?usage: bench/run_all.sh OUTDIR [REPS]}
reps=${2:-5}
bench=build/release/bench/ufp-bench
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" >/dev/null
mkdir -p "$out"
{ uname -a; nproc; grep -m1 'model name' /proc/cpuinfo; free -g | head -2; date -u; git rev-parse HEAD; } > "$out/machine.txt"
"$bench" --check > "$out/check.txt" 2>&1 || true
for s in calibrate index fault cycle prefetch density small large threads wasm purge churn; do
  echo "== $s" >&2
  start=$(date +%s)
  "$bench" --reps "$reps" "$s" > "$out/$s.txt" 2>&1
  echo "   $(( $(date +%s) - start )) s" >&2
done
"$bench" churn --csv "$out/churn.csv" > /dev/null 2>&1 || true
