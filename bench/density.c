/* SPDX-License-Identifier: MIT */
/*
 * density.c - `ufp-bench density`: how many memories of one module fit.
 *
 *   ufp-bench density [--n N] [--image-kib K] [--write-pct P] [--rounds R]
 *
 * N live memories of one module (default 64; a pool of N slots, image of
 * K KiB, default 4096, every page non-zero): each memory reads every page
 * of the image and writes P% of them (default 5). A round allocates and
 * touches all N (timed), reads the residency with all N live, frees them
 * all (timed) and reads it again; rounds after the first reuse affine
 * slots, as a runtime's steady state does. Figures are the last round's
 * residency and the time per memory (alloc + touch + free) over all
 * rounds, medians over reps, per setting compared like with like.
 *
 * Residency is the process's (bench.h: Pss, Pss_Anon, Pss_Shmem, RssAnon,
 * RssShmem as deltas against the process before the pool was created) and
 * the pool's own private / shared split. With private copies N memories
 * cost N images; with the image's page cache mapped they cost one image
 * plus the written pages.
 *
 * Targets (issue 10), UFFD fill=MINOR against COW keep 0, same run:
 * Pss live <= 1.2x; Pss after free <= COW keep 0's + the bytes the N
 * memories wrote.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#define LIVE_TARGET 1.2
#define MAX_REPS 16

struct params {
	uint32_t n;
	size_t image;	   /* bytes */
	unsigned permille; /* of pages written */
	int rounds, reps;
};

struct result {
	double ns[MAX_REPS * 8]; /* per memory, one per round */
	size_t nns;
	struct ufpb_resid live[MAX_REPS], idle[MAX_REPS];
	size_t nres;
	ufp_fill_mode fill;
	int err;
};

/* One round: alloc + touch all N, residency, free all, residency. */
static int round_once(const struct params *p, ufp_pool *pool, ufp_module *m,
		      ufp_memory **mems, const struct ufpb_resid *base,
		      struct ufpb_resid *live, struct ufpb_resid *idle,
		      double *ns)
{
	const uint64_t pages = p->image / ufpi_page_size();
	struct ufpb_resid now;
	uint32_t k;
	int err = 0;

	uint64_t t0 = ufpb_now_ns();
	for (k = 0; k < p->n && !err; k++) {
		err = ufp_memory_alloc(pool, m, 0, &mems[k]);
		if (!err)
			ufpb_touch(ufp_memory_base(mems[k]), pages, p->permille,
				   (unsigned char)k);
	}
	uint64_t t1 = ufpb_now_ns();
	uint32_t live_n = err ? k - 1 : k;
	if (!err)
		err = ufpb_resid_read(pool, &now);
	ufpb_resid_sub(live, &now, base);
	uint64_t t2 = ufpb_now_ns();
	for (k = 0; k < live_n; k++) {
		int e = ufp_memory_free(mems[k]);
		err = err ? err : e;
	}
	uint64_t t3 = ufpb_now_ns();
	if (!err)
		err = ufpb_resid_read(pool, &now);
	ufpb_resid_sub(idle, &now, base);
	*ns = (double)((t1 - t0) + (t3 - t2)) / p->n;
	return err;
}

static void run(const struct params *p, const struct ufpb_setting *st,
		const unsigned char *data, struct result *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m = NULL;
	ufp_memory **mems = calloc(p->n, sizeof(*mems));
	struct ufpb_resid base, live, idle;
	uint64_t mem_bytes = (p->image + UFPI_WASM_PAGE - 1) / UFPI_WASM_PAGE *
			     UFPI_WASM_PAGE;

	r->err = mems ? ufpb_resid_read(NULL, &base) : -ENOMEM;
	if (!r->err)
		r->err = ufpb_pool_open(st, p->n, mem_bytes, &pool, &r->fill);
	if (!r->err)
		r->err = ufpb_module(pool, data, p->image, mem_bytes, &m);
	for (int k = 0; k < p->rounds && !r->err; k++) {
		double ns;
		r->err = round_once(p, pool, m, mems, &base, &live, &idle, &ns);
		if (r->nns < sizeof(r->ns) / sizeof(r->ns[0]))
			r->ns[r->nns++] = ns;
	}
	if (!r->err && r->nres < MAX_REPS) {
		r->live[r->nres] = live;
		r->idle[r->nres++] = idle;
	}
	if (m)
		UFPI_IGNORE(ufp_module_drop(m));
	if (pool) {
		UFPI_IGNORE(ufp_pool_quiesce(pool));
		UFPI_IGNORE(ufp_pool_destroy(pool));
	}
	free(mems);
}

