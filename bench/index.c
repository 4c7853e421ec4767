/* SPDX-License-Identifier: MIT */
/*
 * index.c - `ufp-bench index`: uncontended alloc+free pairs of the slot
 * index allocator, per strategy. Target: <= 100 ns per pair.
 *
 *   ufp-bench index [--json] [--quick] [--reps N] [--slots N] [--pairs N]
 *
 * Workload: N slots (default 1,000) of which half are held in a FIFO, so
 * every strategy works on a mixed state rather than bouncing one slot: each
 * pair allocates a slot for one of 16 keys (1 in 8 requests name no
 * module), then frees the oldest held slot, half of the time with bytes
 * resident. Keys are drawn before timing. After a warm-up rep, each rep
 * times its pairs in batches of 1,024: the median is over reps (ns per pair
 * of the whole rep), the p99 over all batches of all reps, so it shows the
 * occasional slow batch (preemption, page faults) that a median hides.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define TARGET_NS 100
#define BATCH 1024
#define NKEYS 4096   /* precomputed key draws, cycled */
#define MAX_WARM 100 /* Wasmtime's default max_unused_warm_slots */

static const struct {
	ufp_strategy st;
	const char *name;
} strategies[] = {
	{UFP_STRATEGY_NEXT_AVAILABLE, "NEXT_AVAILABLE"},
	{UFP_STRATEGY_RANDOM, "RANDOM"},
	{UFP_STRATEGY_REUSE_AFFINITY, "REUSE_AFFINITY"},
	{UFP_STRATEGY_WARM_LRU, "WARM_LRU"},
};

struct run {
	ufp_index *x;
	ufp_slot_index *live; /* FIFO ring of held slots */
	uint32_t nlive;
	uint32_t head;
	const uint64_t *keys;
	uint32_t kpos;
};

