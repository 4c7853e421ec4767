/* SPDX-License-Identifier: MIT */
/*
 * support_wasm.c - the bench's .wasm loader, compiled into the tests.
 *
 * tests/CMakeLists.txt links the library into test binaries but no bench
 * sources, and links every tests/support_*.c into every test binary. The
 * loader is plain code with no constructors or global state, so including
 * it here gives test_wasm.c its symbols and costs the other tests nothing
 * but a few unused functions. One file compiled twice (here and in
 * ufp-bench) keeps the bench and the tests on the same loader without
 * touching the build.
 */
#include "../bench/wasm.c"