static int parse(struct ufpb *b, int argc, char **argv, struct params *p)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		long v = i + 1 < argc ? strtol(argv[i + 1], NULL, 10) : 0;
		if (ufpb_common_arg(b, argc, argv, &i))
			continue;
		if (!strcmp(a, "--n") && v > 0 && v <= 4096)
			p->n = (uint32_t)v;
		else if (!strcmp(a, "--image-kib") && v >= 4 &&
			 v <= (1l << 20) && v % 4 == 0)
			p->image = (size_t)v << 10;
		else if (!strcmp(a, "--write-pct") && v >= 0 && v <= 100)
			p->permille = (unsigned)v * 10;
		else if (!strcmp(a, "--rounds") && v > 0 && v <= 8)
			p->rounds = (int)v;
		else {
			fprintf(stderr,
				"usage: ufp-bench density [--json] [--quick] "
				"[--reps N] [--n N (1..4096, default 64)] "
				"[--image-kib K (default 4096)] "
				"[--write-pct P (default 5)] [--rounds R "
				"(1..8, default 3)]\n");
			return 2;
		}
		i++;
	}
	return 0;
}

static void print_row(struct ufpb *b, const struct ufpb_setting *st,
		      struct result *r, struct ufpb_resid s[2], double *us)
{
	char name[48], cols[2][160], js[2][512];
	snprintf(name, sizeof(name), "%s%s", st->name,
		 ufpb_fill_note(st, r->fill));
	if (r->err) {
		ufpb_say(b, "  %-28s %s\n", name, ufp_strerror(r->err));
		return;
	}
	*us = ufpb_median(r->ns, r->nns) / 1000;
	ufpb_resid_median(r->live, r->nres, &s[0]);
	ufpb_resid_median(r->idle, r->nres, &s[1]);
	ufpb_say(b, "  %-28s %8.1f live %s\n", name, *us,
		 ufpb_resid_cols(&s[0], cols[0], sizeof(cols[0])));
	ufpb_say(b, "  %-28s %8s free %s\n", "", "",
		 ufpb_resid_cols(&s[1], cols[1], sizeof(cols[1])));
	ufpb_emit(b, "density",
		  "\"setting\": \"%s\", \"backend\": \"%s\", \"fill\": \"%s\", "
		  "\"keep_all\": %s, \"us_per_memory\": %.1f, %s, %s",
		  st->name, ufpb_backend_name(st->backend),
		  ufpb_fill_name(r->fill), st->keep_all ? "true" : "false", *us,
		  ufpb_resid_json(&s[0], "live", js[0], sizeof(js[0])),
		  ufpb_resid_json(&s[1], "freed", js[1], sizeof(js[1])));
}

/* Idle private bytes per slot, then the verdicts. 0, or 1 when a setting
 * a target needs did not run. */
