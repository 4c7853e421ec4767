/* SPDX-License-Identifier: MIT */
/*
 * header.c - a runtime header directly in front of the wasm bytes, as
 * wasm3 keeps one, with today's API: the pool has no prefix setting yet,
 * so the header gets a wasm page of its own at the start of each slot and
 * everything wasm-visible is shifted by that page. Exits non-zero on any
 * failure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uffdpool.h>

#define CHECK(call)                                                            \
	do {                                                                   \
		int err_ = (call);                                             \
		if (err_) {                                                    \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, \
				#call, ufp_strerror(err_));                    \
			exit(1);                                               \
		}                                                              \
	} while (0)

#define EXPECT(cond)                                                      \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "%s:%d: expected %s\n", __FILE__, \
				__LINE__, #cond);                         \
			exit(1);                                          \
		}                                                         \
	} while (0)

/* [header] */
/* The runtime's header sits right before wasm address 0. Sizes stay
 * multiples of 64 KiB, so the header costs one wasm page per slot, of
 * which only its last bytes are used (one page fault and one page reset
 * per instantiation). */
#define HEADER_SPACE 65536u
struct rt_header {
	uint64_t length; /* wasm bytes accessible */
	uint32_t magic, flags;
};

/* Segments and sizes shifted past the header page. The header's initial
 * bytes may be part of the image too: here its magic. */
static int acquire_shifted(ufp_pool *pool, const ufp_segment *segs, size_t n,
			   uint64_t initial, ufp_module **out)
{
	static const struct rt_header init = {.magic = 0x6d336873};
	ufp_segment *s = calloc(n + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s[0] = (ufp_segment){HEADER_SPACE - sizeof(init), &init, sizeof(init)};
	for (size_t i = 0; i < n; i++) {
		s[i + 1] = segs[i];
		s[i + 1].offset += HEADER_SPACE;
	}
	int err =
		ufp_module_acquire(pool, s, n + 1, HEADER_SPACE + initial, out);
	free(s);
	return err;
}

static unsigned char *wasm_base(ufp_memory *mem)
{
	return (unsigned char *)ufp_memory_base(mem) + HEADER_SPACE;
}

static struct rt_header *header_of(ufp_memory *mem)
{
	return (struct rt_header *)(wasm_base(mem) - sizeof(struct rt_header));
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
	cfg.max_memory_bytes = wasm_max + HEADER_SPACE; /* header page too */
	cfg.guard_bytes = 64 << 10;
	/* [config] */
	CHECK(ufp_pool_create(&cfg, &pool));

	static const char data[] = "wasm data at 100";
	ufp_segment seg = {100, data, sizeof(data)};
	EXPECT(acquire_shifted(pool, &seg, 1, 65536, &mod) == 0);
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	EXPECT(ufp_memory_size(mem) == HEADER_SPACE + 65536);
	unsigned char *wasm = wasm_base(mem);
	struct rt_header *h = header_of(mem);
	EXPECT(h->magic == 0x6d336873);
	h->length = ufp_memory_size(mem) - HEADER_SPACE;
	EXPECT(strcmp((const char *)wasm + 100, data) == 0);
	EXPECT(wasm[65535] == 0);

	/* memory.grow: the wasm size plus the header page */
	CHECK(ufp_memory_grow(mem, HEADER_SPACE + 2 * 65536));
	h->length = ufp_memory_size(mem) - HEADER_SPACE;
	EXPECT(h->length == 2 * 65536 && wasm[2 * 65536 - 1] == 0);
	CHECK(ufp_memory_free(mem));

	/* the next instance finds the header as the image made it */
	CHECK(ufp_memory_alloc(pool, mod, 0, &mem));
	EXPECT(header_of(mem)->magic == 0x6d336873);
	EXPECT(header_of(mem)->length == 0);
	CHECK(ufp_memory_free(mem));
	CHECK(ufp_module_release(mod));
	CHECK(ufp_pool_destroy(pool));
	printf("header: ok\n");
	return 0;
}
