/* SPDX-License-Identifier: MIT */
/*
 * slot.h - floor 3: the slot state machine (slot.c): its states, the
 * transitions, what the handler and prefetch ask and tell, the geometry
 * of the pool's slots. A slot's fields are not here (slot_impl.h).
 */
#ifndef UFPI_SLOT_H
#define UFPI_SLOT_H

#include "image.h"

/* ---- floor 3: slots (slot.c) ------------------------------------------- */

/*
 * A slot's lifecycle (docs/design.md §5 draws it). Every state but LIVE
 * has no memory: the handler poisons its faults.
 */
enum ufpi_slot_state {
	UFPI_SLOT_CLEAN = 0, /* nothing of any memory: no page, no image */
	UFPI_SLOT_KEPT,	     /* what the last memory left that its image's
				next memory may see: kept pages, clean
				page-cache pages, the memfd mapping */
	UFPI_SLOT_LIVE,	     /* a memory: faults are filled from `image` */
	UFPI_SLOT_PURGING,   /* a purge is releasing its pages */
	UFPI_SLOT_STALE,     /* may hold bytes no memory may see (a reset
				or release failed): wiped before reuse */
};

/* One slot: its fields are lib/slot.c's alone (lib/slot_impl.h, which
 * only slot.c and the white-box tests include). */
struct ufpi_slot;

/* Geometry and shared context the slot and handler layers work with. */
struct ufpi_slots {
	unsigned char *start; /* address of slot 0 */
	size_t slot_bytes;    /* prefix + max_memory_bytes + guard */
	size_t prefix;	      /* prefix_bytes: a header before each base */
	uint64_t max_memory_bytes;
	uint32_t n;
	struct ufpi_slot *slot; /* n slots */
	struct ufpi_counters *ctr;
	const struct ufpi_log *log;
	uint64_t keep_resident_bytes;
	uint64_t keep_budget; /* private bytes a reset restores, at most */
	uint64_t window_min, window_max; /* first window; growth bound */
	uint64_t window_floor;		 /* shrink bound */
	int *uffd; /* uffd of slot i: uffd[i % nuffd]; NULL for
				     backends without userfaultfd */
	unsigned nuffd;
	bool uffd_poison;		/* UFFDIO_POISON available */
	const unsigned char *zero_page; /* zero_len bytes of zeros (never
					   written: zero-page mappings) */
	size_t zero_len;		/* >= window_max, >= a page */
	bool dirty;	     /* pages installed write-protected; reset
				     restores only written pages */
	int pagemap_fd;	     /* /proc/self/pagemap, or -1 */
	int pidfd;	     /* our pidfd when process_madvise accepts
				     MADV_DONTNEED, or -1 */
	ufp_backend backend; /* resolved: UFFD, COW or COPY */
	bool minor;	     /* UFFD minor-fault mode: image ranges map the
				module's memfd, served with UFFDIO_CONTINUE */
	bool anon_scan;	     /* written pages are the anonymous ones of the
				range (minor mode, COW with PAGEMAP_SCAN) */
	bool prefetch;	     /* minor mode: learn and prefetch working sets */
	uint64_t prefetch_max_pages; /* recorded per module, at most */
	struct ufpi_prefetch *pf;    /* n entries: each slot's prefetch state,
				     uffd/prefetch.c's, under the slot lock */
	int wake_efd[UFPI_MAX_HANDLERS]; /* handler k's prefetch doorbell */
};

/*
 * What the slot says its pages come from, asked under its lock
 * (ufpi_slot_source_locked): the page-source seam (uffd/fill.c) installs
 * pages from this alone, and prefetch checks that its work is still for
 * the same memory. Valid while the lock is held.
 */
struct ufpi_page_src {
	int fd;			/* the slot's userfaultfd */
	unsigned char *base;	/* the memory's page 0 */
	struct ufpi_image *img; /* NULL: the memory is zeros (referenced by
				   the slot while its lock is held) */
	uint64_t file_pages;	/* pages [0, file_pages) map img's memfd
				(minor mode): CONTINUE, not COPY */
	uint32_t gen;		/* the memory's: changes as the slot enters and
			 leaves LIVE */
};

/* Slot i: [start, start + prefix) the runtime's header (always
 * read-write), then the memory's base, max_memory_bytes, the guard. */
static inline unsigned char *ufpi_slot_start(const struct ufpi_slots *s,
					     uint32_t i)
{
	return s->start + (size_t)i * s->slot_bytes;
}

static inline unsigned char *ufpi_slot_base(const struct ufpi_slots *s,
					    uint32_t i)
{
	return ufpi_slot_start(s, i) + s->prefix;
}

/* The n slots of s (s->slot, s->n) and their prefetch state; destroy
 * undoes whatever part of create was done. */
int ufpi_slots_create(struct ufpi_slots *s, uint32_t n);
void ufpi_slots_destroy(struct ufpi_slots *s);
/* Slot i's lock: the handler holds it while it serves a fault of the slot
 * (the *_locked calls below); every transition takes it. */
