/* SPDX-License-Identifier: MIT */
/*
 * prefetch.c - `ufp-bench prefetch`: working-set prefetch on cold starts
 * (issue 11), against the same cold cycle without it and against COW.
 *
 *   ufp-bench prefetch [--image-kib K] [--touch-pct P] [--write-pct W]
 *                      [--cycles N] [--trace] [--json] [--quick] [--reps N]
 *
 * An image of K KiB (default 16384, every page non-zero). Each instance
 * reads one byte of P% of the image pages (default 30), a fixed
 * pseudo-random subset in a fixed pseudo-random order, and writes W% of
 * the pages it touches (default 0). Two variants:
 *   fixed    every instance touches the same set in the same order;
 *   varying  instance j touches the base set with 10% of it replaced by
 *            other random pages (seeded by j), in the base order.
 * Cold cycle = alloc + touch + free, every allocation a cold start: two
 * modules of the same shape (different bytes) alternate in a one-slot
 * pool. Settings, interleaved rep by rep in one run: UFFD fill=MINOR with
 * prefetch AUTO, the same with prefetch OFF, COW keep 0.
 *
 * With prefetch AUTO the first cold start of each module learns (and
 * every 16th after it): those cycles are reported apart ("learn us", the
 * price of prefetch), the cold figure is the median of the cycles that
 * prefetched. The first cold start of each module in each rep is a
 * warm-up, not in any figure but the learning one.
 *
 * Per cold start (medians): faults (stats `faults` delta; COW has no
 * handler: its kernel page faults are the minflt column, from
 * getrusage(RUSAGE_THREAD) of the touching thread, for every setting),
 * pages prefetched, and after the touch, before the free, a PAGEMAP_SCAN
 * of the slot: pages mapped but never touched by this instance ("mapped
 * untouched", whatever mapped them: prefetch, fault-around windows, the
 * kernel's fault-around for COW), and of those the pages of the learned
 * set ("waste": prefetched, never touched), as a fraction of the pages
 * prefetched. The last cycles of each run (4) are the measured ones:
 * untimed, they scan, read the residency live and after free, and time
 * each touch; in the varying variant, the latency of the touches of pages
 * outside the base set (faults served while prefetch works on the rest)
 * is the handler's fault latency for non-prefetched pages (p50 and p99).
 *
 * --trace prints on stderr, for each measured UFFD cycle, the touches
 * that took over 2 us as position-in-order:us (the faults, in order).
 *
 * Warm rows: one module back in its affine slot, prefetch AUTO against
 * OFF (prefetch must cost a warm cycle nothing).
 *
 * Targets (issue 11), per variant: cold with prefetch <= 0.8x COW cold,
 * <= 0.6x cold without prefetch; faults per cold start <= 10% of those
 * without; waste <= 15% of the pages prefetched. Not worse (within a 10%
 * noise margin, this bench's choice): warm cycle, fault latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"
#include "kernel_uapi.h"

#define MAX_REPS 16
#define MEASURED 4   /* untimed measuring cycles at the end of each run */
#define WARMUP 2     /* first cold start of each module */
#define RELEARN 16   /* the library learns again every 16th cold start */
#define NOWORSE 1.10 /* noise margin for "not worse" */

enum { S_PF, S_NOPF, S_COW, NS };
static const struct ufpb_setting settings[NS] = {
	[S_PF] = {"uffd MINOR prefetch", UFP_BACKEND_UFFD, UFP_FILL_MINOR,
		  UFP_DIRTY_AUTO, 0},
	[S_NOPF] = {"uffd MINOR no prefetch", UFP_BACKEND_UFFD, UFP_FILL_MINOR,
		    UFP_DIRTY_AUTO, 0, .prefetch = UFP_PREFETCH_OFF},
	[S_COW] = {"cow keep=0", UFP_BACKEND_COW, UFP_FILL_AUTO, UFP_DIRTY_OFF,
		   0, .prefetch = UFP_PREFETCH_OFF},
};

struct params {
	size_t image;	   /* bytes */
	unsigned touch_pm; /* of image pages, per mille */
	unsigned write_pm; /* of touched pages, per mille */
	int cycles;	   /* timed cycles per run (after the warm-up) */
	int reps;
};

struct result {
	uint64_t wrong; /* mapped pages whose bytes differ from the image */
	struct ufpb_vec ns, learn_ns; /* cold (prefetched / all) and learning */
	struct ufpb_vec cpu_ns;	      /* process CPU time of the cold cycles */
	struct ufpb_vec alloc_ns, touch_ns, free_ns; /* phases of those */
	struct ufpb_vec faults, minflt;		     /* per timed cold start */
	struct ufpb_vec prefetched, pf_faults, raced;
	struct ufpb_vec untouched, waste, waste_frac; /* measured cycles */
	struct ufpb_vec lat_out; /* touches outside the base set */
	struct ufpb_resid live[MAX_REPS * MEASURED], idle[MAX_REPS * MEASURED];
	size_t nres;
	struct ufpb_vec warm_ns, warm_faults; /* warm rows */
	ufp_fill_mode fill;
	int err;
};

