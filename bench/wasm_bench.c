/* SPDX-License-Identifier: MIT */
/*
 * wasm_bench.c - `ufp-bench wasm [FILE.wasm...]`: real modules. Each file's
 * active data segments become a module image over its initial memory;
 * a cycle instantiates a memory, touches every page the image covers
 * (reads; 5% of them written) and frees it. Warm (same module back in its
 * affine slot) and cold (two copies of the module alternate in one slot),
 * the settings compared like with like (bench.h) interleaved rep by rep,
 * with the residency of one more warm cycle, live and after free.
 * Targets (issue 10): warm UFFD at the defaults >= 3x faster than COW
 * keep 0; cold <= 1.2x COW cold. Working-set prefetch (issue 11): cold
 * rows of fill=MINOR with prefetch on and off, interleaved with the rest,
 * learning cold starts told apart by the stats; cold with prefetch no
 * slower than without; a table of faults per cold start with and without
 * after all modules.
 * Default files: every .wasm in $UFP_SHARED_WASM, else in ../shared/wasm
 * beside the source tree.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"
#include "wasm.h"

#ifndef UFP_SOURCE_DIR
#define UFP_SOURCE_DIR "."
#endif

#define WARM_TARGET 3.0
#define COLD_TARGET 1.2
#define MAX_REPS 16

/* The touch of every cycle: read every image page, write every 20th. */
static void touch(unsigned char *base, const uint32_t *pages, size_t npages)
{
	const size_t page = ufpi_page_size();
	volatile unsigned char *b = base;
	unsigned char sink = 0;
	for (size_t i = 0; i < npages; i++) {
		sink ^= b[(size_t)pages[i] * page];
		if (i % 20 == 7)
			b[(size_t)pages[i] * page] = sink;
	}
}

/* Pages of [0, initial) covered by a segment. */
static uint32_t *image_pages(const struct ufpw_module *w, uint64_t initial,
			     size_t *n)
{
	const size_t page = ufpi_page_size();
	uint64_t npages = initial / page;
	uint8_t *hit = calloc(npages ? npages : 1, 1);
	uint32_t *out;
	size_t k = 0;

	if (!hit)
		return NULL;
	for (size_t i = 0; i < w->nsegs; i++)
		if (w->segs[i].len)
			for (uint64_t p = w->segs[i].offset / page;
			     p <= (w->segs[i].offset + w->segs[i].len - 1) /
					     page &&
			     p < npages;
			     p++)
				hit[p] = 1;
	out = malloc((npages ? npages : 1) * sizeof(*out));
	if (out)
		for (uint64_t p = 0; p < npages; p++)
			if (hit[p])
				out[k++] = (uint32_t)p;
	free(hit);
	*n = k;
	return out;
}

struct wres {
	double *ns; /* all cycles of all reps */
	size_t n;
	struct ufpb_resid live[MAX_REPS], idle[MAX_REPS]; /* warm reps */
	size_t nres;
	ufp_fill_mode fill;
	int err;
};

struct touch_arg {
	const uint32_t *pages;
	size_t npages;
};

static void touch_image(unsigned char *base, const void *arg)
{
	const struct touch_arg *t = arg;
	touch(base, t->pages, t->npages);
}

/* A one-slot pool of st holding `copies` modules of w (cold cycles
 * alternate two copies in the slot). 0 or -errno. */
static int open_copies(const struct ufpb_setting *st,
		       const struct ufpw_module *w, uint64_t initial,
		       int copies, ufp_pool **pool, ufp_module *m[2],
		       ufp_fill_mode *fill)
{
	int err = ufpb_pool_open(st, 1, initial, pool, fill);
	for (int k = 0; k < copies && !err; k++)
		err = ufp_module_create(*pool, (const ufp_segment *)w->segs,
					w->nsegs, initial, &m[k]);
	return err;
}

/* One rep of `cycles` cycles; appends to r. Cold: two copies of the
 * module alternate in the one slot. */
