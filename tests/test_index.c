/* SPDX-License-Identifier: MIT */
/* ufp-test: labels=concurrency timeout=120 */
/*
 * test_index.c - the slot index allocator (lib/index.c) against
 * docs/design.md, "Slot index allocator".
 *
 * Expected values are derived from the semantics, never from running the
 * code: hand-written traces for the fixed orders, and a deliberately naive
 * O(n) reference model (timestamps and linear scans, no lists or hash
 * tables) that every strategy is compared with op by op. Randomised tests
 * use seeded PRNGs and are reproducible; the stress tests are not
 * benchmarks.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "helpers.h"

#define NIL UINT32_MAX
#define KA 0xa11ceULL
#define KB 0xb0bULL
#define KC 0xc0ffeeULL

static const ufp_strategy all_strategies[] = {
	UFP_STRATEGY_NEXT_AVAILABLE,
	UFP_STRATEGY_RANDOM,
	UFP_STRATEGY_REUSE_AFFINITY,
	UFP_STRATEGY_WARM_LRU,
};
#define NSTRAT (sizeof(all_strategies) / sizeof(all_strategies[0]))

static const char *sname(ufp_strategy s)
{
	static const char *n[] = {"NEXT_AVAILABLE", "RANDOM", "REUSE_AFFINITY",
				  "WARM_LRU"};
	return (unsigned)s < 4 ? n[s] : "?";
}

static ufp_index *mk(uint32_t n, ufp_strategy s, uint32_t max_warm,
		     uint64_t seed)
{
	ufp_index *x = NULL;
	int rc = ufp_index_create(n, s, max_warm, seed, &x);
	cr_assert_eq(rc, 0, "create(%u, %s) = %d", n, sname(s), rc);
	cr_assert_not_null(x);
	return x;
}

static ufp_slot_index al(ufp_index *x, uint64_t key, uint64_t *prev)
{
	ufp_slot_index s = NIL;
	uint64_t p = 0xdead;
	int rc = ufp_index_alloc(x, key, &s, &p);
	cr_assert_eq(rc, 0, "alloc(%#llx) = %d", (unsigned long long)key, rc);
	cr_assert_lt(s, ufp_index_capacity(x));
	if (prev)
		*prev = p;
	return s;
}

/* alloc(key) must return slot `want` and report `want_prev`. */
static void al_expect(ufp_index *x, uint64_t key, ufp_slot_index want,
		      uint64_t want_prev, int step)
{
	uint64_t prev;
	ufp_slot_index s = al(x, key, &prev);
	cr_assert_eq(s, want, "step %d: alloc(%#llx) gave slot %u, want %u",
		     step, (unsigned long long)key, s, want);
	cr_assert_eq(prev, want_prev,
		     "step %d: slot %u prev_key %#llx, want %#llx", step, s,
		     (unsigned long long)prev, (unsigned long long)want_prev);
	cr_assert_eq(ufp_index_slot_key(x, s), key);
	cr_assert_eq(ufp_index_slot_in_use(x, s), 1);
}

static void fr(ufp_index *x, ufp_slot_index s, uint64_t bytes)
{
	int rc = ufp_index_free(x, s, bytes);
	cr_assert_eq(rc, 0, "free(%u) = %d", s, rc);
}

static void check(ufp_index *x)
{
	cr_assert_eq(ufp_index_check(x), 0, "ufp_index_check found corruption");
}

static void expect_free_list(ufp_index *x, const ufp_slot_index *want, size_t n)
{
	ufp_slot_index got[64];
	cr_assert_leq(n, 64);
	size_t k = ufp_index_free_list(x, got, 64);
	cr_assert_eq(k, n, "free list has %zu slots, want %zu", k, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "free list [%zu] = %u, want %u",
			     i, got[i], want[i]);
}

static int has_key(ufp_index *x, uint64_t key)
{
	uint64_t keys[64];
	size_t n = ufp_index_affine_keys(x, keys, 64);
	cr_assert_leq(n, 64);
	for (size_t i = 0; i < n; i++)
		if (keys[i] == key)
			return 1;
	return 0;
}

/* ---- fresh allocators: order and exhaustion ----------------------------- */

Test(index_fresh, next_available_hands_out_n_minus_1_down_to_0)
{
	ufp_index *x = mk(5, UFP_STRATEGY_NEXT_AVAILABLE, 0, 1);
	ufp_slot_index s;
	const ufp_slot_index fl[] = {4, 3, 2, 1, 0};

	expect_free_list(x, fl, 5);
	for (int i = 4; i >= 0; i--)
		al_expect(x, (uint64_t)i % 2 ? KA : 0, (ufp_slot_index)i, 0,
			  4 - i);
	cr_assert_eq(ufp_index_alloc(x, KA, &s, NULL), -EAGAIN);
	cr_assert_eq(ufp_index_alloc(x, 0, &s, NULL), -EAGAIN);
	cr_assert_eq(ufp_index_num_free(x), 0);
	check(x);
	ufp_index_destroy(x);
}

Test(index_fresh, warm_lru_hands_out_cold_slots_increasing)
{
	ufp_index *x = mk(5, UFP_STRATEGY_WARM_LRU, 2, 1);
	ufp_slot_index s;
	const ufp_slot_index fl[] = {0, 1, 2, 3, 4};

	expect_free_list(x, fl, 5);
	for (uint32_t i = 0; i < 5; i++)
		al_expect(x, i % 2 ? KB : 0, i, 0, (int)i);
	cr_assert_eq(ufp_index_alloc(x, KB, &s, NULL), -EAGAIN);
	cr_assert_eq(ufp_index_num_free(x), 0);
	check(x);
	ufp_index_destroy(x);
}

static void fresh_random(ufp_strategy st)
{
	enum { N = 64 };
	ufp_index *x = mk(N, st, 0, 7);
	int seen[N] = {0}, asc = 1, desc = 1;
	ufp_slot_index s, prev_s = 0;

	for (uint32_t i = 0; i < N; i++) {
		uint64_t pk;
		s = al(x, i % 3 ? KA : 0, &pk);
		cr_assert_eq(pk, 0, "fresh slot %u was affine", s);
		cr_assert_eq(seen[s], 0, "%s gave slot %u twice", sname(st), s);
		seen[s] = 1;
		if (i) {
			asc &= s == prev_s + 1;
			desc &= s + 1 == prev_s;
		}
		prev_s = s;
	}
	cr_assert(!asc && !desc, "%s order is not random", sname(st));
	cr_assert_eq(ufp_index_alloc(x, KA, &s, NULL), -EAGAIN);
	cr_assert_eq(ufp_index_alloc(x, 0, &s, NULL), -EAGAIN);
	check(x);
	ufp_index_destroy(x);
}

