/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - written-page tracking with UFFD_FEATURE_WP_ASYNC and the
 * PAGEMAP_SCAN ioctl (both Linux 6.7).
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
#include <sys/ioctl.h>

#include "internal.h"
#include "kernel_uapi.h"

int ufpi_dirty_scan(int pagemap_fd, void *addr, size_t len, ufpi_dirty_fn fn,
		    void *arg)
{
	struct page_region regs[128];
	uint64_t start = (uint64_t)(uintptr_t)addr, end = start + len;
	int saved = errno;

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)regs,
			.vec_len = sizeof(regs) / sizeof(regs[0]),
			/* every page that is present or written */
			.category_anyof_mask =
				PAGE_IS_PRESENT | PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_PRESENT | PAGE_IS_WRITTEN |
				       PAGE_IS_PFNZERO,
		};
		int n = ioctl(pagemap_fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			int err = -errno;
			errno = saved;
			return err;
		}
		for (int k = 0; k < n; k++) {
			unsigned flags = 0;
			uint64_t c = regs[k].categories;
			if (c & PAGE_IS_PRESENT)
				flags |= UFPI_PG_PRESENT;
			if ((c & PAGE_IS_WRITTEN) && !(c & PAGE_IS_PFNZERO))
				flags |= UFPI_PG_WRITTEN;
			if (c & PAGE_IS_PFNZERO)
				flags |= UFPI_PG_ZERO;
			int err = fn(arg, (void *)(uintptr_t)regs[k].start,
				     regs[k].end - regs[k].start, flags);
			if (err)
				return err;
		}
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return 0;
}
