/* SPDX-License-Identifier: MIT */
/*
 * wasm_module.c - a runtime without a module/instance split: every
 * instantiation reads the .wasm file again, builds the data segments and
 * asks uffdpool for the module by its contents (ufp_module_acquire). The
 * same contents give the same module, so every instantiation after the
 * first reuses a warm slot instead of paying module creation and a purge.
 *
 * Usage: example_wasm_module [FILE.wasm [INSTANTIATIONS]]; without a file,
 * $UFP_SHARED_WASM/sqljs-1.16.0.wasm (exit 77, "skipped", when absent).
 * The data segments are read by the project's loader (bench/wasm.h).
 * Exits non-zero on any failure.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uffdpool.h>

#include "example.h"

#include "wasm.h"

#define SKIP 77

/* The loader's segments have ufp_segment's layout: pass them as they are. */
_Static_assert(sizeof(struct ufpw_segment) == sizeof(ufp_segment), "layout");
_Static_assert(offsetof(struct ufpw_segment, offset) ==
			       offsetof(ufp_segment, offset) &&
		       offsetof(struct ufpw_segment, bytes) ==
			       offsetof(ufp_segment, bytes) &&
		       offsetof(struct ufpw_segment, len) ==
			       offsetof(ufp_segment, len),
	       "layout");

/* [instantiate] */
/* One instantiation as a runtime without a module/instance split does it:
 * parse, build the segments, acquire the module by its contents, run,
 * free, release. */
static ufp_module *instantiate(ufp_pool *pool, const char *path)
{
	struct ufpw_module wm;
	uint64_t initial;
	char err[256];
	ufp_module *mod;
	ufp_memory *mem;

	if (ufpw_load_file(path, &wm, err, sizeof(err)) ||
	    ufpw_check_bounds(&wm, err, sizeof(err)) ||
	    ufpw_initial_bytes(&wm, &initial)) {
		fprintf(stderr, "%s: %s\n", path, err);
		exit(1);
	}
	/* segments whose offset is global.get must be evaluated by the
	 * runtime first (see minimal.c); this module has none */
	EXPECT(wm.skipped_global == 0);
	CHECK(ufp_module_acquire(pool, (const ufp_segment *)wm.segs, wm.nsegs,
				 initial, &mod));
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	unsigned char *base = ufp_memory_base(mem);
	/* the last segment wins where segments overlap: check the last */
	const struct ufpw_segment *last = &wm.segs[wm.nsegs - 1];
	EXPECT(memcmp(base + last->offset, last->bytes, last->len) == 0);
	memset(base, 0xab, 4096); /* the program runs and writes */
	CHECK(ufp_memory_grow(mem, initial + 65536));
	base[initial] = 1;
	CHECK(ufp_memory_free(mem));
	CHECK(ufp_module_release(mod)); /* the handle may be dead now */
	ufpw_free(&wm);
	return mod; /* only compared, never used */
}
/* [instantiate] */

int main(int argc, char **argv)
{
	char path[4096];
	int n = argc > 2 ? atoi(argv[2]) : 50;

	if (argc > 1) {
		snprintf(path, sizeof(path), "%s", argv[1]);
	} else {
		const char *dir = getenv("UFP_SHARED_WASM");
		snprintf(path, sizeof(path), "%s/sqljs-1.16.0.wasm",
			 dir ? dir : "../shared/wasm");
		FILE *f = fopen(path, "rb");
		if (!f) {
			fprintf(stderr, "%s: absent, skipped\n", path);
			return SKIP;
		}
		fclose(f);
	}
	EXPECT(n >= 2);

	ufp_config cfg;
	ufp_pool *pool;
	ufp_stats st = {.size = sizeof(st)};
	ufp_config_init(&cfg);
	cfg.slots = 4;
	CHECK(ufp_pool_create(&cfg, &pool));

	/* [pin] */
	/* Keep the module warm between instantiations: hold one reference
	 * of our own. Without it the release at the end of each
	 * instantiation is the last one and drops the module: the next
	 * instantiation builds it again and starts on a cold slot. */
	struct ufpw_module wm;
	uint64_t initial;
	char err[256];
	ufp_module *pin;
	if (ufpw_load_file(path, &wm, err, sizeof(err)) ||
	    ufpw_initial_bytes(&wm, &initial)) {
		fprintf(stderr, "%s: %s\n", path, err);
		return 1;
	}
	CHECK(ufp_module_acquire(pool, (const ufp_segment *)wm.segs, wm.nsegs,
				 initial, &pin));
	ufpw_free(&wm);
	/* [pin] */

	CHECK(ufp_pool_stats(pool, &st));
	uint64_t hits = st.affinity_hits, purges = st.purges;
	for (int i = 0; i < n; i++)
		EXPECT(instantiate(pool, path) == pin);
	CHECK(ufp_pool_stats(pool, &st));
	/* one slot serves every instantiation: all but the first hit it */
	EXPECT(st.affinity_hits - hits >= (uint64_t)n - 1);
	EXPECT(st.purges == purges); /* nothing dropped while pinned */

	CHECK(ufp_module_release(pin)); /* the last reference: drop */
	CHECK(ufp_pool_quiesce(pool));
	uint64_t resident;
	CHECK(ufp_pool_resident_bytes(pool, &resident));
	EXPECT(resident == 0);
	CHECK(ufp_pool_destroy(pool));
	printf("wasm_module: %s, %d instantiations of one module, %llu "
	       "affinity hits\n",
	       path, n, (unsigned long long)(st.affinity_hits - hits));
	return 0;
}
