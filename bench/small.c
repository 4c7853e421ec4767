/* SPDX-License-Identifier: MIT */
/*
 * small.c - `ufp-bench small`: the common case of a runtime running many
 * small instances.
 *
 *   ufp-bench small [--cycles N] [--kib N]   (N: a multiple of 64, >= 128)
 *
 * A module with one data segment filling the first 64 KiB of a 128 KiB
 * memory (two wasm pages). Each cycle allocates a memory, writes one byte
 * in one image page and one in one zero page (the second wasm page), and
 * frees it; the whole cycle is timed. One-slot pool, so every cycle after
 * the first is warm (the module's own slot). Every setting compared like
 * with like runs in the same run, interleaved rep by rep, plus the
 * baseline of a runtime without a pool: malloc + memset of the memory +
 * memcpy of the segment + the same two writes + free. After each rep one
 * more cycle reads the residency live and after its free.
 *
 * Targets: UFFD at the defaults <= COW keep 0 per cycle (issue 10);
 * <= 2x malloc + memset + memcpy + free (DESIGN.md §11, issue 14).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

/* the memory's size: 128 KiB (two wasm pages), or --kib N */
static unsigned mem_bytes = 128u << 10;
#define MEM_BYTES mem_bytes
#define SEG_BYTES (64u << 10)
#define COW_TARGET 1.0
#define MALLOC_TARGET 2.0
#define MAX_REPS 16

struct result {
	double *ns;
	size_t n;
	struct ufpb_resid live[MAX_REPS], idle[MAX_REPS];
	size_t nres;
	ufp_fill_mode fill;
	int err;
};

/* The two writes of every cycle: one image page, one zero page. */
static void write_two(unsigned char *base, unsigned char v)
{
	base[SEG_BYTES / 2] = v;
	base[SEG_BYTES + SEG_BYTES / 2] = v;
}

static void touch_two(unsigned char *base, const void *arg)
{
	(void)arg;
	write_two(base, 1);
}

static int cycle_once(ufp_pool *pool, ufp_module *m, unsigned char v)
{
	ufp_memory *mem;
	int err = ufp_memory_alloc(pool, m, 0, &mem);
	if (err)
		return err;
	write_two(ufp_memory_base(mem), v);
	return ufp_memory_free(mem);
}

static void run(const struct ufpb_setting *st, const unsigned char *seg,
		int cycles, struct result *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m = NULL;
	struct ufpb_resid base;

	r->err = ufpb_resid_read(NULL, &base);
	if (!r->err)
		r->err = ufpb_pool_open(st, 1, MEM_BYTES, &pool, &r->fill);
	if (!r->err)
		r->err = ufpb_module(pool, seg, SEG_BYTES, MEM_BYTES, &m);
	for (int k = -2; k < cycles && !r->err; k++) {
		uint64_t t0 = ufpb_now_ns();
		r->err = cycle_once(pool, m, (unsigned char)k);
		if (k >= 0) /* two warm-up cycles */
			r->ns[r->n++] = (double)(ufpb_now_ns() - t0);
	}
	if (!r->err) {
		size_t k = r->nres < MAX_REPS ? r->nres++ : MAX_REPS - 1;
		r->err = ufpb_resid_cycle(pool, m, touch_two, NULL, &base,
					  &r->live[k], &r->idle[k]);
	}
	ufpb_pool_close(pool, &m, 1);
}

/* A runtime without a pool: a fresh zeroed memory, the segment copied in. */
static void run_malloc(const unsigned char *seg, int cycles, struct result *r)
{
	for (int k = -2; k < cycles; k++) {
		uint64_t t0 = ufpb_now_ns();
		unsigned char *mem = malloc(MEM_BYTES);
		if (!mem) {
			r->err = -ENOMEM;
			return;
		}
		memset(mem, 0, MEM_BYTES);
		memcpy(mem, seg, SEG_BYTES);
		write_two(mem, (unsigned char)k);
		/* keep the compiler from eliding the memory */
		__asm__ volatile("" : : "r"(mem) : "memory");
		free(mem);
		if (k >= 0)
			r->ns[r->n++] = (double)(ufpb_now_ns() - t0);
	}
}

static void print_row(struct ufpb *b, const char *name, const char *note,
		      struct result *r, double *med)
{
	char label[48], cols[2][160], js[2][512];
	snprintf(label, sizeof(label), "%s%s", name, note);
	if (r->err) {
		ufpb_say(b, "  %-28s %s\n", label, ufp_strerror(r->err));
		return;
	}
	struct ufpb_resid s[2] = {0};
	*med = ufpb_median(r->ns, r->n);
	double p99 = ufpb_percentile(r->ns, r->n, 99);
	ufpb_resid_median(r->live, r->nres, &s[0]);
	ufpb_resid_median(r->idle, r->nres, &s[1]);
	if (r->nres) {
		ufpb_say(b, "  %-28s %8.2f %8.2f live %s\n", label, *med / 1000,
			 p99 / 1000,
			 ufpb_resid_cols(&s[0], cols[0], sizeof(cols[0])));
		ufpb_say(b, "  %-28s %8s %8s free %s\n", "", "", "",
			 ufpb_resid_cols(&s[1], cols[1], sizeof(cols[1])));
	} else {
		ufpb_say(b, "  %-28s %8.2f %8.2f\n", label, *med / 1000,
			 p99 / 1000);
	}
	ufpb_emit(
		b, "small",
		"\"setting\": \"%s\", \"fill\": \"%s\", \"memory_bytes\": %u, "
		"\"segment_bytes\": %u, \"ns_median\": %.0f, \"ns_p99\": "
		"%.0f, \"cycles\": %zu, %s, %s",
		name, ufpb_fill_name(r->fill), MEM_BYTES, SEG_BYTES, *med, p99,
		r->n, ufpb_resid_json(&s[0], "live", js[0], sizeof(js[0])),
		ufpb_resid_json(&s[1], "freed", js[1], sizeof(js[1])));
}

