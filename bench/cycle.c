/* SPDX-License-Identifier: MIT */
/*
 * cycle.c - `ufp-bench cycle`: alloc -> touch -> free cycles of one module
 * on one thread, the life of a short-lived instance.
 *
 *  warm  the same module comes back to its affine slot every cycle (a
 *        one-slot pool): what affinity and dirty tracking buy;
 *  cold  two modules alternate in one slot, so every allocation starts
 *        from a slot that held the other image: compared with the
 *        bulk-copy floor for the same bytes.
 *
 * Every cycle reads one byte of every page of the image and writes a
 * deterministic fraction of the pages. Backends and settings are measured
 * in the same run, interleaved rep by rep so a noisy neighbour hits all of
 * them alike; figures are medians over all cycles of all reps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

struct setting {
	const char *name;
	ufp_backend backend;
	ufp_dirty_tracking dirty;
	int keep_all; /* keep_resident_bytes = image size (else 0) */
};

static const struct setting settings[] = {
	{"uffd+dirty keep=all", UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 1},
	{"uffd+dirty keep=0", UFP_BACKEND_UFFD, UFP_DIRTY_AUTO, 0},
	{"uffd keep=all", UFP_BACKEND_UFFD, UFP_DIRTY_OFF, 1},
	{"uffd keep=0", UFP_BACKEND_UFFD, UFP_DIRTY_OFF, 0},
	{"cow keep=all", UFP_BACKEND_COW, UFP_DIRTY_OFF, 1},
	{"cow keep=0", UFP_BACKEND_COW, UFP_DIRTY_OFF, 0},
	{"copy keep=0", UFP_BACKEND_COPY, UFP_DIRTY_OFF, 0},
};
#define NSET (sizeof(settings) / sizeof(settings[0]))

struct result {
	double *ns; /* per-cycle times, all reps */
	size_t n, cap;
	uint64_t faults;   /* over all measured cycles */
	uint64_t resident; /* pool resident bytes after the last free */
	int err;
};

static void push(struct result *r, double v)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 256;
		r->ns = realloc(r->ns, r->cap * sizeof(*r->ns));
		if (!r->ns)
			abort();
	}
	r->ns[r->n++] = v;
}

static int writes_page(uint64_t p, unsigned permille)
{
	return (p * 2654435761u) % 1000 < permille;
}

static void touch(unsigned char *base, uint64_t pages, unsigned permille,
		  unsigned char stamp)
{
	const size_t page = ufpi_page_size();
	volatile unsigned char sink = 0;
	for (uint64_t p = 0; p < pages; p++) {
		sink ^= base[p * page];
		if (writes_page(p, permille))
			base[p * page + 1] = stamp;
	}
	(void)sink;
}

static int make_module(ufp_pool *pool, const unsigned char *data, size_t len,
		       ufp_module **m)
{
	ufp_segment seg = {0, data, len};
	uint64_t initial =
		(len + UFPI_WASM_PAGE - 1) / UFPI_WASM_PAGE * UFPI_WASM_PAGE;
	return ufp_module_create(pool, &seg, 1, initial, m);
}