/* The instances' page orders. */
struct work {
	uint64_t pages;	 /* image pages */
	uint32_t *order; /* every page, shuffled: base set = order[0..n) */
	size_t n;	 /* pages an instance touches */
	int varying;
	int trace; /* --trace: slow touches of measured cycles on stderr */
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Instance j's order into out[0..n); outside[k] = 1 where out[k] is not a
 * base page. tmp holds n + pages entries. */
static void instance_order(const struct work *w, uint64_t j, uint32_t *out,
			   uint8_t *outside, uint32_t *tmp)
{
	memcpy(out, w->order, w->n * sizeof(*out));
	memset(outside, 0, w->n);
	if (!w->varying || w->n == w->pages)
		return;
	size_t r = w->n / 10, rest = w->pages - w->n;
	if (r > rest)
		r = rest;
	/* r positions of the base order get r distinct pages of the rest,
	 * both chosen by seeds of j */
	uint32_t *perm = tmp + w->n;
	ufpb_shuffle(tmp, w->n, mix(j + 1));
	ufpb_shuffle(perm, rest, mix(j + 0x5eed));
	for (size_t k = 0; k < r; k++) {
		out[tmp[k]] = w->order[w->n + perm[k]];
		outside[tmp[k]] = 1;
	}
}

static void touch(unsigned char *base, const uint32_t *ord, size_t n,
		  unsigned write_pm, double *lat)
{
	const size_t page = ufpi_page_size();
	volatile unsigned char *b = base;
	unsigned char sink = 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t t0 = lat ? ufpb_now_ns() : 0;
		sink ^= b[(size_t)ord[k] * page];
		if ((k * 2654435761u) % 1000 < write_pm)
			b[(size_t)ord[k] * page + 1] = sink;
		if (lat)
			lat[k] = (double)(ufpb_now_ns() - t0);
	}
}

