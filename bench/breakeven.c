/* SPDX-License-Identifier: MIT */
/*
 * breakeven.c - the affinity break-even of `ufp-bench churn`: at which
 * affinity hit rate does UFFD overtake COW?
 *
 * One slot, several modules (1 MiB images). Each cycle instantiates a
 * module, reads every page, writes 5% of them and frees it. With
 * probability h the next cycle uses the same module as the last (an
 * affinity hit: the slot still holds its pages), otherwise another one (a
 * miss: the slot is wiped and everything comes from the image again).
 * The hit rate actually achieved is read back from the pool's counters.
 * Cold uffd faults must copy every page while COW maps the page cache, so
 * COW wins at h = 0; warm reuse is where uffd wins.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#define BE_MODULES 4
#define BE_IMAGE (1u << 20)

struct be_setting {
	const char *name;
	ufp_backend backend;
	ufp_dirty_tracking dirty;
};

static const struct be_setting be_settings[] = {
	{"uffd+dirty", UFP_BACKEND_UFFD, UFP_DIRTY_AUTO},
	{"cow", UFP_BACKEND_COW, UFP_DIRTY_OFF},
};

/* Mean cycle ns at hit probability `permille`; *hit gets the measured
 * hit rate. 0 or -errno. */
static int be_run(const struct be_setting *st, const unsigned char *data,
		  unsigned permille, int cycles, double *mean_ns, double *hit)
{
	const size_t page = ufpi_page_size();
	ufp_config c;
	ufp_pool *pool;
	ufp_module *m[BE_MODULES];
	ufp_stats s0 = {.size = sizeof(s0)}, s1 = s0;
	uint64_t rng = 12345 + permille;
	int err, cur = 0, nm = 0;

	ufp_config_init(&c);
	c.slots = 1;
	c.max_memory_bytes = BE_IMAGE;
	c.guard_bytes = 64 << 10;
	c.backend = st->backend;
	c.dirty_tracking = st->dirty;
	c.reclaim = UFP_RECLAIM_SYNC;
	err = ufp_pool_create(&c, &pool);
	if (err)
		return err;
	for (; nm < BE_MODULES; nm++) {
		ufp_segment seg = {0, data + nm * page, BE_IMAGE - page};
		err = ufp_module_create(pool, &seg, 1, BE_IMAGE, &m[nm]);
		if (err)
			break;
	}
	uint64_t total = 0;
	for (int k = -4; k < cycles && !err; k++) {
		if (k == 0)
			UFPI_IGNORE(ufp_pool_stats(pool, &s0));
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		if ((rng >> 33) % 1000 >= permille)
			cur = (cur + 1 +
			       (int)((rng >> 20) % (BE_MODULES - 1))) %
			      BE_MODULES;
		ufp_memory *mem;
		uint64_t t0 = ufpb_now_ns();
		err = ufp_memory_alloc(pool, m[cur], 0, &mem);
		if (err)
			break;
		volatile unsigned char *b = ufp_memory_base(mem);
		unsigned char sink = 0;
		for (size_t p = 0; p < BE_IMAGE / page; p++) {
			sink ^= b[p * page];
			if (p % 20 == 3)
				b[p * page + 1] = sink;
		}
		err = ufp_memory_free(mem);
		if (k >= 0)
			total += ufpb_now_ns() - t0;
	}
	UFPI_IGNORE(ufp_pool_stats(pool, &s1));
	*mean_ns = (double)total / cycles;
	*hit = (double)(s1.affinity_hits - s0.affinity_hits) /
	       (double)(s1.allocs - s0.allocs);
	for (int k = 0; k < nm; k++)
		UFPI_IGNORE(ufp_module_drop(m[k]));
	UFPI_IGNORE(ufp_pool_destroy(pool));
	return err;
}

int ufpb_churn_breakeven(struct ufpb *b)
{
	static const unsigned rates[] = {0, 250, 500, 750, 1000};
	const int nrates = sizeof(rates) / sizeof(rates[0]);
	const int cycles = b->quick ? 100 : 400;
	double mean[2][5], hit[2][5];
	unsigned char *data = malloc(BE_IMAGE + BE_MODULES * 4096);

	if (!data)
		return 1;
	for (size_t k = 0; k < BE_IMAGE + BE_MODULES * 4096; k++)
		data[k] = (unsigned char)(k * 37 + k / 4096) | 1;
	ufpb_say(b,
		 "\nbreak-even: 1 slot, %d modules with 1 MiB images; a "
		 "cycle reads every page and writes 5%%;\n  the next cycle "
		 "reuses the last module (affinity hit) with probability h. "
		 "Mean cycle over %d cycles, median of %d reps.\n\n",
		 BE_MODULES, cycles, b->reps);
	ufpb_say(b, "  %-8s %14s %14s %10s\n", "h target", "uffd+dirty us",
		 "cow us", "hit rate");
	for (int r = 0; r < nrates; r++) {
		for (int s = 0; s < 2; s++) {
			double v[16], h[16];
			int n = 0;
			for (int rep = 0; rep < b->reps && rep < 16; rep++)
				if (!be_run(&be_settings[s], data, rates[r],
					    cycles, &v[n], &h[n]))
					n++;
			mean[s][r] = ufpb_median(v, (size_t)n);
			hit[s][r] = ufpb_median(h, (size_t)n);
		}
		ufpb_say(b, "  %7u%% %14.1f %14.1f %9.0f%%\n", rates[r] / 10,
			 mean[0][r] / 1000, mean[1][r] / 1000, hit[0][r] * 100);
		ufpb_emit(b, "breakeven",
			  "\"hit_target_permille\": %u, \"hit_rate\": %.3f, "
			  "\"uffd_dirty_ns_mean\": %.0f, \"cow_ns_mean\": %.0f",
			  rates[r], hit[0][r], mean[0][r], mean[1][r]);
	}
	/* first crossing, linearly interpolated between measured rates */
	double be = -1;
	for (int r = 0; r < nrates && be < 0; r++) {
		double d = mean[0][r] - mean[1][r];
		if (d <= 0) {
			if (!r) {
				be = hit[0][0];
			} else {
				double d0 = mean[0][r - 1] - mean[1][r - 1];
				be = hit[0][r - 1] +
				     (hit[0][r] - hit[0][r - 1]) * d0 /
					     (d0 - d);
			}
		}
	}
	if (be >= 0)
		ufpb_say(b,
			 "  => uffd+dirty overtakes cow at an affinity hit "
			 "rate of about %.0f%% (goal <= 50%%: %s)\n",
			 be * 100, be <= 0.5 ? "met" : "MISSED");
	else
		ufpb_say(b, "  => uffd+dirty never overtakes cow here (goal: "
			    "break-even <= 50%%: MISSED)\n");
	ufpb_emit(b, "breakeven_summary", "\"breakeven_hit_rate\": %.3f", be);
	free(data);
	return 0;
}