Test(index_fresh, random_hands_out_every_slot_once)
{
	fresh_random(UFP_STRATEGY_RANDOM);
}

Test(index_fresh, reuse_affinity_hands_out_every_slot_once)
{
	fresh_random(UFP_STRATEGY_REUSE_AFFINITY);
}

Test(index_fresh, capacity_zero_is_always_exhausted)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_index *x = mk(0, all_strategies[k], 4, 1);
		ufp_slot_index s;
		uint64_t b;

		cr_assert_eq(ufp_index_capacity(x), 0);
		cr_assert_eq(ufp_index_num_free(x), 0);
		for (int i = 0; i < 3; i++)
			cr_assert_eq(ufp_index_alloc(x, i ? KA : 0, &s, NULL),
				     -EAGAIN);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(x, KA,
								       &s, &b),
			     -ENOENT);
		cr_assert_eq(ufp_index_alloc_lru_resident(x, &s, NULL, &b),
			     -ENOENT);
		cr_assert_eq(ufp_index_free_list(x, NULL, 0), 0);
		cr_assert_eq(ufp_index_affine_keys(x, NULL, 0), 0);
		cr_assert_eq(ufp_index_slot_in_use(x, 0), 0);
		check(x);
		ufp_index_destroy(x);
	}
}

Test(index_fresh, exhaustion_then_one_free_then_exhaustion)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_index *x = mk(8, all_strategies[k], 2, 3);
		ufp_slot_index s, got[8];

		for (int i = 0; i < 8; i++)
			got[i] = al(x, KA, NULL);
		cr_assert_eq(ufp_index_alloc(x, KB, &s, NULL), -EAGAIN);
		fr(x, got[5], 0);
		cr_assert_eq(ufp_index_num_free(x), 1);
		/* The only free slot, whatever the strategy. */
		al_expect(x, KB, got[5], KA, 0);
		cr_assert_eq(ufp_index_alloc(x, KB, &s, NULL), -EAGAIN);
		check(x);
		ufp_index_destroy(x);
	}
}

/* ---- affinity ------------------------------------------------------------ */

Test(index_affinity, tracked_under_every_strategy)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_strategy st = all_strategies[k];
		ufp_index *x = mk(16, st, 100, 5);
		ufp_slot_index a1 = al(x, KA, NULL), b1 = al(x, KB, NULL);
		ufp_slot_index a2 = al(x, KA, NULL), z = al(x, 0, NULL);

		cr_assert_eq(ufp_index_num_affine(x, KA), 0);
		cr_assert_eq(ufp_index_affine_keys(x, NULL, 0), 0);
		cr_assert_eq(ufp_index_num_warm(x), 0);
		fr(x, a1, 0);
		fr(x, b1, 0);
		fr(x, a2, 0);
		fr(x, z, 0);
		cr_assert_eq(ufp_index_num_affine(x, KA), 2, "%s", sname(st));
		cr_assert_eq(ufp_index_num_affine(x, KB), 1);
		cr_assert_eq(ufp_index_num_affine(x, KC), 0);
		cr_assert_eq(ufp_index_num_affine(x, 0), 0);
		cr_assert_eq(ufp_index_slot_key(x, a1), KA);
		cr_assert_eq(ufp_index_slot_key(x, a2), KA);
		cr_assert_eq(ufp_index_slot_key(x, b1), KB);
		cr_assert_eq(ufp_index_slot_key(x, z), 0);
		cr_assert_eq(ufp_index_slot_in_use(x, a1), 0);
		cr_assert_eq(ufp_index_affine_keys(x, NULL, 0), 2);
		cr_assert(has_key(x, KA) && has_key(x, KB) && !has_key(x, 0));
		cr_assert_eq(ufp_index_num_warm(x), 4);
		cr_assert_eq(ufp_index_num_free(x), 16);
		check(x);
		ufp_index_destroy(x);
	}
}

Test(index_affinity, reuse_affinity_and_warm_lru_return_the_affine_slot)
{
	const ufp_strategy sts[] = {UFP_STRATEGY_REUSE_AFFINITY,
				    UFP_STRATEGY_WARM_LRU};
	for (int k = 0; k < 2; k++) {
		ufp_index *x = mk(100, sts[k], 10, 11);
		ufp_slot_index a1 = al(x, KA, NULL), b = al(x, KB, NULL);
		ufp_slot_index a2 = al(x, KA, NULL), a3 = al(x, KA, NULL);

		fr(x, a1, 0);
		fr(x, b, 0);
		fr(x, a2, 0);
		fr(x, a3, 0);
		/* Most recently freed affine slot first. */
		al_expect(x, KA, a3, KA, 0);
		al_expect(x, KB, b, KB, 1);
		al_expect(x, KA, a2, KA, 2);
		fr(x, a3, 0);
		al_expect(x, KA, a3, KA, 3);
		al_expect(x, KA, a1, KA, 4);
		cr_assert_eq(ufp_index_num_affine(x, KA), 0);
		cr_assert_eq(ufp_index_affine_keys(x, NULL, 0), 0);
		check(x);
		ufp_index_destroy(x);
	}
}

Test(index_affinity, next_available_ignores_affinity_but_tracks_it)
{
	ufp_index *x = mk(4, UFP_STRATEGY_NEXT_AVAILABLE, 0, 1);

	al_expect(x, KA, 3, 0, 0);
	al_expect(x, KB, 2, 0, 1);
	fr(x, 3, 0); /* 3 affine to A; free list 3,1,0 */
	cr_assert_eq(ufp_index_num_affine(x, KA), 1);
	al_expect(x, KB, 3, KA, 2); /* takes 3 anyway, evicting A */
	cr_assert_eq(ufp_index_num_affine(x, KA), 0);
	cr_assert(!has_key(x, KA));
	fr(x, 2, 0);
	fr(x, 3, 64);
	/* free list: 3 (B), 2 (B), 1, 0 */
	const ufp_slot_index fl[] = {3, 2, 1, 0};
	expect_free_list(x, fl, 4);
	cr_assert_eq(ufp_index_num_affine(x, KB), 2);
	al_expect(x, 0, 3, KB, 3);
	al_expect(x, KC, 2, KB, 4);
	al_expect(x, KC, 1, 0, 5);
	al_expect(x, 0, 0, 0, 6);
	ufp_slot_index s;
	cr_assert_eq(ufp_index_alloc(x, 0, &s, NULL), -EAGAIN);
	check(x);
	ufp_index_destroy(x);
}

