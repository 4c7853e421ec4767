/* SPDX-License-Identifier: MIT */
/* criterion/abort.h - TSan-build shim of Criterion 2.4 (see criterion.h). */
#ifndef UFP_CRITERION_SHIM_ABORT_H
#define UFP_CRITERION_SHIM_ABORT_H
#pragma GCC system_header

/* Ends the current test as failed (jumps to its teardown). */
_Noreturn void criterion_abort_test(void);
/* Ends the current test as skipped, with a printf-style reason. */
_Noreturn void criterion_skip_test(const char *format, ...)
	__attribute__((format(printf, 1, 2)));
void criterion_continue_test(void);
void criterion_test_die(const char *msg, ...)
	__attribute__((format(printf, 1, 2)));

#endif