static void run(const struct ufpb_setting *st, const struct ufpw_module *w,
		uint64_t initial, const uint32_t *pages, size_t npages,
		int cold, int cycles, struct wres *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m[2] = {NULL, NULL};
	struct ufpb_resid base;

	r->err = ufpb_resid_read(NULL, &base);
	if (!r->err)
		r->err = open_copies(st, w, initial, 1 + cold, &pool, m,
				     &r->fill);
	for (int k = -2; k < cycles && !r->err; k++) {
		ufp_memory *mem;
		uint64_t t0 = ufpb_now_ns();
		r->err = ufp_memory_alloc(pool, m[cold ? (k & 1) : 0], 0, &mem);
		if (r->err)
			break;
		touch(ufp_memory_base(mem), pages, npages);
		r->err = ufp_memory_free(mem);
		if (k >= 0)
			r->ns[r->n++] = (double)(ufpb_now_ns() - t0);
	}
	if (!r->err && !cold) {
		size_t k = r->nres < MAX_REPS ? r->nres++ : MAX_REPS - 1;
		struct touch_arg t = {pages, npages};
		r->err = ufpb_resid_cycle(pool, m[0], touch_image, &t, &base,
					  &r->live[k], &r->idle[k]);
	}
	ufpb_pool_close(pool, m, 2);
}

/* Cold cycles of fill=MINOR with prefetch on or off (issue 11): two
 * copies of the module alternate in one slot; per-cycle stats, untimed,
 * tell learning cold starts from prefetched ones. */
struct pfres {
	double *ns;	  /* every timed cold cycle (learning ones too) */
	double *learn_ns; /* the learning ones */
	size_t n, nlearn;
	double faults, prefetched; /* summed over non-learning cycles */
	size_t npf;		   /* non-learning cycles */
	ufp_fill_mode fill;
	int err;
};

/* fill=MINOR keep=0 (the shared row) with prefetch off and on. */
static const struct ufpb_setting pf_settings[2] = {
	{"uffd MINOR no prefetch", UFP_BACKEND_UFFD, UFP_FILL_MINOR,
	 UFP_DIRTY_AUTO, 0, .prefetch = UFP_PREFETCH_OFF},
	{"uffd MINOR prefetch", UFP_BACKEND_UFFD, UFP_FILL_MINOR,
	 UFP_DIRTY_AUTO, 0, .prefetch = UFP_PREFETCH_AUTO},
};

static void run_pf(int on, const struct ufpw_module *w, uint64_t initial,
		   const uint32_t *pages, size_t npages, int cycles,
		   struct pfres *r)
{
	ufp_pool *pool = NULL;
	ufp_module *m[2] = {NULL, NULL};

	r->err = open_copies(&pf_settings[on], w, initial, 2, &pool, m,
			     &r->fill);
	for (int k = -2; k < cycles && !r->err; k++) {
		ufp_stats s0 = {.size = sizeof(s0)}, s1 = s0;
		ufp_memory *mem;
		UFPI_IGNORE(ufp_pool_stats(pool, &s0));
		uint64_t t0 = ufpb_now_ns();
		r->err = ufp_memory_alloc(pool, m[k & 1], 0, &mem);
		if (r->err)
			break;
		touch(ufp_memory_base(mem), pages, npages);
		r->err = ufp_memory_free(mem);
		double ns = (double)(ufpb_now_ns() - t0);
		UFPI_IGNORE(ufp_pool_stats(pool, &s1));
		if (k < 0) /* the first cold start of each copy: learns */
			continue;
		r->ns[r->n++] = ns;
		if (s1.prefetch_learns > s0.prefetch_learns) {
			r->learn_ns[r->nlearn++] = ns;
			continue;
		}
		r->faults += (double)(s1.faults - s0.faults);
		r->prefetched +=
			(double)(s1.pages_prefetched - s0.pages_prefetched);
		r->npf++;
	}
	ufpb_pool_close(pool, m, 2);
}

/* One row per module of the faults table printed after all modules. */
struct pfrow {
	char name[64];
	double cold[2], faults[2], prefetched, learn;
	int ok;
};
static struct pfrow pfrows[64];
static int npfrows;

