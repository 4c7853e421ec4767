/* SPDX-License-Identifier: MIT */
/*
 * criterion/alloc.h - TSan-build shim of Criterion 2.4 (see criterion.h).
 * Tests run in fork()ed children, so plain malloc memory is inherited:
 * cr_malloc and friends are malloc and friends.
 */
#ifndef UFP_CRITERION_SHIM_ALLOC_H
#define UFP_CRITERION_SHIM_ALLOC_H
#pragma GCC system_header

#include <stdlib.h>

static inline void *cr_malloc(size_t size)
{
	return malloc(size);
}
static inline void *cr_calloc(size_t nmemb, size_t size)
{
	return calloc(nmemb, size);
}
static inline void *cr_realloc(void *ptr, size_t size)
{
	return realloc(ptr, size);
}
static inline void cr_free(void *ptr)
{
	free(ptr);
}

#endif