/* One rep of `cycles` cycles with one setting; appends to r. */
static void run(const struct setting *st, const unsigned char *data, size_t len,
		unsigned permille, int cold, int cycles, struct result *r)
{
	const size_t page = ufpi_page_size();
	uint64_t pages = len / page;
	ufp_config c;
	ufp_pool *pool;
	ufp_module *m[2] = {NULL, NULL};
	ufp_stats s0 = {.size = sizeof(s0)}, s1 = s0;

	ufp_config_init(&c);
	c.slots = 1;
	c.max_memory_bytes =
		(len + UFPI_WASM_PAGE - 1) / UFPI_WASM_PAGE * UFPI_WASM_PAGE;
	c.guard_bytes = 64 << 10;
	c.backend = st->backend;
	c.dirty_tracking = st->dirty;
	c.keep_resident_bytes = st->keep_all ? c.max_memory_bytes : 0;
	c.reclaim = UFP_RECLAIM_SYNC;
	r->err = ufp_pool_create(&c, &pool);
	if (r->err)
		return;
	r->err = make_module(pool, data, len, &m[0]);
	if (!r->err && cold)
		r->err = make_module(pool, data + page, len - page, &m[1]);
	for (int k = -2; k < cycles && !r->err; k++) {
		ufp_memory *mem;
		if (k == 0)
			UFPI_IGNORE(ufp_pool_stats(pool, &s0));
		ufp_module *mod = m[cold ? (k & 1) : 0];
		uint64_t t0 = ufpb_now_ns();
		r->err = ufp_memory_alloc(pool, mod, 0, &mem);
		if (r->err)
			break;
		touch(ufp_memory_base(mem), pages, permille, (unsigned char)k);
		r->err = ufp_memory_free(mem);
		uint64_t t1 = ufpb_now_ns();
		if (k >= 0) /* two warm-up cycles first */
			push(r, (double)(t1 - t0));
	}
	UFPI_IGNORE(ufp_pool_stats(pool, &s1));
	r->faults += s1.faults - s0.faults;
	UFPI_IGNORE(ufp_pool_resident_bytes(pool, &r->resident));
	for (int k = 0; k < 2; k++)
		if (m[k])
			UFPI_IGNORE(ufp_module_drop(m[k]));
	UFPI_IGNORE(ufp_pool_destroy(pool));
}

static double median_of(struct result *r)
{
	return ufpb_median(r->ns, r->n);
}