static uint64_t minflt(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

struct present_walk {
	uint64_t base;
	uint8_t *present;
};

static int mark_present(void *arg, uint64_t start, uint64_t end, uint64_t cats)
{
	const struct present_walk *w = arg;
	const size_t page = ufpi_page_size();
	(void)cats;
	for (uint64_t p = start; p < end; p += page)
		w->present[(p - w->base) / page] = 1;
	return 0;
}

/* present[p] = 1 for every page of [base, base + pages) mapped now. */
static int scan_present(int fd, unsigned char *base, uint64_t pages,
			uint8_t *present)
{
	const struct ufpi_pm_query q = {.mask = PAGE_IS_PRESENT,
					.ret = PAGE_IS_PRESENT};
	struct present_walk w = {(uint64_t)(uintptr_t)base, present};
	memset(present, 0, pages);
	return ufpi_os_pagemap_scan(fd, base, pages * ufpi_page_size(), &q,
				    mark_present, &w);
}

/* inset[p] = 1 for the pages of m's learned working set (internal). */
static void learned_set(ufp_module *m, uint64_t pages, uint8_t *inset)
{
	struct ufpi_image *img = m->image;
	memset(inset, 0, pages);
	pthread_mutex_lock(&img->wset_lock);
	for (uint32_t k = 0; k < img->nwset; k++)
		for (uint32_t p = img->wset[k].page;
		     p < img->wset[k].page + img->wset[k].n && p < pages; p++)
			inset[p] = 1;
	pthread_mutex_unlock(&img->wset_lock);
}

struct scratch {
	uint32_t *ord, *tmp;
	uint8_t *outside, *present, *inset, *touched;
	double *lat;
	int pagemap_fd;
};

/* Clocks and counters around one cold cycle: t0 alloc, ta allocated, t1
 * touched, t2 free, t3 freed; c* the process's CPU time at t0, t1, t2, t3;
 * f* the thread's minor faults around alloc and touch; s* the pool's
 * stats before and after. */
struct cold_clock {
	uint64_t t0, ta, t1, t2, t3, c0, c1, c2, c3, f0, f1;
	ufp_stats s0, s1;
};

/* Pages mapped after the touch that it never touched, and of those the
 * learned set's (prefetched and wasted). */
static void count_untouched(int s, const struct work *w, struct scratch *x,
			    uint64_t *un, uint64_t *waste)
{
	memset(x->touched, 0, w->pages);
	for (size_t i = 0; i < w->n; i++)
		x->touched[x->ord[i]] = 1;
	*un = *waste = 0;
	for (uint64_t p = 0; p < w->pages; p++)
		if (x->present[p] && !x->touched[p]) {
			(*un)++;
			*waste += s == S_PF && x->inset[p];
		}
}

/* Every mapped page holds the image's bytes (byte 1 of a written page is
 * the bench's): the mapped pages that do not. */
static uint64_t count_wrong(const struct work *w, const struct scratch *x,
			    const unsigned char *b, const unsigned char *image)
{
	const size_t page = ufpi_page_size();
	uint64_t wrong = 0;
	for (uint64_t p = 0; p < w->pages; p++) {
		const unsigned char *g = b + p * page, *want = image + p * page;
		if (x->present[p] &&
		    (g[0] != want[0] || memcmp(g + 2, want + 2, page - 2)))
			wrong++;
	}
	return wrong;
}

/* --trace: the touches of cycle k that took over 2 us, on stderr. */
static void trace_slow(int s, const struct work *w, const struct scratch *x,
		       int k)
{
	fprintf(stderr, "%s %s cycle %d:", w->varying ? "varying" : "fixed",
		settings[s].name, k);
	for (size_t i = 0; i < w->n; i++)
		if (x->lat[i] > 2000)
			fprintf(stderr, " %zu:%.0f", i, x->lat[i] / 1000);
	fprintf(stderr, "\n");
}

/* A measured cycle, the memory live at b after its touch: what is mapped
 * (PAGEMAP_SCAN), the residency, waste, wrong bytes, the latency of the
 * touches outside the base set. 0 or -errno. */
static int inspect_live(int s, const struct work *w, struct scratch *x,
			ufp_pool *pool, const unsigned char *b,
			const unsigned char *image,
			const struct ufpb_resid *base, struct cold_clock *ck,
			int k, struct result *r)
{
	struct ufpb_resid now;
	uint64_t un, waste;
	int err = scan_present(x->pagemap_fd, (unsigned char *)b, w->pages,
			       x->present);
	if (!err)
		err = ufpb_resid_read(pool, &now);
	size_t q = r->nres < MAX_REPS * MEASURED ? r->nres++
						 : MAX_REPS * MEASURED - 1;
	ufpb_resid_sub(&r->live[q], &now, base);
	UFPI_IGNORE(ufp_pool_stats(pool, &ck->s1));
	count_untouched(s, w, x, &un, &waste);
	ufpb_vec_push(&r->untouched, (double)un);
	r->wrong += count_wrong(w, x, b, image);
	uint64_t pf = ck->s1.pages_prefetched - ck->s0.pages_prefetched;
	if (s == S_PF && ck->s1.prefetch_starts > ck->s0.prefetch_starts) {
		ufpb_vec_push(&r->waste, (double)waste);
		ufpb_vec_push(&r->waste_frac,
			      pf ? (double)waste / (double)pf : 0);
	}
	if (w->trace && s != S_COW)
		trace_slow(s, w, x, k);
	if (w->varying)
		for (size_t i = 0; i < w->n; i++)
			if (x->outside[i])
				ufpb_vec_push(&r->lat_out, x->lat[i]);
	return err;
}

/* A timed cold cycle k: learning ones apart, warm-ups in no figure. */
static void record_cold(const struct cold_clock *ck, int k, struct result *r)
{
	const ufp_stats *s0 = &ck->s0, *s1 = &ck->s1;
	double ns = (double)(ck->t1 - ck->t0 + ck->t3 - ck->t2);
	int learned = s1->prefetch_learns > s0->prefetch_learns;
	if (learned)
		ufpb_vec_push(&r->learn_ns, ns);
	if (k < WARMUP || learned)
		return;
	ufpb_vec_push(&r->ns, ns);
	ufpb_vec_push(&r->cpu_ns, (double)(ck->c1 - ck->c0 + ck->c3 - ck->c2));
	ufpb_vec_push(&r->alloc_ns, (double)(ck->ta - ck->t0));
	ufpb_vec_push(&r->touch_ns, (double)(ck->t1 - ck->ta));
	ufpb_vec_push(&r->free_ns, (double)(ck->t3 - ck->t2));
	ufpb_vec_push(&r->faults, (double)(s1->faults - s0->faults));
	ufpb_vec_push(&r->minflt, (double)(ck->f1 - ck->f0));
	ufpb_vec_push(&r->prefetched,
		      (double)(s1->pages_prefetched - s0->pages_prefetched));
	ufpb_vec_push(&r->pf_faults,
		      (double)(s1->prefetch_faults - s0->prefetch_faults));
	ufpb_vec_push(&r->raced,
		      (double)(s1->prefetch_raced - s0->prefetch_raced));
}

/* One rep of cold cycles with setting s; appends to r. */
static void run_cold(const struct params *pa, int s, const struct work *w,
		     unsigned char *const data[2], struct scratch *x,
		     struct result *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m[2] = {NULL, NULL};
	struct ufpb_resid base;

	r->err = ufpb_resid_read(NULL, &base);
	if (!r->err)
		r->err = ufpb_pool_open(&settings[s], 1, pa->image, &pool,
					&r->fill);
	for (int k = 0; k < 2 && !r->err; k++)
		r->err = ufpb_module(pool, data[k], pa->image, 0, &m[k]);
	const int total = WARMUP + pa->cycles + MEASURED;
	for (int k = 0; k < total && !r->err; k++) {
		const int measured = k >= WARMUP + pa->cycles;
		ufp_module *mod = m[k & 1];
		struct cold_clock ck = {.s0 = {.size = sizeof(ufp_stats)},
					.s1 = {.size = sizeof(ufp_stats)}};
		ufp_memory *mem;

		instance_order(w, (uint64_t)k, x->ord, x->outside, x->tmp);
		if (measured && s == S_PF)
			learned_set(mod, w->pages, x->inset);
		UFPI_IGNORE(ufp_pool_stats(pool, &ck.s0));
		ck.f0 = minflt();
		ck.c0 = ufpb_cpu_ns();
		ck.t0 = ufpb_now_ns();
		r->err = ufp_memory_alloc(pool, mod, 0, &mem);
		if (r->err)
			break;
		ck.ta = ufpb_now_ns();
		unsigned char *b = ufp_memory_base(mem);
		touch(b, x->ord, w->n, pa->write_pm, measured ? x->lat : NULL);
		ck.t1 = ufpb_now_ns();
		ck.c1 = ufpb_cpu_ns();
		ck.f1 = minflt();
		if (measured)
			r->err = inspect_live(s, w, x, pool, b, data[k & 1],
					      &base, &ck, k, r);
		ck.c2 = ufpb_cpu_ns();
		ck.t2 = ufpb_now_ns();
		int e = ufp_memory_free(mem);
		ck.t3 = ufpb_now_ns();
		ck.c3 = ufpb_cpu_ns();
		r->err = r->err ? r->err : e;
		if (r->err)
			break;
		UFPI_IGNORE(ufp_pool_stats(pool, &ck.s1));
		if (measured) {
			struct ufpb_resid now;
			r->err = ufpb_resid_read(pool, &now);
			ufpb_resid_sub(&r->idle[r->nres - 1], &now, &base);
			continue;
		}
		record_cold(&ck, k, r);
	}
	ufpb_pool_close(pool, m, 2);
}

/* One rep of warm cycles (one module, its affine slot) with setting s. */
static void run_warm(const struct params *pa, int s, const struct work *w,
		     const unsigned char *data, struct scratch *x,
		     struct result *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m = NULL;
	ufp_fill_mode fill;

	int err = ufpb_pool_open(&settings[s], 1, pa->image, &pool, &fill);
	if (!err)
		err = ufpb_module(pool, data, pa->image, 0, &m);
	instance_order(w, 0, x->ord, x->outside, x->tmp);
	for (int k = 0; k < WARMUP + pa->cycles && !err; k++) {
		ufp_stats s0 = {.size = sizeof(s0)}, s1 = s0;
		ufp_memory *mem;
		UFPI_IGNORE(ufp_pool_stats(pool, &s0));
		uint64_t t0 = ufpb_now_ns();
		err = ufp_memory_alloc(pool, m, 0, &mem);
		if (err)
			break;
		touch(ufp_memory_base(mem), x->ord, w->n, pa->write_pm, NULL);
		err = ufp_memory_free(mem);
		uint64_t t1 = ufpb_now_ns();
		UFPI_IGNORE(ufp_pool_stats(pool, &s1));
		if (k < WARMUP)
			continue;
		ufpb_vec_push(&r->warm_ns, (double)(t1 - t0));
		ufpb_vec_push(&r->warm_faults, (double)(s1.faults - s0.faults));
	}
	if (err && !r->err)
		r->err = err;
	ufpb_pool_close(pool, &m, 1);
}

/* One setting's cold row: times, faults, prefetch, waste (JSON: with the
 * residency medians). */
static void cold_row(struct ufpb *b, const char *variant,
		     const struct params *pa, int s, struct result *r)
{
	char label[48], js[2][512];
	snprintf(label, sizeof(label), "%s%s", settings[s].name,
		 ufpb_fill_note(&settings[s], r->fill));
	if (r->err) {
		ufpb_say(b, "  %-24s %s\n", label, ufp_strerror(r->err));
		return;
	}
	double cold = ufpb_vec_median(&r->ns),
	       p90 = ufpb_percentile(r->ns.v, r->ns.n, 90);
	double learn = s == S_PF ? ufpb_vec_median(&r->learn_ns) : 0;
	double wf = s == S_PF ? ufpb_vec_median(&r->waste_frac) : 0;
	char learn_s[16] = "-", wf_s[16] = "-";
	if (s == S_PF) {
		snprintf(learn_s, sizeof(learn_s), "%.1f", learn / 1000);
		snprintf(wf_s, sizeof(wf_s), "%.1f%%", 100 * wf);
	}
	ufpb_say(b,
		 "  %-24s %8.1f %8.1f %8s %7.0f %7.0f %7.0f %7.0f "
		 "%8.0f %6s\n",
		 label, cold / 1000, p90 / 1000, learn_s,
		 ufpb_vec_median(&r->faults), ufpb_vec_median(&r->minflt),
		 ufpb_vec_median(&r->prefetched), ufpb_vec_median(&r->raced),
		 ufpb_vec_median(&r->untouched), wf_s);
	struct ufpb_resid live, idle;
	ufpb_resid_median(r->live, r->nres, &live);
	ufpb_resid_median(r->idle, r->nres, &idle);
	ufpb_emit(b, "prefetch",
		  "\"variant\": \"%s\", \"setting\": \"%s\", "
		  "\"fill\": \"%s\", \"image_bytes\": %zu, "
		  "\"touch_permille\": %u, \"write_permille\": %u, "
		  "\"cold_ns_median\": %.0f, \"cold_ns_p90\": %.0f, "
		  "\"cold_starts\": %zu, \"learn_ns_median\": %.0f, "
		  "\"learn_starts\": %zu, \"faults_per_cold\": %.1f, "
		  "\"minflt_per_cold\": %.1f, "
		  "\"pages_prefetched_per_cold\": %.1f, "
		  "\"prefetch_faults_per_cold\": %.1f, "
		  "\"prefetch_raced_per_cold\": %.1f, "
		  "\"mapped_untouched_pages\": %.1f, "
		  "\"waste_pages\": %.1f, \"waste_fraction\": %.4f, "
		  "%s, %s",
		  variant, settings[s].name, ufpb_fill_name(r->fill), pa->image,
		  pa->touch_pm, pa->write_pm, cold, p90, r->ns.n, learn,
		  r->learn_ns.n, ufpb_vec_median(&r->faults),
		  ufpb_vec_median(&r->minflt), ufpb_vec_median(&r->prefetched),
		  ufpb_vec_median(&r->pf_faults), ufpb_vec_median(&r->raced),
		  ufpb_vec_median(&r->untouched),
		  s == S_PF ? ufpb_vec_median(&r->waste) : 0, wf,
		  ufpb_resid_json(&live, "live", js[0], sizeof(js[0])),
		  ufpb_resid_json(&idle, "freed", js[1], sizeof(js[1])));
}

/* How the faults of prefetched cold starts spread. */
static void fault_spread(struct ufpb *b, const char *variant, struct result *r)
{
	if (r[S_PF].err || !r[S_PF].faults.n)
		return;
	struct ufpb_vec *f = &r[S_PF].faults;
	double p10 = ufpb_percentile(f->v, f->n, 10),
	       p90 = ufpb_percentile(f->v, f->n, 90);
	ufpb_say(b,
		 "  faults per prefetched cold start: p10 %.0f, p50 "
		 "%.0f, p90 %.0f, max %.0f (of %zu)\n",
		 p10, ufpb_vec_median(f), p90, f->v[f->n - 1], f->n);
	ufpb_emit(b, "prefetch",
		  "\"variant\": \"%s\", \"setting\": \"%s\", "
		  "\"faults_p10\": %.0f, \"faults_p50\": %.0f, "
		  "\"faults_p90\": %.0f, \"faults_max\": %.0f",
		  variant, settings[S_PF].name, p10, ufpb_vec_median(f), p90,
		  f->v[f->n - 1]);
}

static void phases(struct ufpb *b, struct result *r)
{
	ufpb_say(b,
		 "  phases of a cold cycle, median us: alloc / touch / free; "
		 "cpu = CPU time of the process\n  (both threads) per cold "
		 "cycle, which waits for a CPU do not count\n");
	for (int s = 0; s < NS; s++)
		if (!r[s].err)
			ufpb_say(b, "  %-24s %8.1f %8.1f %8.1f  cpu %8.1f\n",
				 settings[s].name,
				 ufpb_vec_median(&r[s].alloc_ns) / 1000,
				 ufpb_vec_median(&r[s].touch_ns) / 1000,
				 ufpb_vec_median(&r[s].free_ns) / 1000,
				 ufpb_vec_median(&r[s].cpu_ns) / 1000);
}

static void resid_rows(struct ufpb *b, const struct result *r)
{
	char cols[2][160];
	ufpb_say(b, "  residency in KiB, measured cycles (median): live, "
		    "then freed\n");
	ufpb_say(b, "  %-24s %4s%s\n", "setting", "", ufpb_resid_head());
	for (int s = 0; s < NS; s++) {
		struct ufpb_resid live, idle;
		if (r[s].err)
			continue;
		ufpb_resid_median(r[s].live, r[s].nres, &live);
		ufpb_resid_median(r[s].idle, r[s].nres, &idle);
		ufpb_say(b, "  %-24s live%s\n", settings[s].name,
			 ufpb_resid_cols(&live, cols[0], sizeof(cols[0])));
		ufpb_say(b, "  %-24s free%s\n", "",
			 ufpb_resid_cols(&idle, cols[1], sizeof(cols[1])));
	}
}

/* The varying variant: first touches of pages outside the base set, the
 * handler's fault latency while prefetch works on the rest. */
static void outside_latency(struct ufpb *b, const char *variant,
			    struct result *r)
{
	if (!r[S_PF].lat_out.n || !r[S_NOPF].lat_out.n)
		return;
	ufpb_say(b,
		 "  first touch of pages outside the base set "
		 "(%zu / %zu touches), us:\n",
		 r[S_PF].lat_out.n, r[S_NOPF].lat_out.n);
	for (int s = S_PF; s <= S_NOPF; s++) {
		struct ufpb_vec *v = &r[s].lat_out;
		double p50 = ufpb_vec_median(v),
		       p90 = ufpb_percentile(v->v, v->n, 90),
		       p99 = ufpb_percentile(v->v, v->n, 99);
		ufpb_say(b, "  %-24s p50 %6.2f  p90 %6.2f  p99 %7.2f\n",
			 settings[s].name, p50 / 1000, p90 / 1000, p99 / 1000);
		ufpb_emit(b, "prefetch",
			  "\"variant\": \"%s\", \"setting\": \"%s\", "
			  "\"outside_touch_ns_p50\": %.0f, "
			  "\"outside_touch_ns_p90\": %.0f, "
			  "\"outside_touch_ns_p99\": %.0f, "
			  "\"touches\": %zu",
			  variant, settings[s].name, p50, p90, p99, v->n);
	}
}

static void print_rows(struct ufpb *b, const char *variant,
		       const struct params *pa, struct result *r)
{
	for (int s = 0; s < NS; s++)
		if (r[s].wrong)
			ufpb_say(b,
				 "  %s: %llu mapped pages did NOT hold the "
				 "image's bytes\n",
				 settings[s].name,
				 (unsigned long long)r[s].wrong);
	ufpb_say(b, "  %-24s %8s %8s %8s %7s %7s %7s %7s %8s %6s\n", "setting",
		 "cold us", "p90 us", "learn us", "faults", "minflt",
		 "pf pages", "raced", "untouchd", "waste");
	for (int s = 0; s < NS; s++)
		cold_row(b, variant, pa, s, &r[s]);
	fault_spread(b, variant, r);
	phases(b, r);
	resid_rows(b, r);
	outside_latency(b, variant, r);
}

static void verdicts(struct ufpb *b, const char *variant, struct result *r)
{
	char what[96], tgt[64];
	if (r[S_PF].err || r[S_NOPF].err || r[S_COW].err || !r[S_PF].ns.n)
		return;
	double pf = ufpb_vec_median(&r[S_PF].ns),
	       nopf = ufpb_vec_median(&r[S_NOPF].ns),
	       cow = ufpb_vec_median(&r[S_COW].ns);
	ufpb_say(b, "  targets (issue 11), medians of this run:\n");
	snprintf(what, sizeof(what), "%s cold: prefetch / cow keep=0", variant);
	snprintf(tgt, sizeof(tgt), "%s_cold_prefetch_vs_cow", variant);
	ufpb_verdict(b, "prefetch", tgt, what, pf / cow, 0.8, 1);
	snprintf(what, sizeof(what), "%s cold: prefetch / no prefetch",
		 variant);
	snprintf(tgt, sizeof(tgt), "%s_cold_prefetch_vs_off", variant);
	ufpb_verdict(b, "prefetch", tgt, what, pf / nopf, 0.6, 1);
	double f0 = ufpb_vec_median(&r[S_NOPF].faults);
	snprintf(what, sizeof(what), "%s faults/cold: prefetch / no prefetch",
		 variant);
	snprintf(tgt, sizeof(tgt), "%s_faults_prefetch_vs_off", variant);
	ufpb_verdict(b, "prefetch", tgt, what,
		     f0 ? ufpb_vec_median(&r[S_PF].faults) / f0 : 0, 0.10, 1);
	snprintf(what, sizeof(what), "%s waste / pages prefetched", variant);
	snprintf(tgt, sizeof(tgt), "%s_waste_fraction", variant);
	ufpb_verdict(b, "prefetch", tgt, what,
		     ufpb_vec_median(&r[S_PF].waste_frac), 0.15, 1);
	double pfp = ufpb_vec_median(&r[S_PF].prefetched);
	ufpb_say(b,
		 "  (every page mapped and not touched, prefetched or filled "
		 "by a fault's window: %.0f = %.2f of the pages prefetched)\n",
		 ufpb_vec_median(&r[S_PF].untouched),
		 pfp ? ufpb_vec_median(&r[S_PF].untouched) / pfp : 0);
	if (r[S_PF].lat_out.n && r[S_NOPF].lat_out.n) {
		snprintf(what, sizeof(what),
			 "%s outside-set touch p50: prefetch / no", variant);
		snprintf(tgt, sizeof(tgt), "%s_fault_latency_vs_off", variant);
		ufpb_verdict(b, "prefetch", tgt, what,
			     ufpb_vec_median(&r[S_PF].lat_out) /
				     ufpb_vec_median(&r[S_NOPF].lat_out),
			     NOWORSE, 1);
		struct ufpb_vec *a = &r[S_PF].lat_out, *o = &r[S_NOPF].lat_out;
		snprintf(what, sizeof(what),
			 "%s outside-set touch p99: prefetch / no", variant);
		snprintf(tgt, sizeof(tgt), "%s_fault_latency_p99_vs_off",
			 variant);
		ufpb_verdict(b, "prefetch", tgt, what,
			     ufpb_percentile(a->v, a->n, 99) /
				     ufpb_percentile(o->v, o->n, 99),
			     NOWORSE, 1);
	}
	/* what a learning start costs, spread over the cold starts of a
	 * set's life (one learns, RELEARN - 1 prefetch) */
	double learn = ufpb_vec_median(&r[S_PF].learn_ns);
	double amort = (learn + (RELEARN - 1) * pf) / RELEARN;
	ufpb_say(b,
		 "  learning cycle %.1f us = %.2fx no prefetch; amortized "
		 "over %d cold starts %.1f us = %.2fx no prefetch, %.2fx "
		 "cow\n",
		 learn / 1000, learn / nopf, RELEARN, amort / 1000,
		 amort / nopf, amort / cow);
	double cpf = ufpb_vec_median(&r[S_PF].cpu_ns),
	       cnopf = ufpb_vec_median(&r[S_NOPF].cpu_ns),
	       ccow = ufpb_vec_median(&r[S_COW].cpu_ns);
	ufpb_say(b,
		 "  CPU time per cold cycle (no verdict; waits for a CPU "
		 "excluded): prefetch / cow %.2f,\n  prefetch / no prefetch "
		 "%.2f\n",
		 cpf / ccow, cpf / cnopf);
	ufpb_emit(b, "prefetch",
		  "\"variant\": \"%s\", \"learn_ns_median\": %.0f, "
		  "\"amortized_ns\": %.0f, \"amortized_vs_off\": %.4f, "
		  "\"amortized_vs_cow\": %.4f",
		  variant, learn, amort, amort / nopf, amort / cow);
}

static int parse(struct ufpb *b, int argc, char **argv, struct params *p,
		 int *trace)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--trace")) {
			*trace = 1;
			continue;
		}
		long v = i + 1 < argc ? strtol(argv[i + 1], NULL, 10) : -1;
		if (ufpb_common_arg(b, argc, argv, &i))
			continue;
		if (!strcmp(a, "--image-kib") && v >= 64 && v <= (1 << 20) &&
		    v % 64 == 0)
			p->image = (size_t)v << 10;
		else if (!strcmp(a, "--touch-pct") && v > 0 && v <= 100)
			p->touch_pm = (unsigned)v * 10;
		else if (!strcmp(a, "--write-pct") && v >= 0 && v <= 100)
			p->write_pm = (unsigned)v * 10;
		else if (!strcmp(a, "--cycles") && v >= 2 && v <= 10000)
			p->cycles = (int)v;
		else
			return -1;
		i++;
	}
	return 0;
}

