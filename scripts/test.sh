#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the sanitizer configurations and run every test through ctest:
# the debug preset (ASan + UBSan) runs everything, the tsan preset runs the
# tests labelled "concurrency".
# Environment: UFP_WERROR=ON adds -Werror; UFP_REQUIRE_FEATURES=1 turns
# "kernel feature missing" skips into failures (CI sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
werror=${UFP_WERROR:-OFF}
jobs=$(nproc)
for preset in debug tsan; do
  cmake --preset "$preset" -DUFP_WERROR="$werror" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
done
status=0
ctest --preset debug || status=1
ctest --preset tsan || status=1
exit $status
