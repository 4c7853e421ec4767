/* SPDX-License-Identifier: MIT */
/*
 * fill.h - floor 3: how pages reach a slot (fill.c) and the working-set
 * prefetch (prefetch.c), for the slot layer and the handler.
 */
#ifndef UFPI_FILL_H
#define UFPI_FILL_H

#include "slot.h"

/* ---- floor 3: page sources (uffd/fill.c) -------------------------------- */

/* Fill pages [p, q) of the memory src describes (its slot's lock held)
 * from its image through its uffd: CONTINUE where the slot maps the image's memfd,
 * COPY elsewhere, ZEROPAGE where the image has no data. EEXIST and EAGAIN
 * are normal (unless UFPI_FILL_PATIENT, two present pages in a row end a run:
 * the rest is left to fault); other errors do not stop it. Returns 0 or the first
 * unexpected -errno, with *stop at the first page it left empty. Adds the
 * pages it filled to *filled (may be NULL). Wakes nobody. */
#define UFPI_FILL_PATIENT 1u /* step over every present page */
#define UFPI_FILL_WRITE \
	2u /* for a write: pages without data become
				private zero pages at once (UFFDIO_COPY),
				not the zero page a write copies again */
#define UFPI_FILL_REFILL \
	4u /* pages the memory is expected to write
				(slot.c's refill): private and writable,
				data and zeros alike; counted as
				pages_refilled */
int ufpi_fill_pages(struct ufpi_slots *s, const struct ufpi_page_src *src,
		    uint64_t p, uint64_t q, unsigned flags,
		    unsigned char **stop, uint64_t *filled);
/* End of the run from page p (< endp) that one fill ioctl covers. */
uint64_t ufpi_fill_run_end(const struct ufpi_page_src *src, uint64_t p,
			   uint64_t endp);

/* ---- floor 3: working-set prefetch (uffd/prefetch.c) ------------------- */

/* Each slot's prefetch state (s->pf), freed by ufpi_prefetch_destroy. */
int ufpi_prefetch_create(struct ufpi_slots *s);
void ufpi_prefetch_destroy(struct ufpi_slots *s);
/*
 * Called by the slot layer alone (lib/slot.c), slot i's lock held, with
 * what the slot says of its pages (ufpi_slot_source_locked): prefetch
 * calls nothing of the slot layer. *hi receives the end (bytes from the
 * base) of the pages it mapped: the slot raises populated_hi to it before
 * it unlocks.
 */
/* Slot i just became LIVE after a cold prepare (its image mapping is new):
 * start learning or prefetching (the first step is mapped here). True when
 * the handler thread of the slot must be woken for the rest. */
bool ufpi_prefetch_begin_locked(struct ufpi_slots *s, uint32_t i,
				const struct ufpi_page_src *src, uint64_t *hi);
/* Whether slot i's memory records its working set (its fault windows then
 * shrink down to one page). */
bool ufpi_prefetch_learning_locked(const struct ufpi_slots *s, uint32_t i);
/* Pages [p, q) of img were handed out for a fault. */
void ufpi_prefetch_note_locked(struct ufpi_slots *s, uint32_t i,
			       const struct ufpi_image *img, uint64_t p,
			       uint64_t q);
/* The memory ends (reset, still LIVE): learning publishes img's set, a
 * prefetch stops. */
void ufpi_prefetch_end_locked(struct ufpi_slots *s, uint32_t i,
			      struct ufpi_image *img);
/* Map the next chunk of slot i's set if the work is still for the memory
 * src describes. True while work remains. */
bool ufpi_prefetch_chunk_locked(struct ufpi_slots *s, uint32_t i,
				const struct ufpi_page_src *src, uint64_t *hi);
/* Whether slot i has prefetch work left (read without the lock). */
bool ufpi_prefetch_pending(const struct ufpi_slots *s, uint32_t i);
/* Tests, slot lock held: send the prefetch of slot i's memory (generation
 * gen) over its whole set again (the doorbell is the caller's). False
 * when the memory is not a prefetched one. */
bool ufpi_prefetch_rewind_locked(struct ufpi_slots *s, uint32_t i,
				 uint32_t gen);

#endif /* UFPI_FILL_H */