Test(index_affinity, random_evicts_and_reports_previous_key)
{
	enum { N = 8 };
	ufp_index *x = mk(N, UFP_STRATEGY_RANDOM, 0, 99);
	ufp_slot_index s[N];
	uint64_t prev;

	for (int i = 0; i < N; i++)
		s[i] = al(x, i < 4 ? KA : KB, NULL);
	for (int i = 0; i < N; i++)
		fr(x, s[i], 0);
	cr_assert_eq(ufp_index_num_affine(x, KA), 4);
	cr_assert_eq(ufp_index_num_affine(x, KB), 4);
	ufp_slot_index t = al(x, KC, &prev);
	int was_a = 0;
	for (int i = 0; i < 4; i++)
		was_a |= s[i] == t;
	cr_assert_eq(prev, was_a ? KA : KB);
	cr_assert_eq(ufp_index_num_affine(x, prev), 3);
	cr_assert_eq(ufp_index_slot_key(x, t), KC);
	fr(x, t, 0);
	cr_assert_eq(ufp_index_num_affine(x, KC), 1);
	check(x);
	ufp_index_destroy(x);
}

/* ---- purge: alloc_affine_and_clear_affinity ------------------------------ */

Test(index_purge, each_affine_slot_once_most_recent_first_then_enoent)
{
	enum { N = 32, USED = 15 };

	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_strategy st = all_strategies[k];
		ufp_index *x = mk(N, st, 4, 21);
		ufp_slot_index s[USED], order[USED], a_freed[USED], got;
		uint64_t key[USED], seed = 1234 + k, bytes;
		int na = 0, nb = 0;

		for (int i = 0; i < USED; i++) {
			key[i] = i % 3 == 0 ? KA : i % 3 == 1 ? KB : 0;
			s[i] = al(x, key[i], NULL);
			order[i] = (ufp_slot_index)i;
		}
		/* Free in a shuffled order; remember A's free order. */
		for (int i = USED - 1; i > 0; i--) {
			int j = (int)(t_rand(&seed) % (uint64_t)(i + 1));
			ufp_slot_index tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		for (int i = 0; i < USED; i++) {
			int j = (int)order[i];
			fr(x, s[j], 1000 + s[j]);
			if (key[j] == KA)
				a_freed[na++] = s[j];
			nb += key[j] == KB;
		}
		cr_assert_eq(ufp_index_num_affine(x, KA), (uint32_t)na);
		for (int i = na - 1; i >= 0; i--) {
			int rc = ufp_index_alloc_affine_and_clear_affinity(
				x, KA, &got, &bytes);
			cr_assert_eq(rc, 0, "%s: rc %d", sname(st), rc);
			cr_assert_eq(got, a_freed[i],
				     "%s: purge gave %u, want %u (most "
				     "recently freed first)",
				     sname(st), got, a_freed[i]);
			cr_assert_eq(bytes, 1000 + got);
			cr_assert_eq(ufp_index_slot_in_use(x, got), 1);
			cr_assert_eq(ufp_index_slot_key(x, got), 0);
			cr_assert_eq(ufp_index_num_affine(x, KA), (uint32_t)i);
		}
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KA, &got, &bytes),
			     -ENOENT);
		/* B is untouched; cold slots were never candidates. */
		cr_assert_eq(ufp_index_num_affine(x, KB), (uint32_t)nb);
		cr_assert_eq(ufp_index_num_free(x), N - na);
		cr_assert(!has_key(x, KA) && has_key(x, KB));
		/* Purged slots come back unaffine. */
		for (int i = 0; i < na; i++)
			fr(x, a_freed[i], 0);
		cr_assert_eq(ufp_index_num_affine(x, KA), 0);
		cr_assert(!has_key(x, KA));
		for (int i = 0; i < na; i++)
			cr_assert_eq(ufp_index_slot_key(x, a_freed[i]), 0);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KA, &got, NULL),
			     -ENOENT);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, 0, &got, NULL),
			     -ENOENT);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KC, &got, NULL),
			     -ENOENT);
		cr_assert_eq(ufp_index_num_free(x), N);
		check(x);
		ufp_index_destroy(x);
	}
}

Test(index_purge, never_a_cold_or_otherwise_affine_slot)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_index *x = mk(16, all_strategies[k], 0, 4);
		ufp_slot_index got, b = al(x, KB, NULL), z = al(x, 0, NULL);

		fr(x, b, 0);
		fr(x, z, 0);
		/* Only cold, B-affine and unaffine slots are free. */
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KA, &got, NULL),
			     -ENOENT);
		cr_assert_eq(ufp_index_num_free(x), 16);
		ufp_slot_index a = al(x, KA, NULL);
		fr(x, a, 0);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KA, &got, NULL),
			     0);
		cr_assert_eq(got, a);
		cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(
				     x, KA, &got, NULL),
			     -ENOENT);
		fr(x, got, 0);
		check(x);
		ufp_index_destroy(x);
	}
}

/* ---- WARM_LRU threshold, traced by hand ---------------------------------- */

