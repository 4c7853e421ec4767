/* SPDX-License-Identifier: MIT */
/*
 * soak.c - `ufp-bench soak`: the randomized model test (tests/model.h) on
 * fresh seeds for as long as asked. Not a benchmark: it counts what it
 * checked and how often the library disagreed with the reference model.
 *
 *   ufp-bench [--json] [--quick] soak [--seconds N] [--seed S]
 *
 * Seeds are S, S+1, S+2, ... (S defaults to a value drawn from the clock
 * and printed). Each seed picks a point of the configuration matrix
 * (backend, reclaim engine, strategy, keep_resident_bytes, dirty tracking,
 * slots, max size, fault-around window, 1 or 3 threads, 200..2000 ops)
 * among the backends and engines this machine can create, so
 * `ufp-bench soak --seed S --seconds 0` replays seed S exactly
 * (single-threaded runs; a concurrent run replays its schedule of ops but
 * not its interleaving). A single-threaded failure is shrunk to its
 * shortest failing prefix, printed with its operations (the first failure
 * only, within the soak's time; later ones print seed and message).
 * Exit status 1 if any run failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/model.h"
#include "bench.h"

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	*v = strtoull(s, &end, 0);
	return *s && !*end ? 0 : -1;
}

/* Whether a one-slot pool of this backend and engine can be created. */
static bool can_create(ufp_backend backend, ufp_reclaim reclaim)
{
	ufp_config c;
	ufp_pool *p;
	ufp_config_init(&c);
	c.slots = 1;
	c.max_memory_bytes = 64 << 10;
	c.guard_bytes = 64 << 10;
	c.backend = backend;
	c.reclaim = reclaim;
	if (ufp_pool_create(&c, &p))
		return false;
	(void)!ufp_pool_destroy(p);
	return true;
}

/* Backends and reclaim engines a pool can be created with here. */
static void probe(ufp_backend *bk, size_t *nb, ufp_reclaim *rc, size_t *nr)
{
	static const ufp_backend backends[] = {
		UFP_BACKEND_UFFD, UFP_BACKEND_COW, UFP_BACKEND_COPY};
	static const ufp_reclaim reclaims[] = {UFP_RECLAIM_URING,
					       UFP_RECLAIM_SYNC,
					       UFP_RECLAIM_PROCESS_MADVISE};

	*nb = *nr = 0;
	for (size_t i = 0; i < 3; i++)
		if (can_create(backends[i], UFP_RECLAIM_SYNC))
			bk[(*nb)++] = backends[i];
	for (size_t i = 0; i < 3; i++)
		if (can_create(*nb ? bk[0] : UFP_BACKEND_AUTO, reclaims[i]))
			rc[(*nr)++] = reclaims[i];
}

static int parse(int argc, char **argv, uint64_t *seconds, uint64_t *seed)
{
	bool have_seed = false;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc &&
		    !parse_u64(argv[i + 1], seconds)) {
			i++;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc &&
			   !parse_u64(argv[i + 1], seed)) {
			have_seed = true;
			i++;
		} else {
			fprintf(stderr, "usage: ufp-bench soak [--seconds N] "
					"[--seed S]\n");
			return 2;
		}
	}
	if (!have_seed)
		*seed = (ufpb_now_ns() ^ ((uint64_t)getpid() << 32)) %
			1000000000;
	return 0;
}

/* What the soak ran through: seeds first..last, totals. */
struct soak_run {
	struct ufpm_totals t;
	uint64_t first, last, seeds;
	double secs;
};

/* Model runs on seeds from *seed on until the deadline; the first
 * single-threaded failure is shrunk (on stderr). */