/* The verdicts; 1 when a row they need did not run. */
static int targets(struct ufpb *b, const struct result *res, const double *med)
{
	if (res[UFPB_SET_UFFD_DEFAULT].err || res[UFPB_SET_COW_KEEP0].err ||
	    res[UFPB_NSET].err)
		return 1;
	ufpb_say(b, "\n  targets, medians of this run:\n");
	ufpb_verdict(b, "small", "uffd_default_vs_cow_keep0",
		     "uffd default / cow keep=0 per cycle (issue 10)",
		     med[UFPB_SET_UFFD_DEFAULT] / med[UFPB_SET_COW_KEEP0],
		     COW_TARGET, 1);
	ufpb_verdict(b, "small", "uffd_default_vs_malloc",
		     "uffd default / malloc+memset+memcpy+free (issue 14)",
		     med[UFPB_SET_UFFD_DEFAULT] / med[UFPB_NSET], MALLOC_TARGET,
		     1);
	return 0;
}

static int parse(struct ufpb *b, int argc, char **argv, int *cycles)
{
	for (int i = 0; i < argc; i++) {
		int kib = 0;
		if (ufpb_common_arg(b, argc, argv, &i) ||
		    ufpb_int_arg(argc, argv, &i, "--cycles", 1, cycles))
			continue;
		if (ufpb_int_arg(argc, argv, &i, "--kib", 128, &kib) &&
		    kib % 64 == 0) {
			mem_bytes = (unsigned)kib << 10;
			continue;
		}
		fprintf(stderr, "usage: ufp-bench small [--json] [--quick] "
				"[--reps N] [--cycles N] [--kib N]\n");
		return 2;
	}
	return 0;
}

/* Every setting and the malloc baseline, interleaved rep by rep. */
static void run_all(const unsigned char *seg, int reps, int cycles,
		    struct result *res)
{
	/* A discarded run first: one-time costs of the process (thread
	 * stacks, allocator arenas) would land in the first row's residency */
	struct result warmup = {.ns = res[0].ns};
	run(&ufpb_settings[0], seg, 10, &warmup);
	for (int rep = 0; rep < reps; rep++) {
		for (size_t k = 0; k < UFPB_NSET; k++)
			if (!res[k].err)
				run(&ufpb_settings[k], seg, cycles, &res[k]);
		if (!res[UFPB_NSET].err)
			run_malloc(seg, cycles, &res[UFPB_NSET]);
	}
}

static void print_intro(struct ufpb *b, int reps, int cycles)
{
	ufpb_say(b,
		 "small: alloc a %u KiB memory (a %u KiB data segment at 0), "
		 "write one byte in an image page\n"
		 "  and one in a zero page, free; one-slot pool (warm). "
		 "Median and p99 us per cycle over\n"
		 "  %d reps x %d cycles, settings interleaved rep by rep; "
		 "residency of one more cycle per rep.\n",
		 MEM_BYTES >> 10, SEG_BYTES >> 10, reps, cycles);
	ufpb_resid_explain(b);
	ufpb_say(b, "\n  %-28s %8s %8s %4s%s\n", "setting", "us", "p99 us", "",
		 ufpb_resid_head());
}

int ufpb_small(struct ufpb *b, int argc, char **argv)
{
	int cycles = 0;
	int rc = parse(b, argc, argv, &cycles);
	if (rc)
		return rc;
	int reps = b->reps > MAX_REPS ? MAX_REPS : b->reps;
	if (b->quick && reps > 3)
		reps = 3;
	if (!cycles)
		cycles = b->quick ? 1000 : 2000;

	unsigned char *seg = ufpb_image_bytes(SEG_BYTES, 3);
	struct result res[UFPB_NSET + 1];
	double med[UFPB_NSET + 1] = {0};
	rc = seg ? 0 : 1;
	memset(res, 0, sizeof(res));
	for (size_t k = 0; k <= UFPB_NSET && !rc; k++) {
		res[k].ns =
			calloc((size_t)reps * (size_t)cycles, sizeof(double));
		rc = res[k].ns ? 0 : 1;
	}
	if (rc)
		goto out;

	print_intro(b, reps, cycles);
	run_all(seg, reps, cycles, res);
	for (size_t k = 0; k < UFPB_NSET; k++)
		print_row(b, ufpb_settings[k].name,
			  ufpb_fill_note(&ufpb_settings[k], res[k].fill),
			  &res[k], &med[k]);
	print_row(b, "malloc+memset+memcpy+free", "", &res[UFPB_NSET],
		  &med[UFPB_NSET]);
	rc = targets(b, res, med);
out:
	for (size_t k = 0; k <= UFPB_NSET; k++)
		free(res[k].ns);
	free(seg);
	return rc;
}