static int targets(struct ufpb *b, const struct params *pp,
		   const struct result *res, struct ufpb_resid s[][2],
		   const double *us, uint64_t written)
{
	ufpb_say(b, "\n  idle private KiB per slot after free:");
	for (size_t k = 0; k < UFPB_NSET; k++)
		if (!res[k].err)
			ufpb_say(b, "%s %s %lld", k ? "," : "",
				 ufpb_settings[k].name,
				 (long long)(s[k][1].priv / pp->n) >> 10);
	ufpb_say(b, "\n");

	const struct result *mr = &res[UFPB_SET_UFFD_MINOR],
			    *cr = &res[UFPB_SET_COW_KEEP0];
	if (mr->err || cr->err) {
		ufpb_say(b, "\n  targets: not measured (%s did not run)\n",
			 cr->err ? "cow keep=0" : "uffd fill=MINOR");
		return 1;
	}
	const struct ufpb_resid *minor = s[UFPB_SET_UFFD_MINOR],
				*cow = s[UFPB_SET_COW_KEEP0];
	char what[96];
	ufpb_say(b, "\n  targets (issue 10), medians of this run:\n");
	snprintf(what, sizeof(what), "Pss live: uffd fill=MINOR%s / cow keep=0",
		 mr->fill == UFP_FILL_MINOR ? "" : " (ran COPY)");
	ufpb_verdict(b, "density", "pss_live_minor_vs_cow_keep0", what,
		     (double)minor[0].pss / (double)cow[0].pss, LIVE_TARGET, 1);
	ufpb_verdict(b, "density", "pss_freed_minor_minus_cow_keep0_mib",
		     "Pss freed: MINOR - cow keep=0, MiB (limit: written)",
		     (double)(minor[1].pss - cow[1].pss) / (1 << 20),
		     (double)written / (1 << 20), 1);
	ufpb_say(b,
		 "    (time per memory: uffd fill=MINOR %.1f us, cow "
		 "keep=0 %.1f us: %.2fx)\n",
		 us[UFPB_SET_UFFD_MINOR], us[UFPB_SET_COW_KEEP0],
		 us[UFPB_SET_UFFD_MINOR] / us[UFPB_SET_COW_KEEP0]);
	return 0;
}

int ufpb_density(struct ufpb *b, int argc, char **argv)
{
	struct params p = {
		.n = 64, .image = 4 << 20, .permille = 50, .rounds = 3};
	struct result res[UFPB_NSET];
	struct ufpb_resid s[UFPB_NSET][2];
	double us[UFPB_NSET];

	if (parse(b, argc, argv, &p))
		return 2;
	p.reps = b->reps > MAX_REPS ? MAX_REPS : b->reps;
	if (b->quick) {
		p.reps = 1;
		p.rounds = p.rounds > 2 ? 2 : p.rounds;
	}
	const size_t page = ufpi_page_size();
	uint64_t written = (uint64_t)p.n *
			   ufpb_written_pages(p.image / page, p.permille) *
			   page;
	unsigned char *data = ufpb_image_bytes(p.image, 7);
	if (!data)
		return 1;
	memset(res, 0, sizeof(res));
	memset(s, 0, sizeof(s));

	ufpb_say(b,
		 "density: %u live memories of one module, image %zu KiB, "
		 "each reads every page and writes %u%%\n"
		 "  of them (%llu KiB written in all). %d round%s per rep "
		 "(alloc + touch all, free all), %d rep%s,\n"
		 "  interleaved; residency of the last round, medians over "
		 "reps; us = alloc + touch + free per memory.\n",
		 p.n, p.image >> 10, p.permille / 10,
		 (unsigned long long)written >> 10, p.rounds,
		 p.rounds == 1 ? "" : "s", p.reps, p.reps == 1 ? "" : "s");
	ufpb_resid_explain(b);
	ufpb_say(b, "\n  %-28s %8s %4s%s\n", "setting", "us/mem", "",
		 ufpb_resid_head());
	for (int rep = 0; rep < p.reps; rep++)
		for (size_t k = 0; k < UFPB_NSET; k++)
			if (!res[k].err)
				run(&p, &ufpb_settings[k], data, &res[k]);
	for (size_t k = 0; k < UFPB_NSET; k++)
		print_row(b, &ufpb_settings[k], &res[k], s[k], &us[k]);
	free(data);
	return targets(b, &p, res, s, us, written);
}