static void print_pf(struct ufpb *b, const char *name, struct pfres pf[2],
		     size_t npages)
{
	struct pfrow *row = npfrows < 64 ? &pfrows[npfrows++] : NULL;
	char what[96];
	double cold[2] = {0}, faults[2] = {0};

	if (row) {
		memset(row, 0, sizeof(*row));
		snprintf(row->name, sizeof(row->name), "%s", name);
	}
	ufpb_say(b, "  cold, fill=MINOR, prefetch on vs off (same run; the "
		    "first cold start of each copy is a warm-up):\n");
	ufpb_say(b, "  %-26s %9s %9s %11s %13s\n", "setting", "cold us",
		 "learn us", "faults/cold", "pf pages/cold");
	for (int on = 1; on >= 0; on--) {
		struct pfres *r = &pf[on];
		if (r->err) {
			ufpb_say(b, "  %-26s %s\n", pf_settings[on].name,
				 ufp_strerror(r->err));
			return;
		}
		double npf = r->npf ? (double)r->npf : 1;
		double learn = ufpb_median(r->learn_ns, r->nlearn);
		cold[on] = ufpb_median(r->ns, r->n);
		faults[on] = r->faults / npf;
		char learn_s[16] = "-";
		if (r->nlearn)
			snprintf(learn_s, sizeof(learn_s), "%.1f",
				 learn / 1000);
		ufpb_say(b, "  %-26s %9.1f %9s %11.1f %13.1f\n",
			 pf_settings[on].name, cold[on] / 1000, learn_s,
			 faults[on], r->prefetched / npf);
		ufpb_emit(b, "wasm",
			  "\"module\": \"%s\", \"setting\": \"%s\", "
			  "\"fill\": \"%s\", \"mode\": \"cold\", "
			  "\"prefetch\": %s, \"image_pages\": %zu, "
			  "\"ns_median\": %.0f, \"learn_ns_median\": %.0f, "
			  "\"learn_cycles\": %zu, \"faults_per_cold\": %.2f, "
			  "\"pages_prefetched_per_cold\": %.2f, "
			  "\"cycles\": %zu",
			  name, pf_settings[on].name, ufpb_fill_name(r->fill),
			  on ? "true" : "false", npages, cold[on], learn,
			  r->nlearn, faults[on], r->prefetched / npf, r->n);
		if (row && on) {
			row->prefetched = r->prefetched / npf;
			row->learn = learn;
		}
	}
	if (row) {
		memcpy(row->cold, cold, sizeof(cold));
		memcpy(row->faults, faults, sizeof(faults));
		row->ok = 1;
	}
	snprintf(what, sizeof(what), "%s cold: prefetch / no prefetch", name);
	ufpb_verdict(b, "wasm", "cold_prefetch_vs_off", what, cold[1] / cold[0],
		     1.0, 1);
}

static void print_pf_table(struct ufpb *b)
{
	if (!npfrows)
		return;
	ufpb_say(b, "faults per cold start, fill=MINOR, prefetch off / on "
		    "(prefetched cold starts; medians of cold us):\n");
	ufpb_say(b, "  %-26s %9s %9s %9s %9s %9s %9s\n", "module", "flt off",
		 "flt on", "on/off", "pf pages", "cold off", "cold on");
	for (int k = 0; k < npfrows; k++) {
		const struct pfrow *r = &pfrows[k];
		if (!r->ok)
			continue;
		ufpb_say(b, "  %-26s %9.1f %9.1f %9.2f %9.1f %9.1f %9.1f\n",
			 r->name, r->faults[0], r->faults[1],
			 r->faults[0] ? r->faults[1] / r->faults[0] : 0,
			 r->prefetched, r->cold[0] / 1000, r->cold[1] / 1000);
	}
	ufpb_say(b, "\n");
}

