/* SPDX-License-Identifier: MIT */
/*
 * criterion/criterion.h - a small, source-compatible stand-in for Criterion
 * 2.4, used ONLY by the ThreadSanitizer build (UFP_TSAN=ON) of tests/.
 *
 * Why: Criterion 2.4.1 cannot start under TSan. Its sandbox (BoxFort) maps
 * an "inheritable arena" with MAP_FIXED at a random address in
 * [0x200000000000, 0x600000000000); that range is mostly TSan shadow memory,
 * TSan's mmap interceptor refuses it, and the runner aborts with
 * "Could not initialize inheritable arena: Resource temporarily
 * unavailable" (Snaipe/Criterion#274). No environment variable or
 * TSAN_OPTIONS setting avoids it; the base is compiled into libcriterion.
 *
 * What: Test() / TestSuite() with .init .fini .signal .exit_code .timeout
 * .disabled .description; the assertion macros of criterion/assert.h;
 * cr_log*; ParameterizedTest (criterion/parameterized.h); cr_fail/cr_fatal
 * and basic criteria of criterion/new/assert.h. The runtime
 * (tests/shim/criterion_shim.c) provides main(): each test runs in a
 * fork()ed child (no exec) with its timeout enforced by the parent. Options:
 * --filter GLOB (on "suite/name"), --jobs N, --verbose, --timeout S,
 * --fail-fast, --list; others are ignored. Headers of Criterion that are not
 * shimmed stop the build with #error rather than mix with the real ones.
 */
#ifndef UFP_CRITERION_SHIM_CRITERION_H
#define UFP_CRITERION_SHIM_CRITERION_H
#pragma GCC system_header

#include "types.h"
#include "assert.h"
#include "alloc.h"
#include "abort.h"
#include "logging.h"

/*
 * Test(Suite, Name, .option = value, ...) { body }
 * Defines Suite_Name_impl (as Criterion does) and registers it from a
 * constructor.
 */
#define Test(Suite, Name, ...)                                              \
	void Suite##_##Name##_impl(void);                                   \
	static struct criterion_test_extra_data Suite##_##Name##_extra = {  \
		.sentinel_ = 0, __VA_ARGS__};                               \
	static struct crs_test Suite##_##Name##_meta = {                    \
		#Suite,                                                     \
		#Name,                                                      \
		__FILE__,                                                   \
		__LINE__,                                                   \
		Suite##_##Name##_impl,                                      \
		NULL,                                                       \
		&Suite##_##Name##_extra,                                    \
		NULL};                                                      \
	__attribute__((constructor)) static void Suite##_##Name##_reg(void) \
	{                                                                   \
		crs_register_test(&Suite##_##Name##_meta);                  \
	}                                                                   \
	void Suite##_##Name##_impl(void)

/*
 * TestSuite(Name, .option = value, ...);
 * The suite's .init/.fini run around every test of the suite (suite init
 * before the test's, suite fini after the test's); its .timeout, .signal,
 * .exit_code are defaults for tests that set none; .disabled skips them all.
 */
#define TestSuite(Name, ...)                                            \
	static struct criterion_test_extra_data Name##_suite_extra = {  \
		.sentinel_ = 0, __VA_ARGS__};                           \
	static struct crs_suite Name##_suite_meta = {                   \
		#Name, &Name##_suite_extra, NULL};                      \
	__attribute__((constructor)) static void Name##_suite_reg(void) \
	{                                                               \
		crs_register_suite(&Name##_suite_meta);                 \
	}                                                               \
	extern int Name##_suite_semicolon_

#endif
