/* SPDX-License-Identifier: MIT */
/*
 * criterion/parameterized.h - TSan-build shim of Criterion 2.4 (see
 * criterion.h).
 *
 *   ParameterizedTestParameters(suite, name) {
 *       static int v[] = {1, 2, 3};
 *       return cr_make_param_array(int, v, 3);     (optional 4th: cleanup)
 *   }
 *   ParameterizedTest(int *v, suite, name, .timeout = 5) { ... }
 *
 * Each parameter runs as its own test, reported as suite::name[i].
 */
#ifndef UFP_CRITERION_SHIM_PARAMETERIZED_H
#define UFP_CRITERION_SHIM_PARAMETERIZED_H
#pragma GCC system_header

#include "criterion.h"

#define ParameterizedTestParameters(Suite, Name)                   \
	struct criterion_test_params Suite##_##Name##_param(void); \
	struct criterion_test_params Suite##_##Name##_param(void)

#define ParameterizedTest(Type, Suite, Name, ...)                           \
	struct criterion_test_params Suite##_##Name##_param(void);          \
	void Suite##_##Name##_impl(Type);                                   \
	static struct criterion_test_extra_data Suite##_##Name##_extra = {  \
		.sentinel_ = 0, __VA_ARGS__};                               \
	static struct crs_test Suite##_##Name##_meta = {                    \
		#Suite,                                                     \
		#Name,                                                      \
		__FILE__,                                                   \
		__LINE__,                                                   \
		(void (*)(void))Suite##_##Name##_impl,                      \
		Suite##_##Name##_param,                                     \
		&Suite##_##Name##_extra,                                    \
		NULL};                                                      \
	__attribute__((constructor)) static void Suite##_##Name##_reg(void) \
	{                                                                   \
		crs_register_test(&Suite##_##Name##_meta);                  \
	}                                                                   \
	void Suite##_##Name##_impl(Type)

#define cr_make_param_array(Type, Array, ...) \
	((struct criterion_test_params){      \
		.size = sizeof(Type), .params = (void *)(Array), __VA_ARGS__})

#endif