Test(index_warm_lru, threshold_trace)
{
	/* n = 6, max_unused_warm_slots = 2. Comments: warm list LRU first. */
	ufp_index *x = mk(6, UFP_STRATEGY_WARM_LRU, 2, 1);
	ufp_slot_index s;
	int st = 0;

	al_expect(x, KA, 0, 0, st++); /* warm 0 < 2: cold 0 */
	al_expect(x, KB, 1, 0, st++); /* cold 1 */
	al_expect(x, KC, 2, 0, st++); /* cold 2 */
	al_expect(x, KA, 3, 0, st++); /* A has no free slot: cold 3 */
	fr(x, 1, 0);		      /* warm [1(B)] */
	fr(x, 0, 0);		      /* warm [1(B), 0(A)] */
	cr_assert_eq(ufp_index_num_warm(x), 2);
	{
		/* w = 2 >= 2: 1 LRU warm, then cold 4, 5, then warm 0. */
		const ufp_slot_index fl[] = {1, 4, 5, 0};
		expect_free_list(x, fl, 4);
	}
	al_expect(x, KC, 1, KB, st++); /* C none free, w 2 >= 2: LRU 1 */
	cr_assert_eq(ufp_index_num_affine(x, KB), 0);
	al_expect(x, 0xd, 4, 0, st++); /* w 1 < 2: cold 4 */
	fr(x, 2, 0);		       /* warm [0(A), 2(C)] */
	al_expect(x, KA, 0, KA, st++); /* affine hit beats everything */
	al_expect(x, 0, 5, 0, st++);   /* w 1 < 2: cold 5 */
	al_expect(x, 0, 2, KC, st++);  /* no cold left: LRU warm 2 */
	cr_assert_eq(ufp_index_alloc(x, 0, &s, NULL), -EAGAIN);
	/* used: 0 A, 1 C, 2 -, 3 A, 4 D, 5 - */
	fr(x, 5, 0); /* warm [5(-)] */
	fr(x, 3, 0); /* warm [5(-), 3(A)] */
	fr(x, 4, 0); /* warm [5(-), 3(A), 4(D)] */
	cr_assert_eq(ufp_index_num_warm(x), 3);
	{
		/* w = 3 >= 2: 2 LRU warm (5, 3), no cold, then 4. */
		const ufp_slot_index fl[] = {5, 3, 4};
		expect_free_list(x, fl, 3);
	}
	al_expect(x, KB, 5, 0, st++);	 /* w 3 >= 2: LRU 5 */
	al_expect(x, KA, 3, KA, st++);	 /* affine 3 */
	al_expect(x, 0xe, 4, 0xd, st++); /* w 1 < 2, no cold: LRU 4 */
	cr_assert_eq(ufp_index_alloc(x, 0, &s, NULL), -EAGAIN);
	cr_assert_eq(ufp_index_num_warm(x), 0);
	check(x);
	ufp_index_destroy(x);
}

Test(index_warm_lru, zero_threshold_prefers_warm)
{
	ufp_index *x = mk(4, UFP_STRATEGY_WARM_LRU, 0, 1);

	al_expect(x, KA, 0, 0, 0); /* no warm slot: cold 0 */
	al_expect(x, KB, 1, 0, 1);
	fr(x, 0, 0);
	al_expect(x, KC, 0, KA, 2); /* w 1 >= 0: warm 0 before cold 2 */
	fr(x, 1, 0);
	fr(x, 0, 0); /* warm [1(B), 0(C)] */
	{
		const ufp_slot_index fl[] = {1, 0, 2, 3};
		expect_free_list(x, fl, 4);
	}
	al_expect(x, KA, 1, KB, 3);
	al_expect(x, KC, 0, KC, 4);
	al_expect(x, KC, 2, 0, 5);
	check(x);
	ufp_index_destroy(x);
}

Test(index_warm_lru, large_threshold_prefers_cold)
{
	ufp_index *x = mk(4, UFP_STRATEGY_WARM_LRU, 1000, 1);

	al_expect(x, KA, 0, 0, 0);
	fr(x, 0, 0);
	al_expect(x, KB, 1, 0, 1); /* w 1 < 1000: cold 1, keep 0 for A */
	al_expect(x, KB, 2, 0, 2);
	al_expect(x, KB, 3, 0, 3);
	al_expect(x, KB, 0, KA, 4); /* cold exhausted: LRU warm */
	check(x);
	ufp_index_destroy(x);
}

Test(index_warm_lru, threshold_is_not_a_cap)
{
	ufp_index *x = mk(8, UFP_STRATEGY_WARM_LRU, 1, 1);
	for (uint32_t i = 0; i < 5; i++)
		al_expect(x, KA + i, i, 0, (int)i);
	for (uint32_t i = 0; i < 5; i++)
		fr(x, i, 0);
	cr_assert_eq(ufp_index_num_warm(x), 5);
	cr_assert_eq(ufp_index_num_free(x), 8);
	/* w 5 >= 1: LRU warm (0) before cold 5. */
	al_expect(x, 0, 0, KA, 0);
	check(x);
	ufp_index_destroy(x);
}

/* ---- resident bytes ------------------------------------------------------- */

Test(index_resident, lru_resident_order_and_bytes)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_index *x = mk(8, all_strategies[k], 2, 8);
		ufp_slot_index s0 = al(x, KA, NULL), s1 = al(x, KB, NULL);
		ufp_slot_index s2 = al(x, 0, NULL), s3 = al(x, KA, NULL), got;
		uint64_t prev, bytes;

		fr(x, s1, 0);
		fr(x, s0, 100);
		fr(x, s3, 300);
		fr(x, s2, 200);
		cr_assert_eq(ufp_index_unused_bytes_resident(x), 600);
		cr_assert_eq(
			ufp_index_alloc_lru_resident(x, &got, &prev, &bytes),
			0);
		cr_assert(got == s0 && prev == KA && bytes == 100);
		cr_assert_eq(ufp_index_num_affine(x, KA), 1);
		cr_assert_eq(
			ufp_index_alloc_lru_resident(x, &got, &prev, &bytes),
			0);
		cr_assert(got == s3 && prev == KA && bytes == 300);
		cr_assert_eq(
			ufp_index_alloc_lru_resident(x, &got, &prev, &bytes),
			0);
		cr_assert(got == s2 && prev == 0 && bytes == 200);
		/* s1 is free but has nothing resident. */
		cr_assert_eq(
			ufp_index_alloc_lru_resident(x, &got, &prev, &bytes),
			-ENOENT);
		cr_assert_eq(ufp_index_unused_bytes_resident(x), 0);
		cr_assert_eq(ufp_index_num_affine(x, KA), 0);
		cr_assert_eq(ufp_index_num_affine(x, KB), 1);
		fr(x, s0, 0);
		cr_assert_eq(ufp_index_slot_key(x, s0), 0);
		cr_assert_eq(ufp_index_num_free(x), 6);
		check(x);
		ufp_index_destroy(x);
	}
}

/* ---- statistics: hit rate, reproducibility, uniformity --------------------- */

/* 100,000 random ops, 10 keys, 1,000 slots: alloc or free at even odds.
 * Returns the fraction of allocations that got a slot affine to their key. */