/* The instances' page orders and the scratch space of a run; the two
 * images. Aborts when out of memory; -errno without /proc/self/pagemap. */
static int open_work(const struct params *pa, int trace, struct work *w,
		     struct scratch *x, unsigned char *data[2])
{
	const size_t page = ufpi_page_size();
	*w = (struct work){.pages = pa->image / page, .trace = trace};
	w->n = (size_t)((w->pages * pa->touch_pm + 999) / 1000);
	if (!w->n)
		w->n = 1;
	w->order = malloc(w->pages * sizeof(*w->order));
	*x = (struct scratch){
		.ord = malloc(w->n * sizeof(uint32_t)),
		.tmp = malloc((w->n + w->pages) * sizeof(uint32_t)),
		.outside = malloc(w->n),
		.present = malloc(w->pages),
		.inset = calloc(w->pages, 1),
		.touched = malloc(w->pages),
		.lat = malloc(w->n * sizeof(double)),
		.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC),
	};
	data[0] = ufpb_image_bytes(pa->image, 1);
	data[1] = ufpb_image_bytes(pa->image, 2);
	if (!w->order || !x->ord || !x->tmp || !x->outside || !x->present ||
	    !x->inset || !x->touched || !x->lat || !data[0] || !data[1])
		abort();
	if (x->pagemap_fd < 0)
		return -errno;
	ufpb_shuffle(w->order, w->pages, 0x11);
	return 0;
}