/* `pairs` alloc+free pairs; 0 or a negative errno. */
static int pairs_run(struct run *r, size_t pairs)
{
	for (size_t p = 0; p < pairs; p++) {
		uint64_t key = r->keys[r->kpos++ & (NKEYS - 1)];
		ufp_slot_index s, old;
		int rc = ufp_index_alloc(r->x, key, &s, NULL);

		if (rc)
			return rc;
		old = r->live[r->head];
		r->live[r->head] = s;
		if (++r->head == r->nlive)
			r->head = 0;
		rc = ufp_index_free(r->x, old, (key & 1) ? 65536 : 0);
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	*v = strtoull(s, &end, 10);
	return *s && !*end ? 0 : -1;
}

struct index_args {
	uint64_t slots, pairs;
	uint32_t live; /* slots held at any time */
	int reps;
};

static int parse(struct ufpb *b, int argc, char **argv, struct index_args *a)
{
	for (int i = 0; i < argc; i++) {
		/* Harness options are accepted after the scenario name too. */
		if (ufpb_common_arg(b, argc, argv, &i)) {
			continue;
		} else if (!strcmp(argv[i], "--slots") && i + 1 < argc &&
			   !parse_u64(argv[i + 1], &a->slots) &&
			   a->slots >= 2 &&
			   a->slots <= UFP_INDEX_MAX_CAPACITY) {
			i++;
		} else if (!strcmp(argv[i], "--pairs") && i + 1 < argc &&
			   !parse_u64(argv[i + 1], &a->pairs) &&
			   a->pairs >= BATCH) {
			i++;
		} else {
			fprintf(stderr,
				"usage: ufp-bench index [--json] [--quick] "
				"[--reps N] [--slots N>=2] [--pairs N>=%d]\n",
				BATCH);
			return 2;
		}
	}
	a->reps = b->reps;
	if (!a->pairs)
		a->pairs = b->quick ? 1u << 16 : 1u << 20;
	/* Half the slots held: an alloc before the matching free always
	 * finds a slot, and half the pool is free to choose from. */
	a->live = (uint32_t)(a->slots / 2);
	a->pairs -= a->pairs % BATCH;
	return 0;
}

/* The key of each request, drawn before timing: 1 in 8 names no module,
 * the rest one of 16. */
static void draw_keys(uint64_t keys[NKEYS])
{
	uint64_t rng = 0x5eed;
	for (int i = 0; i < NKEYS; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t v = rng >> 33;
		keys[i] = v % 8 == 0 ? 0 : 1 + (v >> 3) % 16;
	}
}

/* One strategy: an index with half its slots held, a warm-up, then the
 * timed reps into per_rep[] and per_batch[0..*nb). 0 or -errno; *what
 * says which step failed. */
static int measure(const struct index_args *a, ufp_strategy st,
		   const uint64_t *keys, ufp_slot_index *ring, double *per_rep,
		   double *per_batch, size_t *nb, const char **what)
{
	struct run r = {.live = ring, .nlive = a->live, .keys = keys};
	int err = ufp_index_create((uint32_t)a->slots, st, MAX_WARM, 42, &r.x);

	*nb = 0;
	*what = "create ";
	if (err)
		return err;
	*what = "";
	for (uint32_t i = 0; i < a->live && !err; i++)
		err = ufp_index_alloc(r.x, keys[i & (NKEYS - 1)], &ring[i],
				      NULL);
	/* Warm-up: caches, branch predictors, and a steady state where most
	 * slots are warm and affine. */
	if (!err)
		err = pairs_run(&r, a->pairs / 4 > a->slots * 4 ? a->pairs / 4
								: a->slots * 4);
	for (int rep = 0; rep < a->reps && !err; rep++) {
		uint64_t t0 = ufpb_now_ns(), tb = t0;
		for (size_t i = 0; i < a->pairs / BATCH && !err; i++) {
			err = pairs_run(&r, BATCH);
			uint64_t t = ufpb_now_ns();
			per_batch[(*nb)++] = (double)(t - tb) / BATCH;
			tb = t;
		}
		per_rep[rep] = (double)(tb - t0) / (double)a->pairs;
	}
	if (!err && ufp_index_check(r.x))
		err = -EUCLEAN;
	ufp_index_destroy(r.x);
	return err;
}

static void print_row(struct ufpb *b, const struct index_args *a,
		      const char *name, double med, double p99)
{
	int ok = med <= TARGET_NS;
	ufpb_say(b, "%-16s %16.1f %16.1f %5s%3d  %s\n", name, med, p99,
		 "<=", TARGET_NS, ok ? "ok" : "SLOWER THAN TARGET");
	ufpb_emit(b, "index",
		  "\"strategy\": \"%s\", \"ns_per_pair_median\": %.1f, "
		  "\"ns_per_pair_p99\": %.1f, \"p99_over\": \"batches "
		  "of %d pairs\", \"reps\": %d, \"pairs_per_rep\": "
		  "%llu, \"slots\": %llu, \"held\": %u, "
		  "\"max_unused_warm_slots\": %d, \"target_ns\": %d, "
		  "\"ok\": %s",
		  name, med, p99, BATCH, a->reps, (unsigned long long)a->pairs,
		  (unsigned long long)a->slots, a->live, MAX_WARM, TARGET_NS,
		  ok ? "true" : "false");
}

int ufpb_index(struct ufpb *b, int argc, char **argv)
{
	struct index_args a = {.slots = 1000};
	uint64_t keys[NKEYS];
	int rc = parse(b, argc, argv, &a);
	if (rc)
		return rc;
	draw_keys(keys);

	size_t nbatch = (size_t)a.reps * (a.pairs / BATCH);
	double *per_rep = calloc((size_t)a.reps, sizeof(double));
	double *per_batch = calloc(nbatch, sizeof(double));
	ufp_slot_index *ring = calloc(a.live, sizeof(*ring));
	if (!per_rep || !per_batch || !ring) {
		fprintf(stderr, "ufp-bench index: out of memory\n");
		rc = 1;
		goto out;
	}

	ufpb_say(b,
		 "index: uncontended alloc+free pairs, %llu slots, %u held, "
		 "16 keys + none, %d reps x %llu pairs\n",
		 (unsigned long long)a.slots, a.live, a.reps,
		 (unsigned long long)a.pairs);
	ufpb_say(b, "%-16s %16s %16s %8s  %s\n", "strategy", "median ns/pair",
		 "p99 ns/pair", "target", "verdict");
	for (size_t k = 0; k < sizeof(strategies) / sizeof(strategies[0]);
	     k++) {
		const char *what;
		size_t nb;
		int err = measure(&a, strategies[k].st, keys, ring, per_rep,
				  per_batch, &nb, &what);
		if (err) {
			fprintf(stderr, "ufp-bench index: %s%s: %s\n", what,
				strategies[k].name, strerror(-err));
			rc = 1;
			goto out;
		}
		print_row(b, &a, strategies[k].name,
			  ufpb_median(per_rep, (size_t)a.reps),
			  ufpb_percentile(per_batch, nb, 99));
	}
	ufpb_say(b, "(median over reps; p99 over batches of %d pairs)\n",
		 BATCH);
out:
	free(per_rep);
	free(per_batch);
	free(ring);
	return rc;
}
