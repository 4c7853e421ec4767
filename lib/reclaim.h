/* SPDX-License-Identifier: MIT */
/*
 * reclaim.h - floor 4: the MADV_DONTNEED engines (reclaim.c).
 */
#ifndef UFPI_RECLAIM_H
#define UFPI_RECLAIM_H

#include "probe.h"

/* ---- floor 4: reclaim engines (reclaim.c) ------------------------------ */

struct ufpi_range {
	void *addr;
	size_t len;
	uint64_t tag; /* opaque to the engine: the slot index */
};

/* Called once per completed range (after a madvise fallback if it failed),
 * outside every engine lock; err != 0 if the range could not be released
 * at all (its pages may still be there). */
typedef void (*ufpi_reclaim_done_fn)(void *arg, uint64_t tag, size_t len,
				     int err);

struct ufpi_reclaim;
int ufpi_reclaim_create(ufp_reclaim kind, unsigned ring_entries,
			const struct ufpi_features *feat,
			struct ufpi_counters *ctr, const struct ufpi_log *log,
			ufpi_reclaim_done_fn done, void *done_arg,
			struct ufpi_reclaim **out);
void ufpi_reclaim_destroy(struct ufpi_reclaim *r);
ufp_reclaim ufpi_reclaim_kind(const struct ufpi_reclaim *r);
/* The longest range the engine takes: liburing 2.3 truncates
 * IORING_OP_MADVISE lengths to 32 bits (URING: 1 GiB pieces). */
size_t ufpi_reclaim_max_range(const struct ufpi_reclaim *r);
/* eventfd signalled on completions (URING), or -1. */
int ufpi_reclaim_eventfd(const struct ufpi_reclaim *r);
/* Queue ranges; with URING this only submits (done runs later, from
 * ufpi_reclaim_reap); with SYNC/PROCESS_MADVISE done runs before return. */
int ufpi_reclaim_submit(struct ufpi_reclaim *r, const struct ufpi_range *rg,
			size_t n);
/* Reap what has completed; never blocks. Returns ranges completed. */
size_t ufpi_reclaim_reap(struct ufpi_reclaim *r);
/* Ranges submitted and not yet completed. */
size_t ufpi_reclaim_inflight(struct ufpi_reclaim *r);
/* URING whose last submit the kernel refused (or took nothing of): do
 * every range the kernel has not taken with plain madvise here, logged.
 * Returns ranges so done (0 when the engine makes progress). */
size_t ufpi_reclaim_rescue(struct ufpi_reclaim *r);

#endif /* UFPI_RECLAIM_H */
