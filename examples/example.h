/* SPDX-License-Identifier: MIT */
/*
 * example.h - what every example does on failure: name the call and the
 * error, exit non-zero (ctest counts it failed). An embedder has its own.
 */
#ifndef UFP_EXAMPLE_H
#define UFP_EXAMPLE_H

#include <stdio.h>
#include <stdlib.h>
#include <uffdpool.h>

/* A uffdpool call that must return 0. */
#define CHECK(call)                                                            \
	do {                                                                   \
		int err_ = (call);                                             \
		if (err_) {                                                    \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, \
				#call, ufp_strerror(err_));                    \
			exit(1);                                               \
		}                                                              \
	} while (0)

/* A condition that must hold. */
#define EXPECT(cond)                                                      \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: expected %s\n", __FILE__, \
				__LINE__, #cond);                         \
			exit(1);                                          \
		}                                                         \
	} while (0)

#endif /* UFP_EXAMPLE_H */
