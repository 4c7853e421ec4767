#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Plot the module-churn benchmark: resident MiB of the pool after each
# round, purge on vs purge off (see bench/churn.c).
#
# Usage: bench/plot.sh [UFP_BENCH [OUTDIR [churn args...]]]
#   UFP_BENCH  path to ufp-bench (default build/release/bench/ufp-bench)
#   OUTDIR     where churn.png goes (default docs/img)
#   churn args are passed on, e.g. --rounds 60
# Needs gnuplot (scripts/deps.sh gnuplot-nox); uses the pngcairo terminal
# when it is there, else png.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=${1:-$here/build/release/bench/ufp-bench}
outdir=${2:-$here/docs/img}
shift $(($# > 2 ? 2 : $#))

if ! command -v gnuplot >/dev/null; then
  echo "plot.sh: gnuplot not found: bash scripts/deps.sh gnuplot-nox" >&2
  exit 1
fi
if [ ! -x "$bench" ]; then
  echo "plot.sh: $bench is not an executable ufp-bench" >&2
  exit 1
fi
mkdir -p "$outdir"
csv=$(mktemp /tmp/ufp-churn.XXXXXX.csv)
trap 'rm -f "$csv"' EXIT
png=$outdir/churn.png

"$bench" churn --csv "$csv" "$@"

if gnuplot -e 'set terminal' 2>/dev/null | grep -q pngcairo; then
  term='pngcairo size 900,520 enhanced font "DejaVu Sans,11"'
else
  term='png size 900,520'
fi
kernel=$(uname -r)

gnuplot <<EOF
set terminal $term
set output '$png'
set datafile separator ','
set key right center box opaque
set title "Module churn: pool resident memory after each round (Linux $kernel)"
set xlabel 'round (one module created, instantiated, dropped)'
set ylabel 'resident in the pool (MiB)'
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set grid ytics
set style line 1 lc rgb '#1b7837' lw 2 pt 7 ps 0.6
set style line 2 lc rgb '#b2182b' lw 2 pt 5 ps 0.6
plot '$csv' using 1:(\$2/1048576) skip 1 with linespoints ls 1 title 'purge on', \
     '$csv' using 1:(\$3/1048576) skip 1 with linespoints ls 2 title 'purge off (before this issue)'
EOF
echo "plot.sh: wrote $png"
