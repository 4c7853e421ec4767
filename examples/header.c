/* SPDX-License-Identifier: MIT */
/*
 * header.c - a runtime header directly in front of the wasm bytes, as
 * wasm3 keeps one: prefix_bytes gives every slot read-write bytes before
 * the memory's base, zero for every memory, outside the wasm size and
 * max_memory_bytes. Exits non-zero on any failure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uffdpool.h>

#include "example.h"

/* [header] */
/* The runtime's header sits right before wasm address 0, in the slot's
 * prefix: the wasm base is the memory's base, segments and sizes are the
 * module's own. */
struct rt_header {
	uint64_t length; /* wasm bytes accessible */
	uint32_t magic, flags;
};

static struct rt_header *header_of(ufp_memory *mem)
{
	return (struct rt_header *)((unsigned char *)ufp_memory_base(mem) -
				    sizeof(struct rt_header));
}

/* Instantiation: the header reads as zero; the runtime fills it. */
static void header_init(ufp_memory *mem)
{
	struct rt_header *h = header_of(mem);
	h->magic = 0x6d336873;
	h->length = ufp_memory_size(mem);
}
/* [header] */

int main(void)
{
	const uint64_t wasm_max = 16 * 65536; /* the modules' largest maximum */
	ufp_config cfg;
	ufp_pool *pool;
	ufp_module *mod;
	ufp_memory *mem;

	/* [config] */
	ufp_config_init(&cfg);
	cfg.slots = 4;
	cfg.max_memory_bytes = wasm_max;
	cfg.guard_bytes = 64 << 10;
	cfg.prefix_bytes = 4096; /* one page: room for the header */
	/* [config] */
	CHECK(ufp_pool_create(&cfg, &pool));

	static const char data[] = "wasm data at 100";
	ufp_segment seg = {100, data, sizeof(data)};
	CHECK(ufp_module_acquire(pool, &seg, 1, 65536, &mod));
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	EXPECT(ufp_memory_size(mem) == 65536);
	unsigned char *wasm = ufp_memory_base(mem);
	EXPECT(header_of(mem)->magic == 0 && header_of(mem)->length == 0);
	header_init(mem);
	EXPECT(strcmp((const char *)wasm + 100, data) == 0);
	EXPECT(wasm[65535] == 0);

	/* memory.grow: the wasm size only */
	CHECK(ufp_memory_grow(mem, 2 * 65536));
	header_of(mem)->length = ufp_memory_size(mem);
	EXPECT(wasm[2 * 65536 - 1] == 0);
	CHECK(ufp_memory_free(mem));

	/* the next instance finds a zero header again */
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	EXPECT(header_of(mem)->magic == 0 && header_of(mem)->length == 0);
	CHECK(ufp_memory_free(mem));
	CHECK(ufp_module_release(mod));
	CHECK(ufp_pool_destroy(pool));
	printf("header: ok\n");
	return 0;
}
