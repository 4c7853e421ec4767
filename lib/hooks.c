/* SPDX-License-Identifier: MIT */
/*
 * hooks.c - switches for benchmarks, kept out of the production structs:
 * a pool never carries them, the purge path asks here (one relaxed load).
 */
#include <stdatomic.h>

#include "pool.h"

static _Atomic(const ufp_pool *) purge_off_pool;

void ufpi_hook_purge_off(const ufp_pool *pool)
{
	atomic_store_explicit(&purge_off_pool, pool, memory_order_relaxed);
}

bool ufpi_hook_purge_is_off(const ufp_pool *pool)
{
	return atomic_load_explicit(&purge_off_pool, memory_order_relaxed) ==
	       pool;
}
