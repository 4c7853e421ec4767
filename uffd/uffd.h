/* SPDX-License-Identifier: MIT */
/*
 * uffd.h - floor 2: userfaultfd ioctls (uffd.c) and the written-page scan
 * (dirty.c).
 */
#ifndef UFPI_UFFD_H
#define UFPI_UFFD_H

#include "base.h"

/* ---- floor 2: userfaultfd (uffd/uffd.c) --------------------------------- */

int ufpi_uffd_open(uint64_t want_features, int *fd_out, uint64_t *features_out,
		   int *via_dev);
int ufpi_uffd_probe(uint64_t *features, int *via_dev);
#define UFPI_REG_MISSING 1u /* faults on pages not present */
#define UFPI_REG_WP 2u	    /* write-protect faults (WP_ASYNC tracking) */
#define UFPI_REG_MINOR 4u   /* faults on page-cache pages not mapped yet */
int ufpi_uffd_register(int fd, void *addr, size_t len, unsigned mode,
		       uint64_t *ioctls);
/* Each returns 0 when all of len is done, else -errno with *done set to the
 * bytes completed before the error (EEXIST, EAGAIN, ...). */
int ufpi_uffd_copy(int fd, void *dst, const void *src, size_t len, bool wp,
		   size_t *done);
int ufpi_uffd_zeropage(int fd, void *dst, size_t len, size_t *done);
/* Map the page-cache pages behind [dst, dst+len) (a minor fault range). */
int ufpi_uffd_continue(int fd, void *dst, size_t len, size_t *done);
int ufpi_uffd_poison(int fd, void *dst, size_t len);
int ufpi_uffd_wake(int fd, void *addr, size_t len);
int ufpi_uffd_writeprotect(int fd, void *addr, size_t len, bool wp);

/* ---- floor 2: written-page tracking (uffd/dirty.c) --------------------- */

#define UFPI_PG_PRESENT 1u /* mapped (the shared zero page included) */
#define UFPI_PG_WRITTEN \
	2u		/* written since install or re-protect, not the
			      zero page; or never populated */
#define UFPI_PG_ZERO 4u /* the shared zero page */
#define UFPI_PG_FILE 8u /* a page-cache page (anon scans only) */
/* Called for each run of pages with equal flags; non-zero stops the walk. */
typedef int (*ufpi_dirty_fn)(void *arg, void *addr, size_t len, unsigned flags);
/* Walk [addr, addr+len) with PAGEMAP_SCAN, reporting every run of pages
 * that are present or written, until the whole range is covered. Written
 * means written since write protection (anon false) or anonymous in a
 * copy-on-write file mapping, or swapped out (anon true). */
int ufpi_dirty_scan(int pagemap_fd, void *addr, size_t len, bool anon,
		    ufpi_dirty_fn fn, void *arg);

#endif /* UFPI_UFFD_H */
