/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - written-page tracking with the PAGEMAP_SCAN ioctl (Linux 6.7):
 * either UFFD_FEATURE_WP_ASYNC write protection (copy mode, 6.7), or, where
 * a slot maps the image's memfd copy-on-write (minor mode, COW), the
 * anonymous pages of the range.
 *
 * Pages are installed write-protected (UFFDIO_COPY_MODE_WP); with WP_ASYNC
 * the kernel resolves a write itself, clearing the protection, and
 * PAGEMAP_SCAN then reports the page as WRITTEN. What was checked on this
 * kernel (docs/design.md): COPY_MODE_WP untouched -> PRESENT only; after a
 * write -> WRITTEN|PRESENT; UFFDIO_ZEROPAGE untouched ->
 * WRITTEN|PRESENT|PFNZERO (the shared zero page cannot be written: a write
 * replaces it, and the result is WRITTEN|PRESENT); never populated ->
 * WRITTEN without PRESENT. So "written" means WRITTEN and not PFNZERO.
 *
 * The walk reports runs of pages with equal categories and goes on until
 * it has covered the whole range, however many runs there are (Wasmtime's
 * first scan stopped after a fixed number of runs and treated the rest as
 * clean).
 */
#include <errno.h>

#include "os.h"
#include "uffd.h"
#include "kernel_uapi.h"

/* Flags of one reported run. With `anon`, written pages are the private
 * (anonymous) ones of a range whose clean pages are page-cache pages or
 * the zero page, or have never been touched: a copy-on-write fault is the
 * only way to an anonymous page there. A swapped-out page was written. */
static unsigned run_flags(uint64_t c, bool anon)
{
	unsigned flags = 0;
	if (c & PAGE_IS_PRESENT)
		flags |= UFPI_PG_PRESENT;
	if (c & PAGE_IS_PFNZERO)
		flags |= UFPI_PG_ZERO;
	if (c & PAGE_IS_FILE)
		flags |= UFPI_PG_FILE;
	if (anon ? (c & PAGE_IS_SWAPPED) ||
			    ((c & PAGE_IS_PRESENT) &&
			     !(c & (PAGE_IS_FILE | PAGE_IS_PFNZERO)))
		 : (c & PAGE_IS_WRITTEN) && !(c & PAGE_IS_PFNZERO))
		flags |= UFPI_PG_WRITTEN;
	return flags;
}

struct dirty_walk {
	bool anon;
	ufpi_dirty_fn fn;
	void *arg;
};

static int dirty_region(void *arg, uint64_t start, uint64_t end, uint64_t cats)
{
	const struct dirty_walk *w = arg;
	return w->fn(w->arg, (void *)(uintptr_t)start, end - start,
		     run_flags(cats, w->anon));
}

int ufpi_dirty_scan(int pagemap_fd, void *addr, size_t len, bool anon,
		    ufpi_dirty_fn fn, void *arg)
{
	/* every page that is present, or written (WP tracking: a missing
	 * page reads as written), or swapped out */
	const struct ufpi_pm_query q = {
		.anyof = PAGE_IS_PRESENT |
			 (anon ? PAGE_IS_SWAPPED : PAGE_IS_WRITTEN),
		.ret = PAGE_IS_PRESENT | PAGE_IS_PFNZERO |
		       (anon ? PAGE_IS_SWAPPED | PAGE_IS_FILE
			     : PAGE_IS_WRITTEN),
	};
	struct dirty_walk w = {anon, fn, arg};
	return ufpi_os_pagemap_scan(pagemap_fd, addr, len, &q, dirty_region,
				    &w);
}
