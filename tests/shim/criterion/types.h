/* SPDX-License-Identifier: MIT */
/*
 * criterion/types.h - TSan-build shim of Criterion 2.4 (see criterion.h).
 * Test and suite descriptors; field names match Criterion's
 * struct criterion_test_extra_data so `.timeout = 30` etc. work unchanged.
 */
#ifndef UFP_CRITERION_SHIM_TYPES_H
#define UFP_CRITERION_SHIM_TYPES_H
#pragma GCC system_header

#include <stdbool.h>
#include <stddef.h>

#include "alloc.h"

#define UFP_CRITERION_SHIM 1

struct criterion_test_params {
	size_t size;  /* bytes per parameter */
	void *params; /* array of `length` parameters */
	size_t length;
	void (*cleanup)(struct criterion_test_params *);
};

struct criterion_test_extra_data {
	int sentinel_;
	void (*init)(void); /* suite init, then test init, before the body */
	void (*fini)(void); /* test fini, then suite fini, after the body */
	int signal;	    /* the test passes only if it dies of this signal */
	int exit_code;	    /* expected exit status (default 0) */
	bool disabled;	    /* reported as skipped, never run */
	const char *description;
	double timeout; /* seconds; 0 = none */
	void *data;
};

/* Shim-internal registration records (one per Test / TestSuite). */
struct crs_test {
	const char *suite;
	const char *name;
	const char *file;
	unsigned line;
	void (*fn)(void);			     /* plain test */
	struct criterion_test_params (*param)(void); /* ParameterizedTest */
	struct criterion_test_extra_data *data;
	struct crs_test *next;
};

struct crs_suite {
	const char *name;
	struct criterion_test_extra_data *data;
	struct crs_suite *next;
};

void crs_register_test(struct crs_test *t);
void crs_register_suite(struct crs_suite *s);

#endif