int ufpb_cycle(struct ufpb *b, int argc, char **argv)
{
	static const size_t all_sizes[] = {64 << 10, 1 << 20, 16 << 20};
	static const unsigned all_permille[] = {0, 50, 500};
	const size_t *sizes = all_sizes;
	const unsigned *permilles = all_permille;
	size_t nsizes = 3, nperm = 3;
	static const size_t one_size[] = {1 << 20};
	static const unsigned one_perm[] = {50};
	int reps = b->reps;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			b->json = 1;
		else if (!strcmp(argv[i], "--quick"))
			b->quick = 1;
	}
	if (b->quick) {
		sizes = one_size;
		permilles = one_perm;
		nsizes = nperm = 1;
		reps = reps > 3 ? 3 : reps;
	}
	ufpb_say(b,
		 "cycle: alloc -> read every page, write some -> free, one "
		 "thread, one slot.\n"
		 "  warm = same module back in its affine slot; cold = two "
		 "modules alternate (every alloc starts from the other's "
		 "slot).\n"
		 "  median/p99 per cycle over %d reps; faults per cycle; "
		 "resident = pool bytes left after free.\n\n",
		 reps);

	for (size_t si = 0; si < nsizes; si++) {
		size_t len = sizes[si];
		unsigned char *data = malloc(len);
		if (!data)
			return 1;
		uint64_t seed = 42;
		for (size_t k = 0; k < len; k++) {
			if (k % 8 == 0) {
				seed = seed * 6364136223846793005ull + 1;
			}
			data[k] = (unsigned char)((seed >> (k % 8 * 8)) | 1);
		}
		int cycles = (int)((256u << 20) / len);
		if (cycles < 16)
			cycles = 16;
		if (cycles > 2000)
			cycles = 2000;
		if (b->quick)
			cycles /= 4;

		double floor_ns = 0;
		double fl[16];
		int nfl = 0;
		for (int k = 0; k < reps && k < 16; k++)
			if (ufpb_copy_floor(data, len, &fl[nfl]) == 0)
				nfl++;
		floor_ns = ufpb_median(fl, (size_t)nfl);

		for (size_t pi = 0; pi < nperm; pi++) {
			unsigned pm = permilles[pi];
			ufpb_say(b,
				 "image %zu KiB, %u%% of pages written "
				 "(bulk-copy floor %.1f us)\n",
				 len >> 10, pm / 10, floor_ns / 1000);
			ufpb_say(b, "  %-22s %10s %10s %8s %10s | %10s %8s\n",
				 "setting", "warm us", "p99 us", "faults",
				 "resid KiB", "cold us", "x floor");
			struct result warm[NSET] = {0}, cold[NSET] = {0};
			for (int rep = 0; rep < reps; rep++)
				for (size_t k = 0; k < NSET; k++) {
					run(&settings[k], data, len, pm, 0,
					    cycles, &warm[k]);
					run(&settings[k], data, len, pm, 1,
					    cycles / 2 + 1, &cold[k]);
				}
			double best_dirty = 0, best_cow = 0, off_same = 0,
			       on_same = 0, off_zero = 0, on_zero = 0;
			for (size_t k = 0; k < NSET; k++) {
				const struct setting *st = &settings[k];
				if (warm[k].err || cold[k].err) {
					ufpb_say(
						b, "  %-22s %s\n", st->name,
						ufp_strerror(
							warm[k].err
								? warm[k].err
								: cold[k].err));
					continue;
				}
				double wm = median_of(&warm[k]);
				double wp = ufpb_percentile(warm[k].ns,
							    warm[k].n, 99);
				double cm = median_of(&cold[k]);
				double cp = ufpb_percentile(cold[k].ns,
							    cold[k].n, 99);
				double fpc =
					(double)warm[k].faults /
					(double)(warm[k].n ? warm[k].n : 1);
				ufpb_say(b,
					 "  %-22s %10.1f %10.1f %8.1f %10llu | "
					 "%10.1f %8.2f\n",
					 st->name, wm / 1000, wp / 1000, fpc,
					 (unsigned long long)warm[k].resident >>
						 10,
					 cm / 1000,
					 floor_ns ? cm / floor_ns : 0);
				ufpb_emit(
					b, "cycle",
					"\"setting\": \"%s\", \"image_bytes\": "
					"%zu, \"write_permille\": %u, "
					"\"warm_ns_median\": %.0f, "
					"\"warm_ns_p99\": %.0f, "
					"\"warm_faults_per_cycle\": %.2f, "
					"\"resident_after_free\": %llu, "
					"\"cold_ns_median\": %.0f, "
					"\"cold_ns_p99\": %.0f, "
					"\"floor_ns\": %.0f, \"cycles\": %zu",
					st->name, len, pm, wm, wp, fpc,
					(unsigned long long)warm[k].resident,
					cm, cp, floor_ns, warm[k].n);
				if (st->backend == UFP_BACKEND_UFFD &&
				    st->dirty == UFP_DIRTY_AUTO &&
				    (!best_dirty || wm < best_dirty))
					best_dirty = wm;
				if (st->backend == UFP_BACKEND_COW &&
				    (!best_cow || wm < best_cow))
					best_cow = wm;
				if (st->backend == UFP_BACKEND_UFFD) {
					double *v =
						st->dirty == UFP_DIRTY_AUTO
							? (st->keep_all
								   ? &on_same
								   : &on_zero)
							: (st->keep_all
								   ? &off_same
								   : &off_zero);
					*v = wm;
				}
			}
			if (best_dirty && best_cow && on_same && off_same &&
			    on_zero && off_zero)
				ufpb_say(b,
					 "  => warm speed-up (> 1 = faster): "
					 "dirty "
					 "tracking over none, keep=all: %.2fx, "
					 "keep=0 (the default): %.2fx (target "
					 ">= 5x "
					 "at 1 MiB/5%%);\n     best uffd+dirty "
					 "over "
					 "best cow: %.2fx (target >= 3x)\n\n",
					 off_same / on_same, off_zero / on_zero,
					 best_cow / best_dirty);
			for (size_t k = 0; k < NSET; k++) {
				free(warm[k].ns);
				free(cold[k].ns);
			}
		}
		free(data);
	}
	return 0;
}