static void print_setting(struct ufpb *b, const char *name, size_t k,
			  struct wres r[2], double med[2], size_t npages,
			  uint64_t initial)
{
	const struct ufpb_setting *st = &ufpb_settings[k];
	char label[48], cols[2][160], js[2][512];
	struct ufpb_resid s[2];
	snprintf(label, sizeof(label), "%s%s", st->name,
		 ufpb_fill_note(st, r[0].fill));
	if (r[0].err || r[1].err) {
		ufpb_say(b, "  %-26s %s\n", label,
			 ufp_strerror(r[0].err ? r[0].err : r[1].err));
		return;
	}
	for (int c = 0; c < 2; c++)
		med[c] = ufpb_median(r[c].ns, r[c].n);
	ufpb_resid_median(r[0].live, r[0].nres, &s[0]);
	ufpb_resid_median(r[0].idle, r[0].nres, &s[1]);
	ufpb_say(b, "  %-26s %9.1f %9.1f live %s\n", label, med[0] / 1000,
		 med[1] / 1000,
		 ufpb_resid_cols(&s[0], cols[0], sizeof(cols[0])));
	ufpb_say(b, "  %-26s %9s %9s free %s\n", "", "", "",
		 ufpb_resid_cols(&s[1], cols[1], sizeof(cols[1])));
	for (int c = 0; c < 2; c++)
		ufpb_emit(
			b, "wasm",
			"\"module\": \"%s\", \"setting\": \"%s\", "
			"\"fill\": \"%s\", \"mode\": \"%s\", "
			"\"image_pages\": %zu, \"initial_bytes\": %llu, "
			"\"ns_median\": %.0f, \"ns_p99\": %.0f, "
			"\"cycles\": %zu, %s, %s",
			name, st->name, ufpb_fill_name(r[c].fill),
			c ? "cold" : "warm", npages,
			(unsigned long long)initial, med[c],
			ufpb_percentile(r[c].ns, r[c].n, 99), r[c].n,
			ufpb_resid_json(&s[0], "live", js[0], sizeof(js[0])),
			ufpb_resid_json(&s[1], "freed", js[1], sizeof(js[1])));
}

static void verdicts(struct ufpb *b, const char *name, struct wres r[][2],
		     double med[][2])
{
	char what[96];
	const size_t d = UFPB_SET_UFFD_DEFAULT, c = UFPB_SET_COW_KEEP0;
	if (r[d][0].err || r[d][1].err || r[c][0].err || r[c][1].err)
		return;
	snprintf(what, sizeof(what), "%s warm: cow keep=0 / uffd default",
		 name);
	ufpb_verdict(b, "wasm", "warm_default_vs_cow_keep0", what,
		     med[c][0] / med[d][0], WARM_TARGET, 0);
	snprintf(what, sizeof(what), "%s cold: uffd default / cow", name);
	ufpb_verdict(b, "wasm", "cold_default_vs_cow", what,
		     med[d][1] / med[c][1], COLD_TARGET, 1);
	ufpb_say(b, "\n");
}

/* One .wasm file as the runs see it: the module, its initial memory, the
 * image pages a cycle touches, and how much to run. */
struct wcase {
	struct ufpw_module w;
	const char *name;
	uint64_t initial;
	uint32_t *pages;
	size_t npages;
	int cycles, reps;
};

/* Load path and check its memory layout; says why on failure. 0 or
 * -errno (the module is then freed). */
static int load_case(struct ufpb *b, const char *path, struct wcase *c)
{
	char err_msg[256];
	c->name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int err = ufpw_load_file(path, &c->w, err_msg, sizeof(err_msg));
	if (err) {
		ufpb_say(b, "  %s: %s\n", c->name, err_msg);
		return err;
	}
	if (ufpw_initial_bytes(&c->w, &c->initial) ||
	    c->initial > ((uint64_t)1 << 32) ||
	    ufpw_check_bounds(&c->w, err_msg, sizeof(err_msg))) {
		ufpb_say(b, "  %s: unusable memory layout\n", c->name);
		ufpw_free(&c->w);
		return -ERANGE;
	}
	if (!c->initial)
		c->initial = UFPW_PAGE_BYTES;
	c->npages = 0;
	c->pages = image_pages(&c->w, c->initial, &c->npages);
	c->cycles = b->quick ? 40 : 200;
	c->reps = b->reps > MAX_REPS ? MAX_REPS : b->reps;
	if (!c->pages)
		abort();
	return 0;
}

/* Room for every cycle of every rep (a row without it reports ENOMEM). */
static void alloc_results(const struct wcase *c, struct wres r[][2],
			  struct pfres pf[2])
{
	const size_t n = (size_t)c->cycles * (size_t)c->reps;
	memset(r, 0, sizeof(struct wres) * UFPB_NSET * 2);
	memset(pf, 0, sizeof(struct pfres) * 2);
	for (int on = 0; on < 2; on++) {
		pf[on].ns = malloc(n * sizeof(double));
		pf[on].learn_ns = malloc(n * sizeof(double));
		if (!pf[on].ns || !pf[on].learn_ns)
			abort();
	}
	for (size_t k = 0; k < UFPB_NSET; k++)
		for (int w = 0; w < 2; w++)
			r[k][w].ns = malloc(n * sizeof(double));
}