static double hit_rate(ufp_strategy st, uint64_t seed)
{
	enum { N = 1000, OPS = 100000 };
	ufp_index *x = mk(N, st, 100, seed);
	static ufp_slot_index used[N];
	uint32_t nused = 0, allocs = 0, hits = 0;
	uint64_t r = seed;

	for (int op = 0; op < OPS; op++) {
		uint64_t v = t_rand(&r);
		if ((v & 1) && nused) {
			uint32_t j = (uint32_t)((v >> 1) % nused);
			fr(x, used[j], 0);
			used[j] = used[--nused];
			continue;
		}
		uint64_t key = 1 + (v >> 8) % 10, prev;
		ufp_slot_index s;
		int rc = ufp_index_alloc(x, key, &s, &prev);
		if (rc == -EAGAIN)
			continue;
		cr_assert_eq(rc, 0);
		used[nused++] = s;
		allocs++;
		hits += prev == key;
	}
	cr_assert_gt(allocs, OPS / 4);
	check(x);
	ufp_index_destroy(x);
	return (double)hits / allocs;
}

Test(index_stats, reuse_affinity_hit_rate_above_20_percent)
{
	double reuse = hit_rate(UFP_STRATEGY_REUSE_AFFINITY, 17);
	double lru = hit_rate(UFP_STRATEGY_WARM_LRU, 17);
	double rnd = hit_rate(UFP_STRATEGY_RANDOM, 17);

	cr_assert_gt(reuse, 0.20, "REUSE_AFFINITY hit rate %.3f", reuse);
	cr_assert_gt(lru, 0.20, "WARM_LRU hit rate %.3f", lru);
	/* Chance is at most 1 in 10: a random pick must not look affine. */
	cr_assert_lt(rnd, 0.15, "RANDOM hit rate %.3f", rnd);
}

static void run_seq(ufp_strategy st, uint64_t seed, ufp_slot_index *seq,
		    int nops)
{
	enum { N = 64 };
	ufp_index *x = mk(N, st, 0, seed);
	ufp_slot_index used[N];
	uint32_t nused = 0;
	uint64_t r = 555; /* the op sequence is the same for every run */

	for (int op = 0; op < nops; op++) {
		uint64_t v = t_rand(&r);
		if ((v % 3 == 0 && nused) || nused == N) {
			uint32_t j = (uint32_t)((v >> 8) % nused);
			fr(x, used[j], 0);
			seq[op] = NIL;
			used[j] = used[--nused];
		} else {
			seq[op] = used[nused++] = al(x, 1 + (v >> 8) % 4, NULL);
		}
	}
	ufp_index_destroy(x);
}

Test(index_stats, same_seed_same_sequence)
{
	enum { OPS = 2000 };
	static ufp_slot_index a[OPS], b[OPS], c[OPS];
	const ufp_strategy sts[] = {UFP_STRATEGY_RANDOM,
				    UFP_STRATEGY_REUSE_AFFINITY};

	for (int k = 0; k < 2; k++) {
		run_seq(sts[k], 42, a, OPS);
		run_seq(sts[k], 42, b, OPS);
		run_seq(sts[k], 43, c, OPS);
		cr_assert_arr_eq(a, b, sizeof(a), "%s not reproducible",
				 sname(sts[k]));
		cr_assert(memcmp(a, c, sizeof(a)) != 0, "%s ignores its seed",
			  sname(sts[k]));
	}
}

Test(index_stats, random_is_uniform)
{
	/* Pairs of alloc+free on 8 slots. Uniform and independent picks give
	 * every (previous slot, next slot) transition 1/64 of the time,
	 * including picking the slot just freed again: 2,500 each, sd ~49,
	 * so 12% is more than 6 sd. Marginal counts alone would miss a pick
	 * that avoids (or prefers) the most recently freed slot. */
	enum { N = 8, PAIRS = 160000 };
	ufp_index *x = mk(N, UFP_STRATEGY_RANDOM, 0, 2024);
	uint32_t count[N][N] = {{0}};
	ufp_slot_index last = al(x, 0, NULL);

	fr(x, last, 0);
	for (int i = 0; i < PAIRS; i++) {
		ufp_slot_index s = al(x, 0, NULL);
		count[last][s]++;
		fr(x, s, 0);
		last = s;
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			cr_assert(count[i][j] > 2200 && count[i][j] < 2800,
				  "slot %d after slot %d: %u times, want ~2500",
				  j, i, count[i][j]);
	ufp_index_destroy(x);
}

/* ---- reference model -------------------------------------------------------
 * Naive and independent of lib/index.c: per slot a state, a key, bytes and a
 * timestamp of the last free (fresh slots get n-1 > ... > 0 > negative
 * stamps so that NEXT_AVAILABLE's fresh order falls out of "most recent
 * first"); every choice is a linear scan.
 */
enum { M_COLD, M_WARM, M_USED };
#define MAXN 64

struct model {
	uint32_t n, max_warm;
	ufp_strategy st;
	int state[MAXN];
	uint64_t key[MAXN], bytes[MAXN];
	int64_t t[MAXN], clock;
};

static void m_init(struct model *m, uint32_t n, ufp_strategy st,
		   uint32_t max_warm)
{
	memset(m, 0, sizeof(*m));
	m->n = n;
	m->st = st;
	m->max_warm = max_warm;
	for (uint32_t i = 0; i < n; i++) {
		m->state[i] = M_COLD;
		m->t[i] = (int64_t)i - (int64_t)n;
	}
}

/* Free slot with key `key` (any key if any_key) and the largest (most
 * recent) or smallest stamp; NIL if none. */
static uint32_t m_scan(const struct model *m, int want_warm, int any_key,
		       uint64_t key, int most_recent, int need_bytes)
{
	uint32_t best = NIL;
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->state[i] == M_USED)
			continue;
		if (want_warm && m->state[i] != M_WARM)
			continue;
		if (!any_key && m->key[i] != key)
			continue;
		if (need_bytes && !m->bytes[i])
			continue;
		if (best == NIL ||
		    (most_recent ? m->t[i] > m->t[best] : m->t[i] < m->t[best]))
			best = i;
	}
	return best;
}

static uint32_t m_count(const struct model *m, int state)
{
	uint32_t c = 0;
	for (uint32_t i = 0; i < m->n; i++)
		c += m->state[i] == state;
	return c;
}

