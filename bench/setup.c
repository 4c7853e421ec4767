/* SPDX-License-Identifier: MIT */
/*
 * setup.c - what the scenarios that compare settings share: the settings
 * compared like with like, their pool setup, image bytes, modules, and the
 * touch every cycle makes (read each page, write a fixed fraction).
 */
#include <stdlib.h>

#include "bench.h"
#include "internal.h"

/* UFFD at the defaults is what an embedder gets (keep_resident_bytes
 * UFP_KEEP_AUTO: a slot keeps what its last memory wrote); MINOR and COPY
 * force the two fill modes with keep 0; COW keep 0 is Wasmtime's default,
 * COW keep-all the copy-on-write allocator that keeps as much as the best
 * UFFD setting. */
const struct ufpb_setting ufpb_settings[UFPB_NSET] = {
	[UFPB_SET_UFFD_DEFAULT] = {"uffd default", UFP_BACKEND_UFFD,
				   UFP_FILL_AUTO, UFP_DIRTY_AUTO, 0, 1},
	[UFPB_SET_UFFD_MINOR] = {"uffd fill=MINOR keep=0", UFP_BACKEND_UFFD,
				 UFP_FILL_MINOR, UFP_DIRTY_AUTO, 0},
	[UFPB_SET_UFFD_COPY] = {"uffd fill=COPY keep=0", UFP_BACKEND_UFFD,
				UFP_FILL_COPY, UFP_DIRTY_AUTO, 0},
	[UFPB_SET_COW_KEEP0] = {"cow keep=0", UFP_BACKEND_COW, UFP_FILL_AUTO,
				UFP_DIRTY_OFF, 0},
	[UFPB_SET_COW_KEEPALL] = {"cow keep=all", UFP_BACKEND_COW,
				  UFP_FILL_AUTO, UFP_DIRTY_OFF, 1},
};

void ufpb_config(const struct ufpb_setting *st, uint32_t slots,
		 uint64_t max_bytes, ufp_config *c)
{
	ufp_config_init(c);
	c->slots = slots;
	c->max_memory_bytes = max_bytes;
	c->guard_bytes = 64 << 10;
	c->backend = st->backend;
	c->fill_mode = st->fill;
	c->dirty_tracking = st->dirty;
	if (!st->keep_default)
		c->keep_resident_bytes = st->keep_all ? max_bytes : 0;
	c->prefetch = st->prefetch;
	c->reclaim = UFP_RECLAIM_SYNC;
}

void ufpb_affine_config(uint32_t slots, uint64_t max_bytes, ufp_config *c)
{
	ufp_config_init(c);
	c->slots = slots;
	c->max_memory_bytes = max_bytes;
	c->guard_bytes = 64 << 10;
	c->strategy = UFP_STRATEGY_REUSE_AFFINITY;
	c->keep_resident_bytes = max_bytes;
}

int ufpb_pool_open(const struct ufpb_setting *st, uint32_t slots,
		   uint64_t max_bytes, ufp_pool **pool, ufp_fill_mode *fill)
{
	ufp_config c;
	ufpb_config(st, slots, max_bytes, &c);
	int err = ufp_pool_create(&c, pool);
	if (!err && fill)
		err = ufp_pool_fill_mode(*pool, fill);
	return err;
}

void ufpb_pool_close(ufp_pool *pool, ufp_module *const *m, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (m[k])
			UFPI_IGNORE(ufp_module_drop(m[k]));
	if (pool)
		UFPI_IGNORE(ufp_pool_destroy(pool));
}

const char *ufpb_fill_note(const struct ufpb_setting *st, ufp_fill_mode got)
{
	if (st->backend != UFP_BACKEND_UFFD || st->fill == got ||
	    got == UFP_FILL_AUTO) /* the same, or unknown (no pool) */
		return "";
	if (st->fill == UFP_FILL_AUTO)
		return got == UFP_FILL_MINOR ? " (MINOR)" : " (COPY)";
	return got == UFP_FILL_COPY ? " (ran COPY!)" : " (ran MINOR!)";
}

/* names[v], or "?" for a value the table does not know */
static const char *name_of(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n && names[v] ? names[v] : "?";
}
#define NAME_OF(names, v) name_of(names, sizeof(names) / sizeof(names[0]), v)

const char *ufpb_backend_name(ufp_backend b)
{
	static const char *const names[] = {
		[UFP_BACKEND_AUTO] = "AUTO",
		[UFP_BACKEND_UFFD] = "UFFD",
		[UFP_BACKEND_COW] = "COW",
		[UFP_BACKEND_COPY] = "COPY",
	};
	return NAME_OF(names, (int)b);
}

const char *ufpb_fill_name(ufp_fill_mode f)
{
	static const char *const names[] = {
		[UFP_FILL_AUTO] = "AUTO",
		[UFP_FILL_MINOR] = "MINOR",
		[UFP_FILL_COPY] = "COPY",
	};
	return NAME_OF(names, (int)f);
}

const char *ufpb_reclaim_name(ufp_reclaim r)
{
	static const char *const names[] = {
		[UFP_RECLAIM_AUTO] = "AUTO",
		[UFP_RECLAIM_URING] = "URING",
		[UFP_RECLAIM_SYNC] = "SYNC",
		[UFP_RECLAIM_PROCESS_MADVISE] = "PROCESS_MADVISE",
	};
	return NAME_OF(names, (int)r);
}

unsigned char *ufpb_image_bytes(size_t len, uint64_t seed)
{
	unsigned char *data = malloc(len ? len : 1);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 42;
	if (!data)
		return NULL;
	for (size_t k = 0; k < len; k++) {
		if (k % 8 == 0)
			x = x * 6364136223846793005ull + 1442695040888963407ull;
		data[k] = (unsigned char)((x >> (k % 8 * 8)) | 1);
	}
	return data;
}

int ufpb_module(ufp_pool *pool, const unsigned char *data, size_t len,
		uint64_t mem_bytes, ufp_module **m)
{
	ufp_segment seg = {0, data, len};
	if (!mem_bytes)
		mem_bytes = (len + UFPI_WASM_PAGE - 1) / UFPI_WASM_PAGE *
			    UFPI_WASM_PAGE;
	return ufp_module_create(pool, &seg, 1, mem_bytes, m);
}

static int writes_page(uint64_t p, unsigned permille)
{
	return (p * 2654435761u) % 1000 < permille;
}

void ufpb_touch(unsigned char *base, uint64_t pages, unsigned permille,
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

uint64_t ufpb_written_pages(uint64_t pages, unsigned permille)
{
	uint64_t n = 0;
	for (uint64_t p = 0; p < pages; p++)
		n += (uint64_t)writes_page(p, permille);
	return n;
}

uint64_t ufpb_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void ufpb_shuffle(uint32_t *v, size_t n, uint64_t seed)
{
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++)
		v[i] = (uint32_t)i;
	for (size_t i = n ? n - 1 : 0; i > 0; i--) {
		size_t j = (size_t)(ufpb_splitmix(&s) % (i + 1));
		uint32_t t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

int ufpb_wave(ufp_pool *pool, ufp_module *m, uint32_t k, ufp_memory **mem,
	      ufpb_fill_fn fill, const void *arg)
{
	uint32_t n = 0;
	int err = 0;

	for (; n < k; n++) {
		err = ufp_memory_alloc(pool, m, 0, &mem[n]);
		if (err)
			break;
		fill(ufp_memory_base(mem[n]), n, arg);
	}
	for (uint32_t i = 0; i < n; i++) {
		int e = ufp_memory_free(mem[i]);
		if (!err)
			err = e;
	}
	return err;
}
