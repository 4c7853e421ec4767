/* SPDX-License-Identifier: MIT */
/*
 * slot_impl.h - the fields of a slot. Included by lib/slot.c, which alone
 * reads and writes them, and by the white-box tests and benchmark (through
 * internal.h); no other file of the library includes it (tests/layering.sh
 * checks). Everyone else goes through the functions of slot.h.
 */
#ifndef UFPI_SLOT_IMPL_H
#define UFPI_SLOT_IMPL_H

#include "slot.h"

/*
 * One slot. `lock` is taken by the handler while it serves a fault and by
 * every state change, so a fill from module A can never land after the slot
 * was handed to module B. Nobody holds it while touching pool memory.
 */
struct ufpi_slot {
	pthread_mutex_t lock;
	enum ufpi_slot_state state;
	uint32_t gen;		  /* bumped entering and leaving LIVE */
	struct ufpi_image *image; /* referenced while LIVE or populated */
	uint64_t accessible;	  /* LIVE: bytes read-write for the memory */
	uint64_t prot_bytes;	  /* bytes currently PROT_READ|WRITE */
	uint64_t populated_hi;	  /* no page at or above this is present */
	bool poisoned;		  /* a fault was poisoned without a memory */
	bool prot_dirty;	  /* protection unknown: reapply all */
	uint64_t windows;	  /* fault windows that installed pages: a reset
			     that sees this change raced a use of the
			     memory */
	/* fault-around window state (handler only, under lock) */
	uint64_t seq_next;
	uint64_t win;
	uint32_t purge_pending; /* PURGING: reclaim ranges in flight */
	bool purge_failed;	/* one of them could not be released */
	uint64_t kept_bytes;	/* resident bytes kept by the last reset */
	/* runs of written pages the last dirty reset dropped (beyond
	 * keep_resident_bytes): copied back when the slot is next allocated
	 * for the same image, instead of faulting back one by one. Written
	 * by the freeing thread, read by the allocating one: never both at
	 * once; nrefill changes under lock. */
	struct ufpi_run *refill; /* refill_cap entries, malloc'd */
	uint32_t nrefill, refill_cap;
	uint64_t file_len; /* COW, minor mode: [0, file_len) is a private
			      mapping of image->memfd */
};

#endif /* UFPI_SLOT_IMPL_H */
