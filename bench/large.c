/* SPDX-License-Identifier: MIT */
/*
 * large.c - `ufp-bench large`: a large memory written everywhere (issue 14:
 * a wasm program like `stream` writes 229 MiB).
 *
 *   ufp-bench large [--mib N]      (default 256, --quick 64)
 *
 * Each cycle allocates a memory of N MiB with no module, writes every page
 * (memset), and frees it; alloc + write and the free are timed apart. The
 * baseline is what a runtime without a pool does: an anonymous mmap, the
 * same memset, munmap. One-slot pools, every cycle after the first warm;
 * settings interleaved rep by rep; residency of the pool after the last
 * free beside the time.
 *
 * Target (issue 14): uffd default <= 1.2x the anonymous mmap + write +
 * munmap; and the free of the written memory no dearer than dropping its
 * range (the munmap).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "internal.h"

#define LARGE_TARGET 1.2
#define MAX_SAMPLES 64

struct lres {
	double total[MAX_SAMPLES], freed[MAX_SAMPLES];
	size_t n;
	struct ufpb_resid idle; /* after the last free, against before */
	int err;
};

static void sample(struct lres *r, uint64_t t0, uint64_t t1, uint64_t t2)
{
	if (r->n < MAX_SAMPLES) {
		r->total[r->n] = (double)(t2 - t0);
		r->freed[r->n++] = (double)(t2 - t1);
	}
}

static void run_pool(const struct ufpb_setting *st, size_t bytes, int cycles,
		     struct lres *r)
{
	ufp_pool *pool = NULL;
	struct ufpb_resid base, now;
	r->err = ufpb_resid_read(NULL, &base);
	if (!r->err)
		r->err = ufpb_pool_open(st, 1, bytes, &pool, NULL);
	for (int k = -1; k < cycles && !r->err; k++) {
		ufp_memory *mem;
		uint64_t t0 = ufpb_now_ns();
		r->err = ufp_memory_alloc(pool, NULL, bytes, &mem);
		if (r->err)
			break;
		memset(ufp_memory_base(mem), 0x5a, bytes);
		uint64_t t1 = ufpb_now_ns();
		r->err = ufp_memory_free(mem);
		uint64_t t2 = ufpb_now_ns();
		if (k >= 0) /* one warm-up */
			sample(r, t0, t1, t2);
	}
	if (!r->err)
		r->err = ufpb_resid_read(pool, &now);
	if (!r->err)
		ufpb_resid_sub(&r->idle, &now, &base);
	ufpb_pool_close(pool, NULL, 0);
}

static void run_anon(size_t bytes, int cycles, struct lres *r)
{
	struct ufpb_resid base, now;
	r->err = ufpb_resid_read(NULL, &base);
	for (int k = -1; k < cycles && !r->err; k++) {
		uint64_t t0 = ufpb_now_ns();
		void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			       0);
		if (p == MAP_FAILED) {
			r->err = -errno;
			return;
		}
		memset(p, 0x5a, bytes);
		uint64_t t1 = ufpb_now_ns();
		munmap(p, bytes);
		uint64_t t2 = ufpb_now_ns();
		if (k >= 0)
			sample(r, t0, t1, t2);
	}
	if (!r->err)
		r->err = ufpb_resid_read(NULL, &now);
	if (!r->err)
		ufpb_resid_sub(&r->idle, &now, &base);
}

static void row(struct ufpb *b, const char *name, struct lres *r, double *tot,
		double *fr)
{
	if (r->err) {
		ufpb_say(b, "  %-26s %s\n", name, ufp_strerror(r->err));
		return;
	}
	*tot = ufpb_median(r->total, r->n);
	*fr = ufpb_median(r->freed, r->n);
	char cols[160], js[512];
	ufpb_say(b, "  %-26s %10.1f %10.1f %s\n", name, *tot / 1000, *fr / 1000,
		 ufpb_resid_cols(&r->idle, cols, sizeof(cols)));
	ufpb_emit(b, "large",
		  "\"setting\": \"%s\", \"cycle_ns\": %.0f, \"free_ns\": %.0f, "
		  "%s",
		  name, *tot, *fr,
		  ufpb_resid_json(&r->idle, "idle", js, sizeof(js)));
}

int ufpb_large(struct ufpb *b, int argc, char **argv)
{
	int mib = 0;
	for (int i = 0; i < argc; i++) {
		if (ufpb_common_arg(b, argc, argv, &i) ||
		    ufpb_int_arg(argc, argv, &i, "--mib", 1, &mib))
			continue;
		fprintf(stderr, "usage: ufp-bench large [--json] [--quick] "
				"[--reps N] [--mib N]\n");
		return 2;
	}
	if (!mib)
		mib = b->quick ? 64 : 256;
	const size_t bytes = (size_t)mib << 20;
	const int cycles = 3, reps = b->reps * cycles > MAX_SAMPLES
					     ? MAX_SAMPLES / cycles
					     : b->reps;
	const struct ufpb_setting *def = &ufpb_settings[UFPB_SET_UFFD_DEFAULT],
				  *cow = &ufpb_settings[UFPB_SET_COW_KEEP0],
				  *k0 = &ufpb_settings[UFPB_SET_UFFD_MINOR];
	/* the default keeps up to 1 MiB of written pages (UFP_KEEP_AUTO);
	 * keep=0 is the comparison at equal private residency */
	struct lres r[4];
	memset(r, 0, sizeof(r));
	for (int rep = 0; rep < reps; rep++) {
		run_pool(def, bytes, cycles, &r[0]);
		run_pool(cow, bytes, cycles, &r[1]);
		run_anon(bytes, cycles, &r[2]);
		run_pool(k0, bytes, cycles, &r[3]);
	}
	ufpb_say(b,
		 "large: alloc a %zu MiB memory (no module), write every "
		 "page, free; %d reps x %d cycles,\n"
		 "  medians; residency after the last free, against before "
		 "the setting ran:\n",
		 (size_t)mib, reps, cycles);
	ufpb_resid_explain(b);
	ufpb_say(b, "\n  %-26s %10s %10s %s\n", "setting", "cycle us",
		 "free us", ufpb_resid_head());
	double tot[4] = {0}, fr[4] = {0};
	row(b, def->name, &r[0], &tot[0], &fr[0]);
	row(b, cow->name, &r[1], &tot[1], &fr[1]);
	row(b, "mmap+memset+munmap", &r[2], &tot[2], &fr[2]);
	row(b, k0->name, &r[3], &tot[3], &fr[3]);
	if (r[0].err || r[2].err || !tot[2] || !fr[2])
		return 1;
	ufpb_say(b, "\n  targets (issue 14), medians of this run:\n");
	ufpb_verdict(b, "large", "uffd_default_vs_anon",
		     "uffd default / anonymous mmap+write+munmap",
		     tot[0] / tot[2], LARGE_TARGET, 1);
	ufpb_verdict(b, "large", "uffd_default_free_vs_munmap",
		     "uffd default free / munmap of the written range",
		     fr[0] / fr[2], 1.0, 1);
	if (!r[3].err)
		ufpb_verdict(b, "large", "uffd_keep0_vs_anon",
			     "uffd keep=0 / anonymous (equal private bytes)",
			     tot[3] / tot[2], LARGE_TARGET, 1);
	return 0;
}