static void free_results(struct wres r[][2], struct pfres pf[2])
{
	for (int on = 0; on < 2; on++) {
		free(pf[on].ns);
		free(pf[on].learn_ns);
	}
	for (size_t k = 0; k < UFPB_NSET; k++)
		for (int w = 0; w < 2; w++)
			free(r[k][w].ns);
}

/* Every setting warm and cold, then prefetch on and off, interleaved rep
 * by rep: a noisy neighbour hits all. */
static void run_case(const struct wcase *c, struct wres r[][2],
		     struct pfres pf[2])
{
	/* A discarded run first: one-time costs of the process (thread
	 * stacks, allocator arenas) would land in the first row's residency */
	if (r[0][0].ns) {
		struct wres warmup = {.ns = r[0][0].ns};
		run(&ufpb_settings[0], &c->w, c->initial, c->pages, c->npages,
		    0, c->cycles < 4 ? c->cycles : 4, &warmup);
	}
	for (int rep = 0; rep < c->reps; rep++) {
		for (size_t k = 0; k < UFPB_NSET; k++)
			for (int w = 0; w < 2; w++)
				if (!r[k][w].err && r[k][w].ns)
					run(&ufpb_settings[k], &c->w,
					    c->initial, c->pages, c->npages, w,
					    c->cycles, &r[k][w]);
				else if (!r[k][w].ns)
					r[k][w].err = -ENOMEM;
		for (int on = 1; on >= 0; on--)
			if (!pf[on].err)
				run_pf(on, &c->w, c->initial, c->pages,
				       c->npages, c->cycles, &pf[on]);
	}
}

static int bench_file(struct ufpb *b, const char *path)
{
	struct wcase c;
	struct wres r[UFPB_NSET][2];
	double med[UFPB_NSET][2] = {{0}};
	struct pfres pf[2];
	char summary[512];
	int err = load_case(b, path, &c);
	if (err)
		return err;
	alloc_results(&c, r, pf);
	ufpw_summary(&c.w, c.name, summary, sizeof(summary));
	ufpb_say(b, "%s\n", summary);
	ufpb_say(b, "  %-26s %9s %9s %4s%s\n", "setting", "warm us", "cold us",
		 "", ufpb_resid_head());
	run_case(&c, r, pf);
	for (size_t k = 0; k < UFPB_NSET; k++)
		print_setting(b, c.name, k, r[k], med[k], c.npages, c.initial);
	verdicts(b, c.name, r, med);
	print_pf(b, c.name, pf, c.npages);
	ufpb_say(b, "\n");
	free_results(r, pf);
	free(c.pages);
	ufpw_free(&c.w);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ufpb_wasm(struct ufpb *b, int argc, char **argv)
{
	char *files[64];
	int n = 0;

	for (int i = 0; i < argc && n < 64; i++)
		if (strcmp(argv[i], "--wasm"))
			files[n++] = strdup(argv[i]);
	if (!n) {
		const char *dir = getenv("UFP_SHARED_WASM");
		char buf[4096];
		if (!dir) {
			snprintf(buf, sizeof(buf), "%s/../shared/wasm",
				 UFP_SOURCE_DIR);
			dir = buf;
		}
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) && n < 64) {
			size_t l = strlen(e->d_name);
			if (l > 5 && !strcmp(e->d_name + l - 5, ".wasm")) {
				char *p = malloc(strlen(dir) + l + 2);
				sprintf(p, "%s/%s", dir, e->d_name);
				files[n++] = p;
			}
		}
		if (d)
			closedir(d);
		if (!n) {
			ufpb_say(b,
				 "wasm: no .wasm files given and none in %s\n",
				 dir);
			return 0;
		}
		qsort(files, (size_t)n, sizeof(files[0]), cmp_str);
	}
	ufpb_say(b,
		 "wasm: real modules; a cycle = instantiate, read every page "
		 "the data segments cover (5%% written), free; median over "
		 "%d reps.\n  warm = same module back in its slot; cold = "
		 "the slot held another module. Residency: one more warm "
		 "cycle per rep.\n",
		 b->reps);
	ufpb_resid_explain(b);
	ufpb_say(b, "\n");
	for (int i = 0; i < n; i++) {
		bench_file(b, files[i]);
		free(files[i]);
	}
	print_pf_table(b);
	return 0;
}