void ufpi_slot_lock(struct ufpi_slots *s, uint32_t i);
void ufpi_slot_unlock(struct ufpi_slots *s, uint32_t i);
/* CLEAN, KEPT or STALE -> LIVE: make slot i ready for a memory of `bytes`
 * backed by img (NULL: zeros), wiping it first if it is STALE, was
 * poisoned, or holds another image. On error it is not LIVE and may hold
 * anything (a wipe may have run, the next image be half mapped): the
 * caller marks it STALE. */
int ufpi_slot_prepare(struct ufpi_slots *s, uint32_t i, struct ufpi_image *img,
		      uint64_t bytes, bool *wiped);
/* The handler's question, slot lock held: a fault at offset `in` of slot
 * i. False when it must not be served (no live memory, or beyond its
 * size: poison it). Else the window to fill, [*start, *end): the slot
 * grows or shrinks it like file readahead, counts it populated and, for a
 * memory learning its working set, records it (uffd/prefetch.c). */
bool ufpi_slot_fault_window_locked(struct ufpi_slots *s, uint32_t i,
				   uint64_t in, uint64_t *start, uint64_t *end);
/* Slot lock held: what slot i's pages come from, now. */
void ufpi_slot_source_locked(const struct ufpi_slots *s, uint32_t i,
			     struct ufpi_page_src *src);
/* The same for the runtime's header before the base (prefix_bytes): zeros,
 * page 0 at the slot's start, whatever the slot's state. */
void ufpi_slot_header_source_locked(const struct ufpi_slots *s, uint32_t i,
				    struct ufpi_page_src *src);
/* Handler thread k, between rounds of faults: one prefetch step for one
 * of its slots (uffd/prefetch.c maps it, the slot counts it populated).
 * *cursor (the thread's, starts at 0) rotates over its slots. True while
 * work remains. */
bool ufpi_slot_prefetch_step(struct ufpi_slots *s, unsigned k,
			     uint32_t *cursor);
/* The handler tells the slot, lock held, that it installed `pages` pages
 * for a fault (0: the window was there already, e.g. a second message for
 * a fault the first one served). A reset that sees pages installed while
 * it ran knows its scan may have missed them. */
void ufpi_slot_filled_locked(struct ufpi_slots *s, uint32_t i, uint64_t pages);
/* The handler tells the slot, lock held, that it poisons a page of it: a
 * marker (UFFDIO_POISON) or, with prot_none, an mprotect(PROT_NONE). The
 * next prepare zaps the marker, or re-applies the protection from scratch. */
void ufpi_slot_poisoned_locked(struct ufpi_slots *s, uint32_t i,
			       bool prot_none);
/* LIVE -> LIVE: grow the memory's accessible size. */
int ufpi_slot_grow(struct ufpi_slots *s, uint32_t i, uint64_t new_bytes);
/* LIVE -> KEPT (or CLEAN when nothing is left mapped; STALE on error):
 * restore and keep what keep_resident_bytes allows, drop the rest. *kept
 * receives the resident bytes kept. */
int ufpi_slot_reset(struct ufpi_slots *s, uint32_t i, uint64_t *kept);
/* CLEAN, KEPT or STALE -> PURGING: a purge takes slot i (the index handed
 * it over, unaffine): *len gets the
 * bytes to release from the slot's start (its header and what was
 * populated), cut in pieces of at most `max`. Returns the pieces (0:
 * nothing populated; call ufpi_slot_purged at once). */
uint64_t ufpi_slot_purge_begin(struct ufpi_slots *s, uint32_t i, size_t max,
			       uint64_t *len);
/* PURGING: one piece was released (err != 0: not even by plain madvise).
 * The last one makes the slot CLEAN (ufpi_slot_purged), or STALE if a
 * piece failed; returns true then. */
bool ufpi_slot_purge_piece_done(struct ufpi_slots *s, uint32_t i, int err);
/* PURGING -> CLEAN (STALE if the memfd mapping cannot be replaced): after
 * a purge released [0, populated_hi), forget the image. */
void ufpi_slot_purged(struct ufpi_slots *s, uint32_t i);
/* Any state but LIVE -> STALE: a purge or prepare could not release the
 * slot's pages: it keeps them and its image reference and is wiped before
 * its next use. Returns the bytes its last reset kept (for the index entry
 * the slot goes back to). */
uint64_t ufpi_slot_mark_stale(struct ufpi_slots *s, uint32_t i);
/* Tests' invariant walk: false when slot i contradicts itself or the
 * index's view of it (read under the slot's lock). A slot the index has
 * allocated may be mid-transition (a prepare fills a CLEAN slot before it
 * publishes LIVE): only what holds whatever a transition is doing is
 * checked for it. */
bool ufpi_slot_check(struct ufpi_slots *s, uint32_t i, const ufp_index *index);

#endif /* UFPI_SLOT_H */
