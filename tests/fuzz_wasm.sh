#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer target of the .wasm loader (bench/wasm.c) with clang,
# ASan and UBSan, and fuzz it for a bounded time starting from the seeds in
# tests/corpus/wasm. The repository corpus is copied, never written to.
#
# Usage: tests/fuzz_wasm.sh OUTDIR [SECONDS]
#   OUTDIR   binary, working corpus, crash artifacts and fuzz.log go here
#   SECONDS  -max_total_time (default 60; or UFP_FUZZ_SECONDS)
# Exits non-zero when the build fails or the fuzzer finds a crash, leak,
# timeout or sanitizer report (the reproducer is left in OUTDIR/artifacts).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [SECONDS]" >&2; exit 2; }
out=$1
secs=${2:-${UFP_FUZZ_SECONDS:-60}}
cc=${CLANG:-clang}

# libFuzzer ships in clang's runtime package (Debian: libclang-rt-14-dev).
probe() {
  command -v "$cc" >/dev/null &&
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
      "$cc" -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}
if ! probe; then
  bash "$root/scripts/deps.sh" clang libclang-rt-14-dev
  probe || { echo "fuzz_wasm: clang cannot link -fsanitize=fuzzer" >&2; exit 1; }
fi

mkdir -p "$out/corpus" "$out/artifacts"
cp "$root"/tests/corpus/wasm/* "$out/corpus/"

# Tokens of the binary format, to get past the header and section ids.
cat >"$out/wasm.dict" <<'DICT'
header="\x00asm\x01\x00\x00\x00"
i32_const="\x41"
i64_const="\x42"
global_get="\x23"
end="\x0b"
sec_import="\x02"
sec_memory="\x05"
sec_data="\x0b"
sec_datacount="\x0c"
leb_max32="\xff\xff\xff\xff\x0f"
leb_pad="\x80\x80\x80\x80\x00"
env_memory="\x03env\x06memory\x02"
DICT

"$cc" -g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -I "$root/bench" \
  "$root/tests/fuzz_wasm.c" "$root/bench/wasm.c" -o "$out/fuzz_wasm"

echo "fuzz_wasm: fuzzing for ${secs}s, log in $out/fuzz.log" >&2
status=0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/fuzz_wasm" -max_total_time="$secs" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -dict="$out/wasm.dict" \
  -artifact_prefix="$out/artifacts/" "$out/corpus" >"$out/fuzz.log" 2>&1 ||
  status=$?
grep -E '^stat::|^Done|SUMMARY|ERROR' "$out/fuzz.log" >&2 || true
if [ "$status" -ne 0 ]; then
  echo "fuzz_wasm: FAILED (exit $status), reproducers:" >&2
  ls -l "$out/artifacts" >&2
  tail -n 40 "$out/fuzz.log" >&2
fi
exit "$status"
