#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the build tree into a temporary prefix, then compile and run a
# three-line program against it through pkg-config and through CMake's
# find_package. Usage: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
# CMake hands the sanitizer flags over as a list ("a;b;c")
san=${UFP_SAN_FLAGS:-}
san=${san//;/ }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
cat > "$tmp/hello.c" <<'C'
#include <uffdpool.h>
#include <stdio.h>
int main(void) { ufp_config c; ufp_config_init(&c); return printf("uffdpool %s slots=%u\n", ufp_version(), c.slots) < 0; }
C
# shellcheck disable=SC2086
${CC:-cc} $san "$tmp/hello.c" -o "$tmp/hello" $(pkg-config --cflags --libs uffdpool)
libdir=$(pkg-config --variable=libdir uffdpool)
# no LD_LIBRARY_PATH: outside /usr the .pc's Libs carry an rpath
out=$("$tmp/hello")
echo "$out"
want="uffdpool $(pkg-config --modversion uffdpool) slots="
[[ "$out" == "$want"* ]] || { echo "unexpected output: $out (want $want...)"; exit 1; }
# relocatable: move the installed tree, build against it where it is now
mv "$tmp/prefix" "$tmp/moved"
export PKG_CONFIG_PATH="$tmp/moved/lib/pkgconfig:$tmp/moved/lib/x86_64-linux-gnu/pkgconfig"
[[ $(pkg-config --variable=libdir uffdpool) == "$tmp/moved/"* ]] ||
	{ echo "libdir did not follow the move: $(pkg-config --variable=libdir uffdpool)"; exit 1; }
# shellcheck disable=SC2086
${CC:-cc} $san "$tmp/hello.c" -o "$tmp/hello2" $(pkg-config --cflags --libs uffdpool)
out=$("$tmp/hello2")
[[ "$out" == "$want"* ]] || { echo "moved tree: unexpected output: $out"; exit 1; }
mv "$tmp/moved" "$tmp/prefix"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/x86_64-linux-gnu/pkgconfig"
# the static archive and the CMake package
mkdir "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(hello C)
find_package(uffdpool REQUIRED)
add_executable(hello ../hello.c)
target_link_libraries(hello uffdpool::uffdpool)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
      -DCMAKE_C_FLAGS="$san" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/b/hello"
echo "1 passed, 0 failed"
