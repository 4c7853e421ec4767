/* SPDX-License-Identifier: MIT */
/*
 * soak_model.c - the model test's engine (tests/support_model.c), compiled
 * into ufp-bench for `ufp-bench soak`.
 *
 * bench/CMakeLists.txt builds ufp-bench from the .c files of bench/ only,
 * and the engine must stay in tests/ next to the Criterion suite that runs
 * it in CI. It is plain C with no Criterion and no constructors, so
 * including it here gives the soak the very same generator, reference
 * model and shrinker as tests/test_model.c without touching the build
 * (tests/support_wasm.c does the same the other way round for the .wasm
 * loader).
 */
#include "../tests/support_model.c"
