/* SPDX-License-Identifier: MIT */
/*
 * uffdpool/index.h - the slot index allocator, usable on its own.
 *
 * Pure bookkeeping: which slot of a pool of `capacity` slots is used, which
 * is free, and which module (a non-zero 64-bit *key*) each free slot is
 * *affine* to. It knows nothing about memory, so runtimes that manage their
 * own address space can use it alone. Semantics: docs/design.md, "Slot index
 * allocator".
 *
 * Every function is thread-safe (one mutex per allocator) unless it says
 * otherwise, returns 0 or a negative errno and leaves errno untouched.
 * Key 0 means "no module".
 */
#ifndef UFFDPOOL_INDEX_H
#define UFFDPOOL_INDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef UFP_API
#define UFP_API __attribute__((visibility("default")))
#endif
#ifndef UFP_WUR
#define UFP_WUR __attribute__((warn_unused_result))
#endif

/* How a free slot is chosen. Affinity is tracked under every strategy. */
typedef enum ufp_strategy {
	/* Most recently freed slot first; a fresh allocator hands out
	 * n-1, n-2, ..., 0. Ignores affinity when choosing. */
	UFP_STRATEGY_NEXT_AVAILABLE = 0,
	/* A uniformly random free slot (seeded, reproducible). */
	UFP_STRATEGY_RANDOM = 1,
	/* Most recently freed slot affine to the key, else a random free slot. */
	UFP_STRATEGY_REUSE_AFFINITY = 2,
	/* Cold slots 0,1,2,... and an LRU list of warm slots; see docs. */
	UFP_STRATEGY_WARM_LRU = 3,
} ufp_strategy;

/* A slot index: 0 .. capacity-1. */
typedef uint32_t ufp_slot_index;

/* Largest capacity an allocator can hold; more is -EINVAL. */
#define UFP_INDEX_MAX_CAPACITY (UINT32_C(1) << 30)

typedef struct ufp_index ufp_index;

/*
 * Create an allocator of `capacity` slots, all free, cold and unaffine.
 * capacity 0 is valid (every alloc returns -EAGAIN). `max_unused_warm_slots`
 * matters only for WARM_LRU; `seed` for RANDOM and REUSE_AFFINITY (the same
 * seed gives the same sequence).
 * Returns 0, -EINVAL (out NULL, unknown strategy, capacity above
 * UFP_INDEX_MAX_CAPACITY), -ENOMEM.
 */
UFP_API UFP_WUR int ufp_index_create(uint32_t capacity, ufp_strategy strategy,
				     uint32_t max_unused_warm_slots,
				     uint64_t seed, ufp_index **out);

/* Free the allocator (NULL is a no-op). Not thread-safe against other
 * calls on the same allocator. */
UFP_API void ufp_index_destroy(ufp_index *idx);

/*
 * Take a free slot for `key` (0: no module) according to the strategy and
 * mark it used. If the slot was affine to another key, that affinity is
 * evicted; `*prev_key` (may be NULL) receives the key the slot was affine to
 * (0 if none, `key` itself on an affinity hit).
 * Returns 0, -EAGAIN (no free slot), -EINVAL (idx or slot NULL).
 */
UFP_API UFP_WUR int ufp_index_alloc(ufp_index *idx, uint64_t key,
				    ufp_slot_index *slot, uint64_t *prev_key);

/*
 * Return a used slot. It becomes free, warm, and affine to the key it was
 * allocated for (none if it was allocated with key 0 or through
 * ufp_index_alloc_affine_and_clear_affinity). `bytes_resident` is what the
 * slot keeps resident while unused (accounted in
 * ufp_index_unused_bytes_resident).
 * Returns 0, -EINVAL (NULL, slot out of range, or slot not in use: a caller
 * bug, which also trips an assertion in debug builds).
 */
UFP_API UFP_WUR int ufp_index_free(ufp_index *idx, ufp_slot_index slot,
				   uint64_t bytes_resident);

/*
 * Like ufp_index_free, but the slot becomes affine to `key` (0: none)
 * whatever it was allocated for: for a caller that could not use the slot
 * and must leave it to the module whose pages it still holds.
 * Returns 0, -EINVAL (as ufp_index_free).
 */
UFP_API UFP_WUR int ufp_index_free_affine(ufp_index *idx, ufp_slot_index slot,
					  uint64_t key,
					  uint64_t bytes_resident);

/*
 * Take a free slot affine to `key` (most recently freed first) and mark it
 * used with no key, so that freeing it leaves it unaffine. Never returns a
 * cold slot or a slot affine to another key. Works under every strategy.
 * This is what a purge iterates with. `*bytes_resident` (may be NULL)
 * receives what the slot was freed with.
 * Returns 0, -ENOENT (no free slot affine to key; also for key 0),
 * -EINVAL (NULL).
 */
UFP_API UFP_WUR int
ufp_index_alloc_affine_and_clear_affinity(ufp_index *idx, uint64_t key,
					  ufp_slot_index *slot,
					  uint64_t *bytes_resident);

/*
 * Take the least recently freed warm slot that has bytes resident (any
 * affinity, or none), mark it used with no key. Used to evict idle memory.
 * Returns 0, -ENOENT (no such slot), -EINVAL (NULL).
 */
UFP_API UFP_WUR int ufp_index_alloc_lru_resident(ufp_index *idx,
						 ufp_slot_index *slot,
						 uint64_t *prev_key,
						 uint64_t *bytes_resident);

/* Introspection (thread-safe snapshots). NULL idx gives 0. */
UFP_API uint32_t ufp_index_capacity(const ufp_index *idx);
UFP_API uint32_t ufp_index_num_free(const ufp_index *idx);
/* Free slots that have been used at least once (warm), any affinity. */
UFP_API uint32_t ufp_index_num_warm(const ufp_index *idx);
/* Free slots freed with bytes_resident > 0. */
UFP_API uint32_t ufp_index_num_resident(const ufp_index *idx);
/* Sum of bytes_resident over free slots. */
UFP_API uint64_t ufp_index_unused_bytes_resident(const ufp_index *idx);
/* Number of free slots affine to `key`. */
UFP_API uint32_t ufp_index_num_affine(const ufp_index *idx, uint64_t key);
/* Affinity of a slot: the key a free slot is affine to, the key a used slot
 * was allocated for; 0 for none or out of range. */
UFP_API uint64_t ufp_index_slot_key(const ufp_index *idx, ufp_slot_index slot);
/* 1 if the slot is in use, 0 if free or out of range. */
UFP_API int ufp_index_slot_in_use(const ufp_index *idx, ufp_slot_index slot);

/*
 * Copy the distinct keys that have at least one free affine slot into
 * keys[0..cap), in no particular order. Returns how many keys exist (may be
 * more than cap; only cap are written). keys may be NULL when cap is 0.
 */
UFP_API size_t ufp_index_affine_keys(const ufp_index *idx, uint64_t *keys,
				     size_t cap);

/*
 * Copy the free slots in the order the strategy would hand them out to a
 * request with key 0 (for RANDOM and REUSE_AFFINITY: the internal free
 * array order, from which random picks are made). Returns the number of free
 * slots (only cap are written).
 */
UFP_API size_t ufp_index_free_list(const ufp_index *idx, ufp_slot_index *out,
				   size_t cap);

/*
 * Walk every internal structure and check its invariants. Returns 0 or
 * -EUCLEAN (corruption found). For tests; O(capacity).
 */
UFP_API int ufp_index_check(const ufp_index *idx);

#ifdef __cplusplus
}
#endif
#endif /* UFFDPOOL_INDEX_H */