static void soak_runs(struct ufpb *b, uint64_t seconds, uint64_t seed,
		      const ufp_backend *bk, size_t nb, const ufp_reclaim *rc,
		      size_t nr, struct soak_run *out)
{
	uint64_t shrunk = 0;
	uint64_t t0 = ufpb_now_ns(), deadline = t0 + seconds * 1000000000ull;
	out->first = seed;
	do {
		struct ufpm_params p;
		struct ufpm_result r;
		char d[256];

		ufpm_params_from_seed(&p, seed, bk, nb, rc, nr);
		ufpm_describe(&p, d, sizeof(d));
		out->seeds++;
		enum ufpm_status st = ufpm_run(&p, UFPM_ALL, &out->t, &r,
					       p.threads > 1 ? stderr : NULL);
		if (st == UFPM_FAIL) {
			fprintf(stderr,
				"soak: FAILED %s (seed %" PRIu64 "): %s\n", d,
				seed, r.msg);
			if (p.threads == 1 && !shrunk++) {
				uint64_t now = ufpb_now_ns();
				double left =
					(double)(deadline > now ? deadline - now
								: 0) /
					1e9;
				ufpm_shrink(&p, &r, left > 60 ? left : 60,
					    stderr);
			}
		} else if (st == UFPM_SKIP) {
			ufpb_say(b, "soak: seed %" PRIu64 " skipped: %s\n",
				 seed, r.msg);
		}
		seed++;
	} while (ufpb_now_ns() < deadline);
	out->last = seed - 1;
	out->secs = (double)(ufpb_now_ns() - t0) / 1e9;
}

static void report(struct ufpb *b, const struct soak_run *s)
{
	const struct ufpm_totals *t = &s->t;
	ufpb_say(b,
		 "soak: %.1f s, seeds %" PRIu64 "..%" PRIu64 " (%" PRIu64
		 " runs)\n",
		 s->secs, s->first, s->last, s->seeds);
	ufpb_say(b, "  operations run     %" PRIu64 "\n", t->ops);
	ufpb_say(b, "  memories created   %" PRIu64 "\n", t->memories);
	ufpb_say(b, "  modules created    %" PRIu64 "\n", t->modules);
	ufpb_say(b, "  bytes compared     %" PRIu64 "\n", t->bytes_compared);
	ufpb_say(b, "  checkpoints        %" PRIu64 "\n", t->checkpoints);
	ufpb_say(b,
		 "  EAGAIN (pool full) %" PRIu64 ", EAGAIN (purge in "
		 "flight) %" PRIu64
		 ", EINVAL (module dropped meanwhile) %" PRIu64
		 ", bad arguments rejected %" PRIu64 "\n",
		 t->eagain_full, t->eagain_purge, t->einval_dropped,
		 t->rejected);
	ufpb_say(b, "  skipped runs       %" PRIu64 "\n", t->skips);
	ufpb_say(b, "  failures           %" PRIu64 "\n", t->failures);
	ufpb_emit(b, "soak",
		  "\"seconds\": %.1f, \"first_seed\": %" PRIu64
		  ", \"last_seed\": %" PRIu64 ", \"runs\": %" PRIu64
		  ", \"ops\": %" PRIu64 ", \"memories\": %" PRIu64
		  ", \"modules\": %" PRIu64 ", \"bytes_compared\": %" PRIu64
		  ", \"checkpoints\": %" PRIu64 ", \"eagain_full\": %" PRIu64
		  ", \"eagain_purge\": %" PRIu64
		  ", \"einval_dropped\": %" PRIu64 ", \"rejected\": %" PRIu64
		  ", \"skips\": %" PRIu64 ", \"failures\": %" PRIu64,
		  s->secs, s->first, s->last, s->seeds, t->ops, t->memories,
		  t->modules, t->bytes_compared, t->checkpoints, t->eagain_full,
		  t->eagain_purge, t->einval_dropped, t->rejected, t->skips,
		  t->failures);
}

int ufpb_soak(struct ufpb *b, int argc, char **argv)
{
	uint64_t seconds = b->quick ? 2 : 10, seed = 0;
	ufp_backend bk[3];
	ufp_reclaim rc[3];
	size_t nb, nr;

	if (parse(argc, argv, &seconds, &seed))
		return 2;
	probe(bk, &nb, rc, &nr);
	if (!nb || !nr) {
		fprintf(stderr,
			"soak: no pool can be created here (backends "
			"%zu, reclaim engines %zu usable)\n",
			nb, nr);
		return 1;
	}
	ufpb_say(b,
		 "soak: randomized model runs for %" PRIu64 " s from seed "
		 "%" PRIu64 " (not a benchmark)\n",
		 seconds, seed);
	struct soak_run s = {{0}};
	soak_runs(b, seconds, seed, bk, nb, rc, nr, &s);
	report(b, &s);
	return s.t.failures ? 1 : 0;
}
