/* SPDX-License-Identifier: MIT */
/*
 * wasm_bench.c - `ufp-bench wasm [FILE.wasm...]`: real modules. Each file's
 * active data segments become a module image over its initial memory;
 * a cycle instantiates a memory, touches every page the image covers
 * (reads; 5% of them written) and frees it. Warm (same module back in its
 * affine slot) and cold (two copies of the module alternate in one slot),
 * UFFD with dirty tracking against COW, in the same run.
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

struct wsetting {
	const char *name;
	ufp_backend backend;
	ufp_dirty_tracking dirty;
};

static const struct wsetting wsettings[] = {
	{"uffd+dirty", UFP_BACKEND_UFFD, UFP_DIRTY_AUTO},
	{"uffd", UFP_BACKEND_UFFD, UFP_DIRTY_OFF},
	{"cow", UFP_BACKEND_COW, UFP_DIRTY_OFF},
};
#define NWSET (sizeof(wsettings) / sizeof(wsettings[0]))

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

static int run(const struct wsetting *st, const struct ufpw_module *w,
	       uint64_t initial, const uint32_t *pages, size_t npages, int cold,
	       int cycles, double *ns)
{
	const size_t page = ufpi_page_size();
	ufp_config c;
	ufp_pool *pool;
	ufp_module *m[2] = {NULL, NULL};
	int err;

	ufp_config_init(&c);
	c.slots = 1;
	c.max_memory_bytes = initial;
	c.guard_bytes = 64 << 10;
	c.backend = st->backend;
	c.dirty_tracking = st->dirty;
	c.reclaim = UFP_RECLAIM_SYNC;
	err = ufp_pool_create(&c, &pool);
	if (err)
		return err;
	for (int k = 0; k < 1 + cold && !err; k++)
		err = ufp_module_create(pool, (const ufp_segment *)w->segs,
					w->nsegs, initial, &m[k]);
	for (int k = -2; k < cycles && !err; k++) {
		ufp_memory *mem;
		uint64_t t0 = ufpb_now_ns();
		err = ufp_memory_alloc(pool, m[cold ? (k & 1) : 0], 0, &mem);
		if (err)
			break;
		volatile unsigned char *b = ufp_memory_base(mem);
		unsigned char sink = 0;
		for (size_t i = 0; i < npages; i++) {
			sink ^= b[(size_t)pages[i] * page];
			if (i % 20 == 7)
				b[(size_t)pages[i] * page] = sink;
		}
		err = ufp_memory_free(mem);
		if (k >= 0)
			ns[k] = (double)(ufpb_now_ns() - t0);
	}
	for (int k = 0; k < 2; k++)
		if (m[k])
			UFPI_IGNORE(ufp_module_drop(m[k]));
	UFPI_IGNORE(ufp_pool_destroy(pool));
	return err;
}

static int bench_file(struct ufpb *b, const char *path)
{
	struct ufpw_module w;
	char err_msg[256];
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int err = ufpw_load_file(path, &w, err_msg, sizeof(err_msg));
	uint64_t initial;

	if (err) {
		ufpb_say(b, "  %s: %s\n", name, err_msg);
		return err;
	}
	if (ufpw_initial_bytes(&w, &initial) || initial > ((uint64_t)1 << 32) ||
	    ufpw_check_bounds(&w, err_msg, sizeof(err_msg))) {
		ufpb_say(b, "  %s: unusable memory layout\n", name);
		ufpw_free(&w);
		return -ERANGE;
	}
	if (!initial)
		initial = UFPW_PAGE_BYTES;
	size_t npages;
	uint32_t *pages = image_pages(&w, initial, &npages);
	int cycles = b->quick ? 40 : 200;
	double *ns = malloc((size_t)cycles * sizeof(*ns) * (size_t)b->reps);
	double warm[NWSET] = {0}, cold[NWSET] = {0};
	if (!pages || !ns)
		abort();
	char summary[512];
	ufpw_summary(&w, name, summary, sizeof(summary));
	ufpb_say(b, "%s\n", summary);
	for (size_t k = 0; k < NWSET; k++) {
		for (int c = 0; c < 2; c++) {
			int n = 0;
			for (int r = 0; r < b->reps && !err; r++) {
				err = run(&wsettings[k], &w, initial, pages,
					  npages, c, cycles, ns + n);
				n += cycles;
			}
			if (err) {
				ufpb_say(b, "  %-12s %s\n", wsettings[k].name,
					 ufp_strerror(err));
				err = 0;
				continue;
			}
			double med = ufpb_median(ns, (size_t)n);
			double p99 = ufpb_percentile(ns, (size_t)n, 99);
			(c ? cold : warm)[k] = med;
			ufpb_emit(
				b, "wasm",
				"\"module\": \"%s\", \"setting\": \"%s\", "
				"\"mode\": \"%s\", \"image_pages\": %zu, "
				"\"initial_bytes\": %llu, \"ns_median\": %.0f, "
				"\"ns_p99\": %.0f, \"cycles\": %d",
				name, wsettings[k].name, c ? "cold" : "warm",
				npages, (unsigned long long)initial, med, p99,
				n);
		}
		ufpb_say(b, "  %-12s warm %9.1f us   cold %9.1f us\n",
			 wsettings[k].name, warm[k] / 1000, cold[k] / 1000);
	}
	if (warm[0] && warm[2])
		ufpb_say(b,
			 "  => warm: uffd+dirty %.2fx %s than cow; cold: "
			 "cow %.2fx %s than uffd+dirty\n\n",
			 warm[0] < warm[2] ? warm[2] / warm[0]
					   : warm[0] / warm[2],
			 warm[0] < warm[2] ? "faster" : "SLOWER",
			 cold[2] < cold[0] ? cold[0] / cold[2]
					   : cold[2] / cold[0],
			 cold[2] < cold[0] ? "faster" : "slower");
	free(ns);
	free(pages);
	ufpw_free(&w);
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
		 "the slot held another module.\n\n",
		 b->reps);
	for (int i = 0; i < n; i++) {
		bench_file(b, files[i]);
		free(files[i]);
	}
	return 0;
}
