/* SPDX-License-Identifier: MIT */
/*
 * index.c - the slot index allocator (docs/design.md, "Slot index
 * allocator"): which slot is used, which is free, and which module (key)
 * each free slot is affine to. Every operation is O(1) expected, under one
 * mutex.
 *
 * Per slot: a state (USED, or free and COLD = never used, or free and WARM =
 * freed at least once), a key (used: the key it was allocated for; free: the
 * key it is affine to; 0 = none), the bytes it was freed with, and three
 * list links. Invariants, all checked by ufp_index_check():
 *
 *  - A free slot with key K != 0 is on K's affinity list (most recently
 *    freed at the head). Exactly the keys with a non-empty list are in the
 *    key table, whose entry holds the head and the length. Cold slots are
 *    unaffine and have no bytes.
 *  - A free slot with bytes > 0 is on the resident list (most recently freed
 *    at the head, least recently at the tail) and its bytes are counted in
 *    unused_bytes. A used slot has bytes == 0 and sits on no list.
 *  - The strategy's own structure holds the free slots it chooses from:
 *      NEXT_AVAILABLE: the order list holds every free slot, most recently
 *        freed at the head; a fresh allocator's list is n-1, ..., 0.
 *      RANDOM, REUSE_AFFINITY: the dense array free_arr[0..nfree) holds
 *        every free slot, and slot.pos is its position there, so a uniform
 *        pick and the removal of any slot (swap with the last) are O(1).
 *      WARM_LRU: cold slots are exactly [cold_next, n), since they only
 *        leave in increasing order; the order list holds the warm slots,
 *        most recently freed at the head, LRU at the tail.
 *
 * Slot indices and list positions are both uint32_t here; to keep them
 * apart, links and heads are always ufp_slot_index and free_arr positions
 * are plain uint32_t named pos (mixing the two corrupted Wasmtime's
 * allocator once).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "uffdpool/index.h"

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* No slot: capacity is at most 2^30, so UINT32_MAX is never a slot. */
#define NIL UINT32_MAX

enum slot_state {
	S_USED = 0,
	S_COLD = 1,
	S_WARM = 2,
};

/* Which of a slot's links a list runs through. */
enum { L_AFF = 0, L_ORD = 1, L_RES = 2, L_NUM };

struct link {
	ufp_slot_index prev, next;
};

struct list {
	ufp_slot_index head, tail;
};

struct slot {
	uint64_t key;
	uint64_t bytes;
	struct link l[L_NUM];
	uint32_t pos; /* RANDOM, REUSE_AFFINITY: position in free_arr */
	uint8_t state;
};

/* Key table entry: open addressing, key 0 marks an empty bucket. */
struct kent {
	uint64_t key;
	ufp_slot_index head; /* most recently freed slot affine to key */
	uint32_t count;
};

__extension__ typedef unsigned __int128 u128;

struct ufp_index {
	pthread_mutex_t lock;
	ufp_strategy strategy;
	uint32_t n;
	uint32_t max_warm;
	uint32_t nfree;
	uint32_t nwarm;
	uint32_t cold_next; /* WARM_LRU */
	uint64_t unused_bytes;
	uint32_t nres; /* free slots with bytes resident (the res list) */
	uint64_t rng;
	struct slot *slots;
	uint32_t *free_arr; /* RANDOM, REUSE_AFFINITY */
	struct list ord;
	struct list res;
	struct kent *keys;
	size_t kmask;
	uint32_t nkeys;
};

/* ---- small helpers ------------------------------------------------------ */

/* splitmix64: tiny state, good enough statistics for picking slots, and
 * trivially reproducible from the seed. */
