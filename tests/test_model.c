/* SPDX-License-Identifier: MIT */
/* ufp-test: labels=concurrency timeout=300 fill=copy */
/*
 * test_model.c - randomized model test (tests/model.h, engine in
 * tests/support_model.c): seeded sequences of module create/drop, memory
 * alloc/touch/read/write/grow/free and quiesce, run against the library and
 * a plain reference model and compared byte for byte, over every backend,
 * reclaim engine, strategy, keep_resident_bytes {0, 256 KiB} and dirty
 * tracking mode {AUTO, OFF}, plus one bound on idle resident bytes.
 *
 * CI runs the fixed seeds below. To replay or explore:
 *   UFP_MODEL_SEEDS=7,8,9   seeds to run instead (comma separated)
 *   UFP_MODEL_OPS=2000      operations per run (default 300)
 *   UFP_MODEL_WINDOW=65536  fault_around_max_bytes (default: the library's)
 *   UFP_MODEL_VERBOSE=1     print every operation as it runs
 *   UFP_MODEL_ONLY=dirty=off  run only the configurations whose description
 *                           ("uffd/sync/warm_lru/keep=256K/dirty=off/...")
 *                           contains this string
 * A single-threaded failure prints the seed and the shortest failing prefix
 * with its operation list; `ufp-bench soak` runs random seeds for as long
 * as asked. Not a benchmark.
 */
#include "helpers.h"
#include "model.h"

static const uint64_t ci_seeds[] = {1, 2, 3};
#define KEEP_SOME ((uint64_t)256 << 10)

static size_t seeds_from_env(uint64_t *out, size_t cap)
{
	const char *v = getenv("UFP_MODEL_SEEDS");
	size_t n = 0;
	if (v && *v) {
		char *end;
		while (*v && n < cap) {
			out[n++] = strtoull(v, &end, 0);
			if (end == v)
				break;
			v = *end == ',' ? end + 1 : end;
		}
	}
	if (!n)
		for (; n < sizeof(ci_seeds) / sizeof(ci_seeds[0]); n++)
			out[n] = ci_seeds[n];
	return n;
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* 300 operations per run; 200 under TSan (~4x slower), for CI's time. */
static uint32_t ops_from_env(void)
{
	const char *v = getenv("UFP_MODEL_OPS");
	unsigned long n = v ? strtoul(v, NULL, 0) : 0;
	return n ? (uint32_t)n : UNDER_TSAN ? 200 : 300;
}

/* One run; a skip ends the test (a failure under UFP_REQUIRE_FEATURES),
 * a failure is shrunk (single-threaded) and fails the test. */
static void run_config(struct ufpm_params *p, struct ufpm_totals *tot)
{
	const char *only = getenv("UFP_MODEL_ONLY");
	struct ufpm_result r;
	char d[256];

	p->ops = ops_from_env();
	p->verbose = getenv("UFP_MODEL_VERBOSE") != NULL;
	if (getenv("UFP_MODEL_WINDOW"))
		p->fault_around_max_bytes =
			strtoull(getenv("UFP_MODEL_WINDOW"), NULL, 0);
	ufpm_describe(p, d, sizeof(d));
	if (only && *only && !strstr(d, only))
		return;
	/* a concurrent run cannot be replayed: print its ops now */
	switch (ufpm_run(p, UFPM_ALL, tot, &r,
			 p->threads > 1 ? stderr : NULL)) {
	case UFPM_SKIP:
		t_skip("%s", r.msg);
		break;
	case UFPM_FAIL:
		/* shrinking replays O(n^2) ops: bounded so that a late
		 * failure still reports before the test's timeout */
		if (p->threads == 1)
			ufpm_shrink(p, &r, 120, stderr);
		cr_assert_fail("model %s (seed %llu) failed: %s", d,
			       (unsigned long long)p->seed, r.msg);
		break;
	default:
		break;
	}
}

/*
 * Every backend x strategy x keep_resident_bytes {0, 256 KiB} x dirty
 * tracking {AUTO, OFF} for one reclaim engine, plus one bound on idle
 * resident bytes. Dirty tracking is a userfaultfd feature (WP_ASYNC): on
 * COW and COPY, AUTO resolves to off, so only OFF runs there. For CI's time
 * budget each configuration takes one seed, rotating through the seeds so
 * each is used across the matrix; UFP_MODEL_SEEDS runs every seed given
 * everywhere. Under ThreadSanitizer (~4x slower) the single-threaded runs
 * cover the UFFD backend only (the one with a handler thread racing the
 * test); the concurrent runs cover everything.
 */
static void run_matrix(ufp_reclaim reclaim, uint32_t threads)
{
	static const ufp_dirty_tracking dirty[] = {UFP_DIRTY_AUTO,
						   UFP_DIRTY_OFF};
	static const uint64_t keep[] = {0, KEEP_SOME};
	uint64_t seeds[64];
	size_t nseeds = seeds_from_env(seeds, 64);
	/* CI's time budget: one seed per configuration, rotating, so all
	 * seeds are used across the matrix (UFP_MODEL_SEEDS: every seed) */
	bool every_seed = getenv("UFP_MODEL_SEEDS") != NULL;
	struct ufpm_totals tot = {0};
	struct ufpm_params p;
	size_t config = 0;

	for (size_t b = 0; b < T_NBACKENDS; b++)
		for (size_t s = 0; s < T_NSTRATEGIES; s++)
			for (size_t k = 0; k < 2; k++)
				for (size_t x = 0; x < 2; x++, config++) {
					if (dirty[x] == UFP_DIRTY_AUTO &&
					    t_backends[b] != UFP_BACKEND_UFFD)
						continue;
					if (UNDER_TSAN && threads == 1 &&
					    t_backends[b] != UFP_BACKEND_UFFD &&
					    !getenv("UFP_MODEL_SEEDS"))
						continue;
					for (size_t i = 0; i < nseeds; i++) {
						if (!every_seed &&
						    i != config % nseeds)
							continue;
						ufpm_params_init(&p);
						p.backend = t_backends[b];
						p.reclaim = reclaim;
						p.strategy = t_strategies[s];
						p.keep_resident_bytes = keep[k];
						p.dirty_tracking = dirty[x];
						p.seed = seeds[i];
						p.threads = threads;
						run_config(&p, &tot);
					}
				}
	/* and one bound on idle resident bytes: frees then evict idle slots
	 * through the purge engine */
	for (size_t i = 0; i < nseeds; i++) {
		if (!every_seed && i != config % nseeds)
			continue;
		ufpm_params_init(&p);
		p.backend = UFP_BACKEND_UFFD;
		p.reclaim = reclaim;
		p.keep_resident_bytes = KEEP_SOME;
		p.max_resident_idle_bytes = 128 << 10;
		p.seed = seeds[i];
		p.threads = threads;
		run_config(&p, &tot);
	}
	cr_log_info("model %s x%u: %llu runs, %llu ops, %llu memories, "
		    "%llu modules, %llu bytes compared, %llu EAGAIN (full), "
		    "%llu EAGAIN (purge in flight), %llu EINVAL (dropped "
		    "meanwhile), %llu rejected as expected",
		    t_reclaim_name(reclaim), threads,
		    (unsigned long long)tot.runs, (unsigned long long)tot.ops,
		    (unsigned long long)tot.memories,
		    (unsigned long long)tot.modules,
		    (unsigned long long)tot.bytes_compared,
		    (unsigned long long)tot.eagain_full,
		    (unsigned long long)tot.eagain_purge,
		    (unsigned long long)tot.einval_dropped,
		    (unsigned long long)tot.rejected);
	if (!getenv("UFP_MODEL_ONLY"))
		cr_assert_gt(tot.ops, 0);
}

/* One test per reclaim engine so Criterion spreads them over --jobs. */
Test(model, uring, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_URING, 1);
}
Test(model, sync, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_SYNC, 1);
}
Test(model, process_madvise, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_PROCESS_MADVISE, 1);
}