static void close_work(struct work *w, struct scratch *x,
		       unsigned char *data[2])
{
	if (x->pagemap_fd >= 0)
		close(x->pagemap_fd);
	free(w->order);
	free(x->ord);
	free(x->tmp);
	free(x->outside);
	free(x->present);
	free(x->inset);
	free(x->touched);
	free(x->lat);
	free(data[0]);
	free(data[1]);
}

static void print_intro(struct ufpb *b, const struct params *pa,
			const struct work *w)
{
	ufpb_say(b,
		 "prefetch: cold cycles (alloc + touch + free; two modules "
		 "of the same shape alternate in one\n"
		 "  slot, so every allocation is a cold start) of a %zu KiB "
		 "image; each instance reads %u%% of\n"
		 "  its pages (%zu) in a fixed pseudo-random order, writes "
		 "%u%% of those. fixed: the same set\n"
		 "  every time; varying: 10%% of the set replaced per "
		 "instance. Medians over %d reps x %d cold\n"
		 "  starts; learning starts (1 in %d) apart in \"learn us\", "
		 "the first of each module a warm-up.\n"
		 "  faults = handler faults per cold start, minflt = page "
		 "faults of the touching thread,\n"
		 "  pf pages / raced = pages prefetched / set pages the "
		 "memory faulted in first, untouchd =\n"
		 "  pages mapped after the touch that it never touched "
		 "(PAGEMAP_SCAN), waste = those in the\n"
		 "  learned set over pages prefetched. Measured over the "
		 "last %d untimed cycles of each run.\n",
		 pa->image >> 10, pa->touch_pm / 10, w->n, pa->write_pm / 10,
		 pa->reps, pa->cycles, RELEARN, MEASURED);
	ufpb_resid_explain(b);
	ufpb_say(b, "\n");
}