/* The slot alloc(key) must return; NIL: "any free slot" (random). */
static uint32_t m_pick(const struct model *m, uint64_t key)
{
	uint32_t aff = key ? m_scan(m, 1, 0, key, 1, 0) : NIL;
	uint32_t cold = NIL, lru, w;

	switch (m->st) {
	case UFP_STRATEGY_NEXT_AVAILABLE:
		return m_scan(m, 0, 1, 0, 1, 0);
	case UFP_STRATEGY_RANDOM:
		return NIL;
	case UFP_STRATEGY_REUSE_AFFINITY:
		return aff;
	case UFP_STRATEGY_WARM_LRU:
		if (aff != NIL)
			return aff;
		for (uint32_t i = 0; i < m->n && cold == NIL; i++)
			if (m->state[i] == M_COLD)
				cold = i;
		lru = m_scan(m, 1, 1, 0, 0, 0);
		w = m_count(m, M_WARM);
		if (w < m->max_warm)
			return cold != NIL ? cold : lru;
		return lru != NIL ? lru : cold;
	}
	return NIL;
}

static uint64_t m_take(struct model *m, uint32_t i, uint64_t key)
{
	uint64_t prev = m->key[i];
	m->state[i] = M_USED;
	m->key[i] = key;
	m->bytes[i] = 0;
	return prev;
}

static void m_free(struct model *m, uint32_t i, uint64_t bytes)
{
	m->state[i] = M_WARM;
	m->bytes[i] = bytes;
	m->t[i] = ++m->clock;
}

static void m_compare(ufp_index *x, const struct model *m, int op)
{
	uint64_t bytes = 0;
	uint32_t naff[8] = {0};

	cr_assert_eq(ufp_index_num_free(x), m->n - m_count(m, M_USED), "op %d",
		     op);
	cr_assert_eq(ufp_index_num_warm(x), m_count(m, M_WARM), "op %d", op);
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->state[i] == M_USED) {
			cr_assert_eq(ufp_index_slot_in_use(x, i), 1);
		} else {
			cr_assert_eq(ufp_index_slot_in_use(x, i), 0);
			bytes += m->bytes[i];
			naff[m->key[i]]++;
		}
		cr_assert_eq(ufp_index_slot_key(x, i), m->key[i],
			     "op %d slot %u", op, i);
	}
	cr_assert_eq(ufp_index_unused_bytes_resident(x), bytes, "op %d", op);
	size_t nkeys = 0;
	for (uint64_t k = 1; k < 8; k++) {
		cr_assert_eq(ufp_index_num_affine(x, k), naff[k], "op %d", op);
		nkeys += naff[k] != 0;
	}
	cr_assert_eq(ufp_index_affine_keys(x, NULL, 0), nkeys, "op %d", op);
	check(x);
}

static void m_compare_free_list(ufp_index *x, const struct model *m, int op)
{
	ufp_slot_index got[MAXN];
	size_t k = ufp_index_free_list(x, got, MAXN);
	uint32_t nfree = m->n - m_count(m, M_USED);

	cr_assert_eq(k, nfree);
	if (m->st == UFP_STRATEGY_RANDOM ||
	    m->st == UFP_STRATEGY_REUSE_AFFINITY) {
		int seen[MAXN] = {0};
		for (size_t i = 0; i < k; i++) {
			cr_assert_lt(got[i], m->n);
			cr_assert_neq(m->state[got[i]], M_USED);
			cr_assert_eq(seen[got[i]]++, 0);
		}
		return;
	}
	/* The order key-0 allocations would take, replayed on a copy. */
	struct model c = *m;
	for (size_t i = 0; i < k; i++) {
		uint32_t want = m_pick(&c, 0);
		cr_assert_eq(got[i], want,
			     "op %d: free list [%zu] = %u, want %u", op, i,
			     got[i], want);
		m_take(&c, want, 0);
	}
}

static void model_run(ufp_strategy st, uint32_t n, uint32_t max_warm,
		      uint64_t seed, int ops)
{
	ufp_index *x = mk(n, st, max_warm, seed);
	struct model m;
	uint64_t r = seed * 31 + 7;

	m_init(&m, n, st, max_warm);
	m_compare_free_list(x, &m, -1);
	for (int op = 0; op < ops; op++) {
		uint64_t v = t_rand(&r), key = (v >> 16) % 7, prev, bytes;
		uint32_t want, nused = m_count(&m, M_USED);
		ufp_slot_index s;
		int kind = (int)(v % 100), rc;

		if (kind < 45) {
			want = m.n - nused ? m_pick(&m, key) : NIL;
			rc = ufp_index_alloc(x, key, &s, &prev);
			if (nused == m.n) {
				cr_assert_eq(rc, -EAGAIN, "op %d", op);
				continue;
			}
			cr_assert_eq(rc, 0, "op %d", op);
			cr_assert_lt(s, n);
			cr_assert_neq(m.state[s], M_USED, "op %d: slot %u used",
				      op, s);
			if (want != NIL)
				cr_assert_eq(s, want,
					     "op %d %s alloc(%llu) gave %u, "
					     "want %u",
					     op, sname(st),
					     (unsigned long long)key, s, want);
			cr_assert_eq(prev, m_take(&m, s, key), "op %d", op);
		} else if (kind < 80) {
			if (!nused)
				continue;
			uint32_t j = (uint32_t)((v >> 32) % nused), i = 0;
			for (;; i++)
				if (m.state[i] == M_USED && !j--)
					break;
			bytes = (v >> 8) & 1 ? 4096 * ((v >> 40) % 5) : 0;
			cr_assert_eq(ufp_index_free(x, i, bytes), 0);
			m_free(&m, i, bytes);
		} else if (kind < 90) {
			want = key ? m_scan(&m, 1, 0, key, 1, 0) : NIL;
			rc = ufp_index_alloc_affine_and_clear_affinity(
				x, key, &s, &bytes);
			if (want == NIL) {
				cr_assert_eq(rc, -ENOENT, "op %d", op);
				continue;
			}
			cr_assert_eq(rc, 0);
			cr_assert_eq(s, want, "op %d purge gave %u, want %u",
				     op, s, want);
			cr_assert_eq(bytes, m.bytes[s]);
			m_take(&m, s, 0);
		} else if (kind < 95) {
			want = m_scan(&m, 1, 1, 0, 0, 1);
			rc = ufp_index_alloc_lru_resident(x, &s, &prev, &bytes);
			if (want == NIL) {
				cr_assert_eq(rc, -ENOENT, "op %d", op);
				continue;
			}
			cr_assert_eq(rc, 0);
			cr_assert_eq(s, want, "op %d lru_resident %u, want %u",
				     op, s, want);
			cr_assert_eq(bytes, m.bytes[s]);
			cr_assert_eq(prev, m_take(&m, s, 0));
		} else {
			m_compare_free_list(x, &m, op);
		}
		m_compare(x, &m, op);
	}
	ufp_index_destroy(x);
}