static inline uint64_t rng_next(struct ufp_index *x)
{
	uint64_t z = (x->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) by multiply-shift: no division, and the bias of a 64-bit
 * draw is below n / 2^64 (n <= 2^30), far below anything measurable. */
static inline uint32_t rng_below(struct ufp_index *x, uint32_t n)
{
	return (uint32_t)(((u128)rng_next(x) * n) >> 64);
}

/* Keys are often pointers or small counters: mix all bits before masking. */
static inline size_t key_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

static inline void lock(const struct ufp_index *x)
{
	/* The mutex is the only thing a const (read-only) call modifies; the
	 * allocator itself is always heap-allocated and never const. */
	pthread_mutex_lock((pthread_mutex_t *)&x->lock);
}

static inline void unlock(const struct ufp_index *x)
{
	pthread_mutex_unlock((pthread_mutex_t *)&x->lock);
}

static inline struct link *lk(struct ufp_index *x, ufp_slot_index i, int w)
{
	return &x->slots[i].l[w];
}

/* ---- lists through one of a slot's links ------------------------------- */

/* The order and resident lists keep a head and a tail; the affinity lists
 * keep only a head (tail NULL). */
static inline void link_head(struct ufp_index *x, int w, ufp_slot_index i,
			     ufp_slot_index *head, ufp_slot_index *tail)
{
	struct link *e = lk(x, i, w);

	e->prev = NIL;
	e->next = *head;
	if (*head != NIL)
		lk(x, *head, w)->prev = i;
	else if (tail)
		*tail = i;
	*head = i;
}

static inline void unlink_slot(struct ufp_index *x, int w, ufp_slot_index i,
			       ufp_slot_index *head, ufp_slot_index *tail)
{
	struct link *e = lk(x, i, w);

	if (e->prev != NIL)
		lk(x, e->prev, w)->next = e->next;
	else
		*head = e->next;
	if (e->next != NIL)
		lk(x, e->next, w)->prev = e->prev;
	else if (tail)
		*tail = e->prev;
}

static inline void list_push_head(struct ufp_index *x, struct list *li, int w,
				  ufp_slot_index i)
{
	link_head(x, w, i, &li->head, &li->tail);
}

static inline void list_del(struct ufp_index *x, struct list *li, int w,
			    ufp_slot_index i)
{
	unlink_slot(x, w, i, &li->head, &li->tail);
}

/* ---- key table ---------------------------------------------------------- */

static inline struct kent *kt_find(struct ufp_index *x, uint64_t key)
{
	size_t h = key_hash(key) & x->kmask;

	for (;;) {
		struct kent *e = &x->keys[h];
		if (e->key == key)
			return e;
		if (!e->key)
			return NULL;
		h = (h + 1) & x->kmask;
	}
}

/* The table has at least 2 * capacity buckets and a key needs a free slot
 * affine to it to be present, so it is never more than half full: inserting
 * cannot fail and probe sequences stay short. */
static inline struct kent *kt_insert(struct ufp_index *x, uint64_t key)
{
	size_t h = key_hash(key) & x->kmask;

	while (x->keys[h].key)
		h = (h + 1) & x->kmask;
	x->keys[h].key = key;
	x->keys[h].head = NIL;
	x->keys[h].count = 0;
	x->nkeys++;
	return &x->keys[h];
}

/* Backward-shift deletion: keeps every remaining key reachable from its home
 * bucket without tombstones, so lookups never slow down over time. */
static void kt_remove(struct ufp_index *x, struct kent *e)
{
	size_t hole = (size_t)(e - x->keys), j = hole;

	for (;;) {
		j = (j + 1) & x->kmask;
		if (!x->keys[j].key)
			break;
		size_t home = key_hash(x->keys[j].key) & x->kmask;
		/* Move j into the hole unless its home lies cyclically in
		 * (hole, j], where it would become unreachable. */
		if (((j - home) & x->kmask) >= ((j - hole) & x->kmask)) {
			x->keys[hole] = x->keys[j];
			hole = j;
		}
	}
	x->keys[hole].key = 0;
	x->nkeys--;
}

/* ---- affinity lists (head only: we take the most recent or any slot) --- */

static inline void aff_push(struct ufp_index *x, uint64_t key, ufp_slot_index i)
{
	struct kent *e = kt_find(x, key);

	if (!e)
		e = kt_insert(x, key);
	link_head(x, L_AFF, i, &e->head, NULL);
	e->count++;
}

/* e: the entry of the slot's key if the caller already looked it up. */
static inline void aff_del(struct ufp_index *x, struct kent *e,
			   ufp_slot_index i)
{
	if (!e)
		e = kt_find(x, x->slots[i].key);
	assert(e && e->count > 0);
	unlink_slot(x, L_AFF, i, &e->head, NULL);
	if (--e->count == 0)
		kt_remove(x, e);
}

/* ---- taking and returning slots ----------------------------------------- */

static inline void arr_del(struct ufp_index *x, ufp_slot_index i)
{
	uint32_t pos = x->slots[i].pos;
	ufp_slot_index last = x->free_arr[x->nfree - 1];

	x->free_arr[pos] = last;
	x->slots[last].pos = pos;
}

/*
 * Remove free slot i from every free structure and mark it used with no key.
 * Returns the key it was affine to, whose affinity is hereby evicted.
 * e: the key table entry of that key if the caller has it, else NULL.
 */
static inline uint64_t take(struct ufp_index *x, ufp_slot_index i,
			    struct kent *e)
{
	struct slot *s = &x->slots[i];
	uint64_t prev = s->key;

	assert(i < x->n && s->state != S_USED);
	if (prev)
		aff_del(x, e, i);
	if (s->bytes) {
		list_del(x, &x->res, L_RES, i);
		x->unused_bytes -= s->bytes;
		x->nres--;
	}
	switch (x->strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
		list_del(x, &x->ord, L_ORD, i);
		break;
	case UFP_STRATEGY_RANDOM:
	case UFP_STRATEGY_REUSE_AFFINITY:
		arr_del(x, i);
		break;
	case UFP_STRATEGY_WARM_LRU:
		if (s->state == S_WARM) {
			list_del(x, &x->ord, L_ORD, i);
		} else {
			assert(i == x->cold_next);
			x->cold_next++;
		}
		break;
	}
	if (s->state == S_WARM)
		x->nwarm--;
	x->nfree--;
	s->state = S_USED;
	s->key = 0;
	s->bytes = 0;
	return prev;
}

/* Which free slot an alloc(key) takes; nfree > 0. *ep: key's entry, if
 * looked up and found. */
static inline ufp_slot_index pick(struct ufp_index *x, uint64_t key,
				  struct kent **ep)
{
	struct kent *e = NULL;

	switch (x->strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
		return x->ord.head;
	case UFP_STRATEGY_RANDOM:
		return x->free_arr[rng_below(x, x->nfree)];
	case UFP_STRATEGY_REUSE_AFFINITY:
		if (key && (e = kt_find(x, key))) {
			*ep = e;
			return e->head;
		}
		return x->free_arr[rng_below(x, x->nfree)];
	case UFP_STRATEGY_WARM_LRU:
		if (key && (e = kt_find(x, key))) {
			*ep = e;
			return e->head;
		}
		/* max_unused_warm_slots only orders the preference: below it,
		 * keep warm slots around for their modules and use cold ones;
		 * at or above it, recycle the least recently used warm slot. */
		if (x->nwarm < x->max_warm)
			return x->cold_next < x->n ? x->cold_next : x->ord.tail;
		return x->ord.tail != NIL ? x->ord.tail : x->cold_next;
	}
	return NIL;
}

/* ---- public API ---------------------------------------------------------- */

static size_t table_size(uint32_t capacity)
{
	size_t sz = 16;

	while (sz < 2 * (size_t)capacity)
		sz <<= 1;
	return sz;
}

/* Every slot cold, on no list; the strategy's fresh order. */
static void init_slots(struct ufp_index *x)
{
	x->ord.head = x->ord.tail = NIL;
	x->res.head = x->res.tail = NIL;
	for (uint32_t i = 0; i < x->n; i++) {
		struct slot *s = &x->slots[i];
		s->state = S_COLD;
		for (int w = 0; w < L_NUM; w++)
			s->l[w].prev = s->l[w].next = NIL;
		if (x->free_arr) {
			x->free_arr[i] = i;
			s->pos = i;
		}
	}
	/* Fresh NEXT_AVAILABLE order is n-1, n-2, ..., 0: as if the slots had
	 * been freed in increasing order. */
	if (x->strategy == UFP_STRATEGY_NEXT_AVAILABLE)
		for (uint32_t i = 0; i < x->n; i++)
			list_push_head(x, &x->ord, L_ORD, i);
}

UFP_API int ufp_index_create(uint32_t capacity, ufp_strategy strategy,
			     uint32_t max_unused_warm_slots, uint64_t seed,
			     ufp_index **out)
{
	struct ufp_index *x;
	size_t ksz = table_size(capacity);

	if (!out || capacity > UFP_INDEX_MAX_CAPACITY)
		return -EINVAL;
	switch (strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
	case UFP_STRATEGY_RANDOM:
	case UFP_STRATEGY_REUSE_AFFINITY:
	case UFP_STRATEGY_WARM_LRU:
		break;
	default:
		return -EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	/* +1 so that capacity 0 needs no special case (calloc(0) may return
	 * NULL). calloc: large tables come as untouched zero pages. */
	x->slots = calloc((size_t)capacity + 1, sizeof(*x->slots));
	x->keys = calloc(ksz, sizeof(*x->keys));
	if (strategy == UFP_STRATEGY_RANDOM ||
	    strategy == UFP_STRATEGY_REUSE_AFFINITY)
		x->free_arr =
			calloc((size_t)capacity + 1, sizeof(*x->free_arr));
	if (!x->slots || !x->keys ||
	    ((strategy == UFP_STRATEGY_RANDOM ||
	      strategy == UFP_STRATEGY_REUSE_AFFINITY) &&
	     !x->free_arr) ||
	    pthread_mutex_init(&x->lock, NULL)) {
		free(x->slots);
		free(x->keys);
		free(x->free_arr);
		free(x);
		return -ENOMEM;
	}
	x->strategy = strategy;
	x->n = capacity;
	x->max_warm = max_unused_warm_slots;
	x->nfree = capacity;
	x->rng = seed;
	x->kmask = ksz - 1;
	init_slots(x);
	*out = x;
	return 0;
}

UFP_API void ufp_index_destroy(ufp_index *x)
{
	if (!x)
		return;
	pthread_mutex_destroy(&x->lock);
	free(x->slots);
	free(x->keys);
	free(x->free_arr);
	free(x);
}

UFP_API int ufp_index_alloc(ufp_index *x, uint64_t key, ufp_slot_index *slot,
			    uint64_t *prev_key)
{
	struct kent *e = NULL;
	ufp_slot_index i;
	uint64_t prev;

	if (unlikely(!x || !slot))
		return -EINVAL;
	lock(x);
	if (unlikely(!x->nfree)) {
		unlock(x);
		return -EAGAIN;
	}
	i = pick(x, key, &e);
	prev = take(x, i, e);
	x->slots[i].key = key;
	unlock(x);
	*slot = i;
	if (prev_key)
		*prev_key = prev;
	return 0;
}

static int free_slot(ufp_index *x, ufp_slot_index i, uint64_t bytes_resident,
		     bool set_key, uint64_t key)
{
	struct slot *s;

	if (unlikely(!x))
		return -EINVAL;
	lock(x);
	if (unlikely(i >= x->n || x->slots[i].state != S_USED)) {
		unlock(x);
		/* A double free or a stray index: the caller's bookkeeping is
		 * already wrong, so stop at the first sign in debug builds. */
		assert(!"ufp_index_free: slot out of range or not in use");
		return -EINVAL;
	}
	s = &x->slots[i];
	if (set_key)
		s->key = key;
	s->state = S_WARM;
	s->bytes = bytes_resident;
	x->nwarm++;
	x->nfree++;
	if (s->key)
		aff_push(x, s->key, i);
	if (bytes_resident) {
		list_push_head(x, &x->res, L_RES, i);
		x->unused_bytes += bytes_resident;
		x->nres++;
	}
	switch (x->strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
	case UFP_STRATEGY_WARM_LRU:
		list_push_head(x, &x->ord, L_ORD, i);
		break;
	case UFP_STRATEGY_RANDOM:
	case UFP_STRATEGY_REUSE_AFFINITY:
		s->pos = x->nfree - 1;
		x->free_arr[s->pos] = i;
		break;
	}
	unlock(x);
	return 0;
}

UFP_API int ufp_index_free(ufp_index *x, ufp_slot_index i,
			   uint64_t bytes_resident)
{
	return free_slot(x, i, bytes_resident, false, 0);
}

UFP_API int ufp_index_free_affine(ufp_index *x, ufp_slot_index i, uint64_t key,
				  uint64_t bytes_resident)
{
	return free_slot(x, i, bytes_resident, true, key);
}

UFP_API int ufp_index_alloc_affine_and_clear_affinity(ufp_index *x,
						      uint64_t key,
						      ufp_slot_index *slot,
						      uint64_t *bytes_resident)
{
	struct kent *e;
	ufp_slot_index i;
	uint64_t bytes;

	if (unlikely(!x || !slot))
		return -EINVAL;
	if (!key)
		return -ENOENT;
	lock(x);
	e = kt_find(x, key);
	if (!e) {
		unlock(x);
		return -ENOENT;
	}
	i = e->head;
	bytes = x->slots[i].bytes;
	/* take() leaves the key 0: freeing the slot will not re-attach it to
	 * the module being purged, which is what ends a purge loop. */
	take(x, i, e);
	unlock(x);
	*slot = i;
	if (bytes_resident)
		*bytes_resident = bytes;
	return 0;
}

UFP_API int ufp_index_alloc_lru_resident(ufp_index *x, ufp_slot_index *slot,
					 uint64_t *prev_key,
					 uint64_t *bytes_resident)
{
	ufp_slot_index i;
	uint64_t bytes, prev;

	if (unlikely(!x || !slot))
		return -EINVAL;
	lock(x);
	i = x->res.tail;
	if (i == NIL) {
		unlock(x);
		return -ENOENT;
	}
	bytes = x->slots[i].bytes;
	prev = take(x, i, NULL);
	unlock(x);
	*slot = i;
	if (prev_key)
		*prev_key = prev;
	if (bytes_resident)
		*bytes_resident = bytes;
	return 0;
}

/* ---- introspection ------------------------------------------------------- */

UFP_API uint32_t ufp_index_capacity(const ufp_index *x)
{
	/* Immutable after creation: no lock needed. */
	return x ? x->n : 0;
}

/* The counters, read together under the lock (all 0 without an allocator). */
struct counts {
	uint32_t nfree, nwarm, nres;
	uint64_t unused_bytes;
};

static struct counts counts(const struct ufp_index *x)
{
	struct counts c = {0, 0, 0, 0};

	if (!x)
		return c;
	lock(x);
	c.nfree = x->nfree;
	c.nwarm = x->nwarm;
	c.nres = x->nres;
	c.unused_bytes = x->unused_bytes;
	unlock(x);
	return c;
}

UFP_API uint32_t ufp_index_num_free(const ufp_index *x)
{
	return counts(x).nfree;
}

UFP_API uint32_t ufp_index_num_warm(const ufp_index *x)
{
	return counts(x).nwarm;
}

UFP_API uint32_t ufp_index_num_resident(const ufp_index *x)
{
	return counts(x).nres;
}

UFP_API uint64_t ufp_index_unused_bytes_resident(const ufp_index *x)
{
	return counts(x).unused_bytes;
}

UFP_API uint32_t ufp_index_num_affine(const ufp_index *cx, uint64_t key)
{
	struct ufp_index *x = (struct ufp_index *)cx;
	struct kent *e;
	uint32_t v;

	if (!x || !key)
		return 0;
	lock(x);
	e = kt_find(x, key);
	v = e ? e->count : 0;
	unlock(x);
	return v;
}

/* A copy of slot i taken under the lock; false if there is no slot i. */
static bool read_slot(const struct ufp_index *x, ufp_slot_index i,
		      struct slot *out)
{
	if (!x || i >= x->n)
		return false;
	lock(x);
	*out = x->slots[i];
	unlock(x);
	return true;
}

UFP_API uint64_t ufp_index_slot_key(const ufp_index *x, ufp_slot_index i)
{
	struct slot s;

	return read_slot(x, i, &s) ? s.key : 0;
}

UFP_API int ufp_index_slot_in_use(const ufp_index *x, ufp_slot_index i)
{
	struct slot s;

	return read_slot(x, i, &s) && s.state == S_USED;
}

UFP_API size_t ufp_index_affine_keys(const ufp_index *x, uint64_t *keys,
				     size_t cap)
{
	size_t k = 0;

	if (!x)
		return 0;
	if (!keys)
		cap = 0;
	lock(x);
	for (size_t h = 0; h <= x->kmask; h++) {
		if (!x->keys[h].key)
			continue;
		if (k < cap)
			keys[k] = x->keys[h].key;
		k++;
	}
	unlock(x);
	return k;
}

UFP_API size_t ufp_index_free_list(const ufp_index *cx, ufp_slot_index *out,
				   size_t cap)
{
	struct ufp_index *x = (struct ufp_index *)cx;
	size_t k = 0, nfree;

	if (!x)
		return 0;
	if (!out)
		cap = 0;
	lock(x);
	nfree = x->nfree;
	switch (x->strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
		for (ufp_slot_index i = x->ord.head; i != NIL && k < cap;
		     i = x->slots[i].l[L_ORD].next)
			out[k++] = i;
		break;
	case UFP_STRATEGY_RANDOM:
	case UFP_STRATEGY_REUSE_AFFINITY:
		k = nfree < cap ? nfree : cap;
		if (k)
			memcpy(out, x->free_arr, k * sizeof(*out));
		break;
	case UFP_STRATEGY_WARM_LRU: {
		/* Replay alloc(0) without changing anything. From w warm
		 * slots at or above the threshold m, LRU warm slots are taken
		 * until w drops below m (w - m + 1 of them, all w when m is
		 * 0), then the cold slots in increasing order, then the rest
		 * of the warm slots, LRU first. */
		uint32_t w = x->nwarm, m = x->max_warm, first = 0;
		ufp_slot_index i = x->ord.tail;

		if (w >= m)
			first = m ? w - m + 1 : w;
		for (; first && i != NIL && k < cap; first--) {
			out[k++] = i;
			i = x->slots[i].l[L_ORD].prev;
		}
		for (uint32_t c = x->cold_next; c < x->n && k < cap; c++)
			out[k++] = c;
		for (; i != NIL && k < cap; i = x->slots[i].l[L_ORD].prev)
			out[k++] = i;
		break;
	}
	}
	unlock(x);
	return nfree;
}

/* ---- invariant walker ---------------------------------------------------- */

#define CHECK(cond)                    \
	do {                           \
		if (unlikely(!(cond))) \
			goto corrupt;  \
	} while (0)

/*
 * Walk a list from its head, at most `limit` steps, checking back links and
 * that each node satisfies `ok`. A walk that has not reached NIL after more
 * steps than there are slots has a cycle. Returns the length or -1.
 */
static int64_t walk(struct ufp_index *x, ufp_slot_index head,
		    ufp_slot_index tail, bool has_tail, int w,
		    bool (*ok)(struct ufp_index *, ufp_slot_index, uint64_t),
		    uint64_t arg)
{
	ufp_slot_index prev = NIL, i = head;
	int64_t len = 0;

	while (i != NIL) {
		if (i >= x->n || len >= (int64_t)x->n)
			return -1;
		if (x->slots[i].l[w].prev != prev || !ok(x, i, arg))
			return -1;
		prev = i;
		i = x->slots[i].l[w].next;
		len++;
	}
	if (has_tail && tail != prev)
		return -1;
	return len;
}

static bool ok_free(struct ufp_index *x, ufp_slot_index i, uint64_t arg)
{
	(void)arg;
	return x->slots[i].state != S_USED;
}

static bool ok_warm(struct ufp_index *x, ufp_slot_index i, uint64_t arg)
{
	(void)arg;
	return x->slots[i].state == S_WARM;
}

static bool ok_resident(struct ufp_index *x, ufp_slot_index i, uint64_t arg)
{
	(void)arg;
	return x->slots[i].state != S_USED && x->slots[i].bytes > 0;
}

static bool ok_affine(struct ufp_index *x, ufp_slot_index i, uint64_t key)
{
	return x->slots[i].state == S_WARM && x->slots[i].key == key;
}

/* Per-slot states against the counters; the counts for the lists. */
static int check_slots(const struct ufp_index *x, uint64_t *nfree,
		       uint64_t *nwarm, uint64_t *naffine, uint64_t *nres)
{
	uint64_t bytes = 0;
	*nfree = *nwarm = *naffine = *nres = 0;
	CHECK(x->n <= UFP_INDEX_MAX_CAPACITY);
	for (uint32_t i = 0; i < x->n; i++) {
		const struct slot *s = &x->slots[i];
		switch (s->state) {
		case S_USED:
			CHECK(s->bytes == 0);
			break;
		case S_COLD:
			CHECK(s->key == 0 && s->bytes == 0);
			(*nfree)++;
			break;
		case S_WARM:
			(*nfree)++;
			(*nwarm)++;
			break;
		default:
			goto corrupt;
		}
		if (s->state != S_USED) {
			*naffine += s->key != 0;
			*nres += s->bytes != 0;
			bytes += s->bytes;
		}
	}
	CHECK(*nfree == x->nfree && *nwarm == x->nwarm);
	CHECK(bytes == x->unused_bytes);
	return 0;
corrupt:
	return -EUCLEAN;
}

/* The strategy's own order of free slots. */
static int check_order(struct ufp_index *x, uint64_t nfree, uint64_t nwarm)
{
	int64_t len;
	switch (x->strategy) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
		len = walk(x, x->ord.head, x->ord.tail, true, L_ORD, ok_free,
			   0);
		CHECK(len >= 0 && (uint64_t)len == nfree);
		return 0;
	case UFP_STRATEGY_RANDOM:
	case UFP_STRATEGY_REUSE_AFFINITY:
		/* Positions agree both ways and nfree distinct free slots
		 * are listed, so the array holds exactly the free slots. */
		for (uint32_t pos = 0; pos < x->nfree; pos++) {
			ufp_slot_index i = x->free_arr[pos];
			CHECK(i < x->n && x->slots[i].state != S_USED);
			CHECK(x->slots[i].pos == pos);
		}
		return 0;
	case UFP_STRATEGY_WARM_LRU:
		CHECK(x->cold_next <= x->n);
		for (uint32_t i = 0; i < x->n; i++)
			CHECK((x->slots[i].state == S_COLD) ==
			      (i >= x->cold_next));
		len = walk(x, x->ord.head, x->ord.tail, true, L_ORD, ok_warm,
			   0);
		CHECK(len >= 0 && (uint64_t)len == nwarm);
		return 0;
	default:
		break;
	}
corrupt:
	return -EUCLEAN;
}

/* Every key's entry and affine list. */
static int check_keys(struct ufp_index *x, uint64_t naffine)
{
	uint64_t naff_listed = 0, nkeys = 0;
	for (size_t h = 0; h <= x->kmask; h++) {
		struct kent *e = &x->keys[h];
		if (!e->key)
			continue;
		nkeys++;
		/* Reachable from its home bucket, and the first such entry. */
		CHECK(kt_find(x, e->key) == e);
		CHECK(e->count > 0);
		int64_t len =
			walk(x, e->head, NIL, false, L_AFF, ok_affine, e->key);
		CHECK(len >= 0 && (uint64_t)len == e->count);
		naff_listed += e->count;
	}
	CHECK(nkeys == x->nkeys && naff_listed == naffine);
	return 0;
corrupt:
	return -EUCLEAN;
}

UFP_API int ufp_index_check(const ufp_index *cx)
{
	struct ufp_index *x = (struct ufp_index *)cx;
	uint64_t nfree, nwarm, naffine, nres;

	if (!x)
		return -EINVAL;
	lock(x);
	int err = check_slots(x, &nfree, &nwarm, &naffine, &nres);
	if (!err) {
		int64_t len = walk(x, x->res.head, x->res.tail, true, L_RES,
				   ok_resident, 0);
		if (len < 0 || (uint64_t)len != nres || nres != x->nres)
			err = -EUCLEAN;
	}
	if (!err)
		err = check_order(x, nfree, nwarm);
	if (!err)
		err = check_keys(x, naffine);
	unlock(x);
	return err;
}