/* Three threads own disjoint memories but share the modules and the pool;
 * drops race with allocations for the dropped module. */
Test(model_mt, uring, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_URING, 3);
}
Test(model_mt, sync, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_SYNC, 3);
}
Test(model_mt, process_madvise, .timeout = 280)
{
	run_matrix(UFP_RECLAIM_PROCESS_MADVISE, 3);
}

/* The engine must catch what it is for: a byte changed behind the model's
 * back fails the run, and the shrinker finds the op where it happened
 * (guards against a vacuous model or a broken shrinker). */
Test(model, engine_catches_corruption_and_shrinks)
{
	struct ufpm_params p;
	struct ufpm_totals tot = {0};
	struct ufpm_result r;

	ufpm_params_init(&p);
	p.ops = 40;
	enum ufpm_status st = ufpm_run(&p, UFPM_ALL, &tot, &r, NULL);
	if (st == UFPM_SKIP)
		t_skip("%s", r.msg);
	cr_assert_eq(st, UFPM_OK, "%s", r.msg);
	cr_assert_eq(r.ops_run, 40);
	cr_assert_gt(tot.bytes_compared, 0);
	cr_assert_gt(tot.memories, 0);

	p.corrupt_at = 15;
	st = ufpm_run(&p, UFPM_ALL, &tot, &r, NULL);
	cr_assert_eq(st, UFPM_FAIL, "a flipped byte went unnoticed");
	cr_assert_geq(r.fail_step, 15);
	FILE *out = tmpfile();
	cr_assert_not_null(out);
	int n = ufpm_shrink(&p, &r, 0, out);
	cr_assert_eq(n, (int)r.fail_step,
		     "shortest failing prefix %d, the "
		     "flip was at op %u",
		     n, r.fail_step);
	rewind(out);
	char line[512];
	int found = 0;
	while (fgets(line, sizeof(line), out))
		found |= strstr(line, "self-test: flipped") != NULL;
	fclose(out);
	cr_assert(found, "the printed prefix does not show the flip");
}