Test(index_model, next_available)
{
	model_run(UFP_STRATEGY_NEXT_AVAILABLE, 48, 0, 1, 20000);
	model_run(UFP_STRATEGY_NEXT_AVAILABLE, 5, 0, 2, 5000);
}

Test(index_model, random)
{
	model_run(UFP_STRATEGY_RANDOM, 48, 0, 3, 20000);
	model_run(UFP_STRATEGY_RANDOM, 5, 0, 4, 5000);
}

Test(index_model, reuse_affinity)
{
	model_run(UFP_STRATEGY_REUSE_AFFINITY, 48, 0, 5, 20000);
	model_run(UFP_STRATEGY_REUSE_AFFINITY, 5, 0, 6, 5000);
}

Test(index_model, warm_lru)
{
	const uint32_t thresholds[] = {0, 1, 3, 12, 48, 1000};
	for (int i = 0; i < 6; i++)
		model_run(UFP_STRATEGY_WARM_LRU, 48, thresholds[i], 7 + i,
			  10000);
	model_run(UFP_STRATEGY_WARM_LRU, 5, 2, 20, 5000);
}

/* ---- bad input ------------------------------------------------------------ */

Test(index_bad, create_arguments)
{
	ufp_index *x = (ufp_index *)&x;

	cr_assert_eq(ufp_index_create(4, UFP_STRATEGY_RANDOM, 0, 0, NULL),
		     -EINVAL);
	cr_assert_eq(ufp_index_create(UFP_INDEX_MAX_CAPACITY + 1,
				      UFP_STRATEGY_RANDOM, 0, 0, &x),
		     -EINVAL);
	cr_assert_eq(
		ufp_index_create(UINT32_MAX, UFP_STRATEGY_WARM_LRU, 0, 0, &x),
		-EINVAL);
	cr_assert_eq(ufp_index_create(4, (ufp_strategy)4, 0, 0, &x), -EINVAL);
	cr_assert_eq(ufp_index_create(4, (ufp_strategy)-1, 0, 0, &x), -EINVAL);
	cr_assert_eq(x, (ufp_index *)&x, "*out written on failure");
	ufp_index_destroy(NULL);
}

Test(index_bad, null_arguments)
{
	ufp_index *x = mk(4, UFP_STRATEGY_NEXT_AVAILABLE, 0, 0);
	ufp_slot_index s;
	uint64_t p;

	cr_assert_eq(ufp_index_alloc(NULL, KA, &s, &p), -EINVAL);
	cr_assert_eq(ufp_index_alloc(x, KA, NULL, &p), -EINVAL);
	cr_assert_eq(ufp_index_free(NULL, 0, 0), -EINVAL);
	cr_assert_eq(
		ufp_index_alloc_affine_and_clear_affinity(NULL, KA, &s, &p),
		-EINVAL);
	cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(x, KA, NULL, &p),
		     -EINVAL);
	cr_assert_eq(ufp_index_alloc_lru_resident(NULL, &s, &p, &p), -EINVAL);
	cr_assert_eq(ufp_index_alloc_lru_resident(x, NULL, &p, &p), -EINVAL);
	cr_assert_eq(ufp_index_capacity(NULL), 0);
	cr_assert_eq(ufp_index_num_free(NULL), 0);
	cr_assert_eq(ufp_index_num_warm(NULL), 0);
	cr_assert_eq(ufp_index_unused_bytes_resident(NULL), 0);
	cr_assert_eq(ufp_index_num_affine(NULL, KA), 0);
	cr_assert_eq(ufp_index_slot_key(NULL, 0), 0);
	cr_assert_eq(ufp_index_slot_in_use(NULL, 0), 0);
	cr_assert_eq(ufp_index_affine_keys(NULL, NULL, 0), 0);
	cr_assert_eq(ufp_index_free_list(NULL, NULL, 0), 0);
	cr_assert_neq(ufp_index_check(NULL), 0);
	/* Out-of-range introspection is "none", not a crash. */
	cr_assert_eq(ufp_index_slot_key(x, 4), 0);
	cr_assert_eq(ufp_index_slot_in_use(x, UINT32_MAX), 0);
	/* prev_key and bytes_resident may be NULL. */
	cr_assert_eq(ufp_index_alloc(x, KA, &s, NULL), 0);
	fr(x, s, 8);
	cr_assert_eq(ufp_index_alloc_affine_and_clear_affinity(x, KA, &s, NULL),
		     0);
	fr(x, s, 8);
	cr_assert_eq(ufp_index_alloc_lru_resident(x, &s, NULL, NULL), 0);
	/* cap 0 and NULL buffers only count. */
	cr_assert_eq(ufp_index_free_list(x, NULL, 0), 3);
	check(x);
	ufp_index_destroy(x);
}

/*
 * Freeing a slot that is not in use is a caller bug: an assertion in debug
 * builds, -EINVAL and no damage in release builds (the tsan preset builds
 * RelWithDebInfo, so both paths run in CI).
 */
#ifdef NDEBUG
static void bad_free(int which)
{
	for (size_t k = 0; k < NSTRAT; k++) {
		ufp_index *x = mk(4, all_strategies[k], 1, 0);
		ufp_slot_index s = al(x, KA, NULL);
		fr(x, s, 16);
		switch (which) {
		case 0:
			cr_assert_eq(ufp_index_free(x, s, 16), -EINVAL);
			break;
		case 1:
			cr_assert_eq(ufp_index_free(x, 4, 0), -EINVAL);
			cr_assert_eq(ufp_index_free(x, UINT32_MAX, 0), -EINVAL);
			break;
		case 2: /* a cold slot was never handed out */
			cr_assert_eq(ufp_index_free(x, s == 0 ? 1 : 0, 0),
				     -EINVAL);
			break;
		}
		/* The rejected call changed nothing. */
		cr_assert_eq(ufp_index_num_free(x), 4);
		cr_assert_eq(ufp_index_num_warm(x), 1);
		cr_assert_eq(ufp_index_num_affine(x, KA), 1);
		cr_assert_eq(ufp_index_unused_bytes_resident(x), 16);
		check(x);
		ufp_index_destroy(x);
	}
}
#define BAD_FREE_TEST(name) Test(index_bad, name)
#else
static void bad_free(int which)
{
	ufp_index *x = mk(4, UFP_STRATEGY_WARM_LRU, 1, 0);
	ufp_slot_index s = al(x, KA, NULL);
	fr(x, s, 16);
	int rc = -1;
	switch (which) {
	case 0:
		rc = ufp_index_free(x, s, 16);
		break;
	case 1:
		rc = ufp_index_free(x, 4, 0);
		break;
	case 2:
		rc = ufp_index_free(x, 1, 0);
		break;
	}
	cr_assert_fail("bad free returned %d and did not trip the debug "
		       "assertion",
		       rc);
}
#define BAD_FREE_TEST(name) Test(index_bad, name, .signal = SIGABRT)
#endif

