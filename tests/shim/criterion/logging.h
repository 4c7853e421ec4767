/* SPDX-License-Identifier: MIT */
/*
 * criterion/logging.h - TSan-build shim of Criterion 2.4 (see criterion.h).
 * cr_log_info prints only with --verbose (as Criterion); warn/error always.
 */
#ifndef UFP_CRITERION_SHIM_LOGGING_H
#define UFP_CRITERION_SHIM_LOGGING_H
#pragma GCC system_header

enum criterion_severity {
	CR_LOG_INFO,
	CR_LOG_WARNING,
	CR_LOG_ERROR,
};

void cr_log(enum criterion_severity severity, const char *msg, ...)
	__attribute__((format(printf, 2, 3)));

#define cr_log_info(...) cr_log(CR_LOG_INFO, __VA_ARGS__)
#define cr_log_warn(...) cr_log(CR_LOG_WARNING, __VA_ARGS__)
#define cr_log_error(...) cr_log(CR_LOG_ERROR, __VA_ARGS__)

#endif