/* Every setting, both variants and the warm rows, interleaved rep by
 * rep so a noisy neighbour hits them alike. */
static void run_all(const struct params *pa, struct work *w,
		    unsigned char *const data[2], struct scratch *x,
		    struct result res[2][NS])
{
	for (int rep = 0; rep < pa->reps; rep++)
		for (int v = 0; v < 2; v++) {
			w->varying = v;
			for (int s = 0; s < NS; s++)
				if (!res[v][s].err)
					run_cold(pa, s, w, data, x, &res[v][s]);
			if (v == 0)
				for (int s = S_PF; s <= S_NOPF; s++)
					run_warm(pa, s, w, data[0], x,
						 &res[v][s]);
		}
}

/* Prefetch must cost a warm cycle nothing: AUTO against OFF. */
static void warm_rows(struct ufpb *b, struct result *wr)
{
	if (wr[S_PF].err || wr[S_NOPF].err || !wr[S_PF].warm_ns.n ||
	    !wr[S_NOPF].warm_ns.n)
		return;
	ufpb_say(b, "warm: one module back in its affine slot (fixed "
		    "set), same run\n");
	ufpb_say(b, "  %-24s %8s %8s %7s\n", "setting", "warm us", "p90 us",
		 "faults");
	for (int s = S_PF; s <= S_NOPF; s++) {
		struct result *r = &wr[s];
		double m = ufpb_vec_median(&r->warm_ns),
		       p90 = ufpb_percentile(r->warm_ns.v, r->warm_ns.n, 90);
		ufpb_say(b, "  %-24s %8.1f %8.1f %7.0f\n", settings[s].name,
			 m / 1000, p90 / 1000,
			 ufpb_vec_median(&r->warm_faults));
		ufpb_emit(b, "prefetch",
			  "\"variant\": \"warm\", \"setting\": \"%s\", "
			  "\"warm_ns_median\": %.0f, "
			  "\"warm_ns_p90\": %.0f, "
			  "\"warm_faults\": %.1f, \"cycles\": %zu",
			  settings[s].name, m, p90,
			  ufpb_vec_median(&r->warm_faults), r->warm_ns.n);
	}
	ufpb_verdict(b, "prefetch", "warm_prefetch_vs_off",
		     "warm: prefetch / no prefetch (not worse)",
		     ufpb_vec_median(&wr[S_PF].warm_ns) /
			     ufpb_vec_median(&wr[S_NOPF].warm_ns),
		     NOWORSE, 1);
	ufpb_say(b, "\n");
}

