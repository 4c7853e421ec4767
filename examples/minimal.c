/* SPDX-License-Identifier: MIT */
/*
 * minimal.c - the smallest complete embedding: a pool, a module built from
 * data segments (one of them placed by a global's value), a memory that is
 * read, written, grown and freed, the same module's next memory, then
 * drop, quiesce and destroy. Exits non-zero on any failure.
 *
 * Built and run by ctest (label "examples"); docs/embedding.md quotes it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uffdpool.h>

#include "example.h"

#define WASM_PAGE 65536u

/* Library messages go to stderr; errors that calls return are not logged
 * above DEBUG, so this prints only what a caller could not see. */
static void log_line(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	fprintf(stderr, "uffdpool[%d]: %s\n", (int)level, msg);
}

/* [grow] */
/* memory.grow as WebAssembly defines it: grow by `delta` pages, return the
 * old size in pages or -1. The module's declared maximum is the runtime's
 * to enforce: the pool knows one max_memory_bytes for every slot. */
static int64_t wasm_memory_grow(ufp_memory *mem, uint64_t declared_max_pages,
				uint64_t delta)
{
	uint64_t old = ufp_memory_size(mem) / WASM_PAGE;
	if (delta > declared_max_pages - old)
		return -1;
	if (ufp_memory_grow(mem, (old + delta) * WASM_PAGE))
		return -1; /* -E2BIG beyond max_memory_bytes, -ENOMEM */
	return (int64_t)old;
}
/* [grow] */

int main(void)
{
	ufp_config cfg;
	ufp_pool *pool;
	ufp_module *mod;
	ufp_memory *mem;

	/* [pool] */
	/* wasm32 defaults: 4 GiB memories, 2 GiB guards; then the fields
	 * this runtime cares about */
	ufp_config_init(&cfg);
	cfg.slots = 8;			    /* at most 8 live memories */
	cfg.keep_resident_bytes = 64 << 10; /* keep the first page warm */
	cfg.log = log_line;
	CHECK(ufp_pool_create(&cfg, &pool));
	/* [pool] */

	/* [segments] */
	/* Active data segments, as the runtime finds them in the module. An
	 * offset that is `global.get $g` (plus a constant, with extended
	 * const) is evaluated by the runtime first: here an imported
	 * __memory_base of 4096, as a dynamic linker would choose it. */
	static const char hello[] = "hello, linear memory";
	static const unsigned char table[4] = {1, 2, 3, 4};
	uint64_t memory_base = 4096; /* the value of the imported global */
	ufp_segment segs[] = {
		{.offset = 1024, .bytes = hello, .len = sizeof(hello)},
		{.offset = memory_base + 70000, .bytes = table, .len = 4},
	};
	/* 2 wasm pages of initial memory; segments are copied */
	CHECK(ufp_module_create(pool, segs, 2, 2 * WASM_PAGE, &mod));
	/* [segments] */

	/* [instance] */
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem)); /* 0: module's size */
	unsigned char *base = ufp_memory_base(mem);
	EXPECT(ufp_memory_size(mem) == 2 * WASM_PAGE);
	EXPECT(strcmp((const char *)base + 1024, hello) == 0);
	EXPECT(base[memory_base + 70003] == 4);
	EXPECT(base[0] == 0 && base[2 * WASM_PAGE - 1] == 0);

	/* memory.grow by one page (declared maximum: 4 pages); new bytes
	 * read as zero */
	EXPECT(wasm_memory_grow(mem, 4, 1) == 2);
	EXPECT(ufp_memory_size(mem) == 3 * WASM_PAGE);
	EXPECT(wasm_memory_grow(mem, 4, 2) == -1); /* beyond the maximum */
	EXPECT(wasm_memory_grow(mem, 4, 0) == 3);
	EXPECT(base[2 * WASM_PAGE] == 0);
	base[2 * WASM_PAGE] = 42; /* the instance writes */
	strcpy((char *)base + 1024, "changed");
	CHECK(ufp_memory_free(mem)); /* resets the slot */

	/* the next instance of the module sees the image again */
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	base = ufp_memory_base(mem);
	EXPECT(strcmp((const char *)base + 1024, hello) == 0);
	EXPECT(ufp_memory_size(mem) == 2 * WASM_PAGE);
	CHECK(ufp_memory_free(mem));
	/* [instance] */

	/* [teardown] */
	CHECK(ufp_module_drop(mod));   /* purge its slots (asynchronous) */
	CHECK(ufp_pool_quiesce(pool)); /* wait for the purge */
	uint64_t resident;
	CHECK(ufp_pool_resident_bytes(pool, &resident));
	EXPECT(resident == 0);
	CHECK(ufp_pool_destroy(pool)); /* -EBUSY while memories are live */
	/* [teardown] */

	printf("minimal: ok (uffdpool %s)\n", ufp_version());
	return 0;
}