BAD_FREE_TEST(double_free)
{
	bad_free(0);
}

BAD_FREE_TEST(out_of_range_free)
{
	bad_free(1);
}

BAD_FREE_TEST(free_of_never_used_slot)
{
	bad_free(2);
}

/* ---- threads ---------------------------------------------------------------
 * Stress, not a benchmark. UFP_INDEX_HAMMER_OPS overrides the ops per
 * thread. Each thread owns the slots it allocated; `owner` catches a slot
 * handed to two threads at once.
 */
enum { H_THREADS = 4, H_N = 256, H_HOLD = 96 };

struct hammer {
	ufp_index *x;
	_Atomic int owner[H_N];
	atomic_int errors;
	int ops;
};

struct hthread {
	struct hammer *h;
	int id;
	uint64_t seed;
	ufp_slot_index held[H_HOLD];
	int nheld;
};

static void *hammer_thread(void *arg)
{
	struct hthread *t = arg;
	struct hammer *h = t->h;
	uint64_t r = t->seed;

	for (int op = 0; op < h->ops; op++) {
		uint64_t v = t_rand(&r), key = (v >> 16) % 9, b;
		ufp_slot_index s = NIL, list[H_N];
		int kind = (int)(v % 100), rc, expect;

		if (kind < 50 && t->nheld < H_HOLD) {
			rc = ufp_index_alloc(h->x, key, &s, NULL);
			if (rc == -EAGAIN)
				continue;
		} else if (kind < 56 && t->nheld < H_HOLD) {
			rc = ufp_index_alloc_affine_and_clear_affinity(
				h->x, 1 + key % 8, &s, &b);
			if (rc == -ENOENT)
				continue;
		} else if (kind < 58 && t->nheld < H_HOLD) {
			rc = ufp_index_alloc_lru_resident(h->x, &s, NULL, &b);
			if (rc == -ENOENT)
				continue;
		} else if (kind < 60) {
			/* Concurrent readers take the same lock. */
			if (ufp_index_free_list(h->x, list, H_N) > H_N ||
			    ufp_index_num_free(h->x) > H_N ||
			    ufp_index_num_warm(h->x) > H_N)
				atomic_fetch_add(&h->errors, 1);
			if (op % 512 == 0 && ufp_index_check(h->x))
				atomic_fetch_add(&h->errors, 1);
			continue;
		} else {
			if (!t->nheld)
				continue;
			int j = (int)((v >> 32) % (uint64_t)t->nheld);
			s = t->held[j];
			t->held[j] = t->held[--t->nheld];
			expect = t->id + 1;
			if (!atomic_compare_exchange_strong(&h->owner[s],
							    &expect, 0))
				atomic_fetch_add(&h->errors, 1);
			if (ufp_index_free(h->x, s, (v >> 8) & 1 ? 4096 : 0))
				atomic_fetch_add(&h->errors, 1);
			continue;
		}
		if (rc || s >= H_N) {
			atomic_fetch_add(&h->errors, 1);
			continue;
		}
		expect = 0;
		if (!atomic_compare_exchange_strong(&h->owner[s], &expect,
						    t->id + 1))
			atomic_fetch_add(&h->errors, 1);
		t->held[t->nheld++] = s;
	}
	return NULL;
}

Test(index_threads, hammer_then_check, .timeout = 100)
{
	const char *env = getenv("UFP_INDEX_HAMMER_OPS");
	int ops = env ? atoi(env) : 30000;

	for (size_t k = 0; k < NSTRAT; k++) {
		static struct hammer h;
		struct hthread t[H_THREADS];
		pthread_t tid[H_THREADS];
		uint32_t held = 0;

		memset(&h, 0, sizeof(h));
		h.x = mk(H_N, all_strategies[k], 32, 77 + k);
		h.ops = ops;
		for (int i = 0; i < H_THREADS; i++) {
			t[i] = (struct hthread){
				.h = &h, .id = i, .seed = 1000 * k + i};
			cr_assert_eq(pthread_create(&tid[i], NULL,
						    hammer_thread, &t[i]),
				     0);
		}
		for (int i = 0; i < H_THREADS; i++)
			pthread_join(tid[i], NULL);
		cr_assert_eq(atomic_load(&h.errors), 0, "%s: %d errors",
			     sname(all_strategies[k]), atomic_load(&h.errors));
		check(h.x);
		for (int i = 0; i < H_THREADS; i++)
			held += (uint32_t)t[i].nheld;
		cr_assert_eq(ufp_index_num_free(h.x), H_N - held);
		for (ufp_slot_index s = 0; s < H_N; s++)
			cr_assert_eq(ufp_index_slot_in_use(h.x, s),
				     atomic_load(&h.owner[s]) != 0);
		for (int i = 0; i < H_THREADS; i++)
			for (int j = 0; j < t[i].nheld; j++)
				fr(h.x, t[i].held[j], 0);
		cr_assert_eq(ufp_index_num_free(h.x), H_N);
		/* Every free affine slot is counted under its key. */
		uint32_t naff = 0, nlisted = 0;
		uint64_t keys[16];
		size_t nk = ufp_index_affine_keys(h.x, keys, 16);
		cr_assert_leq(nk, 8);
		for (ufp_slot_index s = 0; s < H_N; s++)
			naff += ufp_index_slot_key(h.x, s) != 0;
		for (size_t i = 0; i < nk; i++)
			nlisted += ufp_index_num_affine(h.x, keys[i]);
		cr_assert_eq(naff, nlisted);
		check(h.x);
		ufp_index_destroy(h.x);
	}
}