static void free_result(struct result *r)
{
	struct ufpb_vec *all[] = {
		&r->ns,		 &r->learn_ns,	 &r->faults,   &r->minflt,
		&r->prefetched,	 &r->pf_faults,	 &r->raced,    &r->untouched,
		&r->waste,	 &r->waste_frac, &r->lat_out,  &r->warm_ns,
		&r->warm_faults, &r->cpu_ns,	 &r->alloc_ns, &r->touch_ns,
		&r->free_ns};
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
		free(all[k]->v);
}

int ufpb_prefetch(struct ufpb *b, int argc, char **argv)
{
	static const char *const vname[2] = {"fixed", "varying"};
	struct params pa = {16u << 20, 300, 0, 0, 0};
	int trace = 0;
	if (parse(b, argc, argv, &pa, &trace)) {
		fprintf(stderr,
			"usage: ufp-bench prefetch [--image-kib K (multiple "
			"of 64)] [--touch-pct P] [--write-pct W]\n"
			"       [--cycles N] [--trace] [--json] [--quick] "
			"[--reps N]\n");
		return 2;
	}
	if (!pa.cycles)
		pa.cycles = b->quick ? RELEARN : 4 * RELEARN;
	pa.reps = b->reps > MAX_REPS ? MAX_REPS : b->reps;
	if (b->quick && pa.reps > 2) /* the tour: under 10 s */
		pa.reps = 2;

	struct work w;
	struct scratch x;
	unsigned char *data[2];
	int err = open_work(&pa, trace, &w, &x, data);
	if (err) {
		ufpb_say(b, "prefetch: /proc/self/pagemap: %s\n",
			 strerror(-err));
		close_work(&w, &x, data);
		return 1;
	}
	print_intro(b, &pa, &w);

	struct result res[2][NS];
	memset(res, 0, sizeof(res));
	run_all(&pa, &w, data, &x, res);
	for (int v = 0; v < 2; v++) {
		ufpb_say(b,
			 "%s: %zu KiB image, %zu pages touched per instance\n",
			 vname[v], pa.image >> 10, w.n);
		print_rows(b, vname[v], &pa, res[v]);
		verdicts(b, vname[v], res[v]);
		ufpb_say(b, "\n");
	}
	warm_rows(b, res[0]);
	for (int v = 0; v < 2; v++)
		for (int s = 0; s < NS; s++)
			free_result(&res[v][s]);
	close_work(&w, &x, data);
	return 0;
}
