/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=240 fill=copy */
/*
 * test_pool.c - the pool through its public API (lib/pool.c, lib/slot.c):
 * a fresh memory reads its image or zero; writes stay private to their
 * memory and never survive the slot's reset (same module, another module,
 * no module: the lesson of Wasmtime's CVE-2022-39393); out-of-bounds
 * accesses trap; grow; kernel-mode faults (read(2) into linear memory);
 * use after free traps (backends with a handler) and the slot recovers;
 * bad input; waiting for a slot; fd and mapping leaks; and the small API
 * (strerror, version, stats text/JSON).
 *
 * Expectations are computed here, independently of the library: an
 * expected memory is a calloc'd buffer with the module's segments applied
 * in order (later segments overwrite earlier ones), plus what the test
 * itself wrote. Pool tests loop over t_backends[] and assert no handler
 * counter (those tests live in test_handler.c); the privacy tests also
 * loop over dirty tracking AUTO and OFF, and over keep_resident_bytes.
 */
/* ufp-test: timeout=180 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "helpers.h"

#include <criterion/parameterized.h>

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define WPAGE (64 * KiB)

/* ---- patterns and expectations ------------------------------------------ */

static unsigned char pat[512 * 1024];
static unsigned char pat2[512 * 1024];
static const unsigned char zeros[64 * 1024];

static void patterns(void)
{
	t_fill(pat, sizeof(pat), 1001);
	t_fill(pat2, sizeof(pat2), 2002);
}

/* What the test is doing right now (backend, keep_resident_bytes, ...),
 * prefixed to byte mismatches. */
static char ctx[160];
#define set_ctx(...) snprintf(ctx, sizeof(ctx), __VA_ARGS__)

static void assert_bytes(const unsigned char *got, const unsigned char *want,
			 size_t len, const char *what, uint64_t base_off)
{
	t_assert_bytes_ctx(ctx, got, want, len, what, base_off);
}

static void assert_zero(const unsigned char *got, uint64_t len,
			const char *what, uint64_t base_off)
{
	for (uint64_t off = 0; off < len; off += sizeof(zeros)) {
		uint64_t n =
			len - off < sizeof(zeros) ? len - off : sizeof(zeros);
		assert_bytes(got + off, zeros, n, what, base_off + off);
	}
}

/* The memory's bytes are exp[0, explen), then zero up to its size; read
 * sequentially. */
static void check_memory(const ufp_memory *mem, const unsigned char *exp,
			 uint64_t explen, const char *what)
{
	const unsigned char *base = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	cr_assert_not_null(base, "%s: no base", what);
	if (explen > size)
		explen = size;
	if (exp) /* NULL: a memory without module, all zero */
		assert_bytes(base, exp, explen, what, 0);
	else
		explen = 0;
	assert_zero(base + explen, size - explen, what, explen);
}

/* Same, page by page in a random order (first touches all over). */
static void check_memory_random(const ufp_memory *mem, const unsigned char *exp,
				uint64_t explen, uint64_t seed,
				const char *what)
{
	const size_t page = t_page();
	const unsigned char *base = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	size_t np = size / page;
	size_t *order = malloc(np * sizeof(*order));
	cr_assert_not_null(order);
	for (size_t i = 0; i < np; i++)
		order[i] = i;
	for (size_t i = np; i > 1; i--) {
		size_t j = t_rand(&seed) % i;
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < np; i++) {
		uint64_t off = order[i] * page;
		if (off + page <= explen)
			assert_bytes(base + off, exp + off, page, what, off);
		else if (off >= explen)
			assert_zero(base + off, page, what, off);
		else {
			assert_bytes(base + off, exp + off, explen - off, what,
				     off);
			assert_zero(base + explen, off + page - explen, what,
				    explen);
		}
	}
	free(order);
}

/* ---- small wrappers ------------------------------------------------------ */

/* dirty_tracking of the pools mk_pool creates (tests that loop over it) */
static ufp_dirty_tracking cur_dirty = UFP_DIRTY_AUTO;
static const ufp_dirty_tracking dirties[] = {UFP_DIRTY_AUTO, UFP_DIRTY_OFF};
#define NDIRTIES (sizeof(dirties) / sizeof(dirties[0]))

static ufp_pool *mk_pool(ufp_backend b, uint32_t slots, uint64_t max,
			 uint64_t keep)
{
	ufp_config c;
	set_ctx("%s, %u slots, keep %llu, dirty tracking %s", t_backend_name(b),
		slots, (unsigned long long)keep,
		cur_dirty == UFP_DIRTY_OFF ? "off" : "auto");
	t_config(&c, slots, max);
	c.backend = b;
	c.keep_resident_bytes = keep;
	c.dirty_tracking = cur_dirty;
	return t_pool(&c);
}

static ufp_module *mk_module(ufp_pool *p, const ufp_segment *s, size_t n,
			     uint64_t initial)
{
	ufp_module *m = NULL;
	int err = ufp_module_create(p, s, n, initial, &m);
	cr_assert_eq(err, 0, "ufp_module_create: %s", ufp_strerror(err));
	cr_assert_not_null(m);
	return m;
}

static ufp_memory *mk_memory(ufp_pool *p, ufp_module *m, uint64_t bytes)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, m, bytes, &mem);
	cr_assert_eq(err, 0, "ufp_memory_alloc(%llu): %s",
		     (unsigned long long)bytes, ufp_strerror(err));
	cr_assert_not_null(mem);
	cr_assert_not_null(ufp_memory_base(mem));
	return mem;
}

static void drop_module(ufp_module *m)
{
	int err = ufp_module_drop(m);
	cr_assert_eq(err, 0, "ufp_module_drop: %s", ufp_strerror(err));
}

/*
 * The standard image: 256 KiB with a dense first wasm page, an unaligned
 * run, a few sparse bytes, a zero segment over data, and a segment ending
 * exactly at initial_bytes.
 */
#define STD_INITIAL (256 * KiB)
static size_t std_segs(ufp_segment *s)
{
	patterns();
	s[0] = (ufp_segment){0, pat, 64 * KiB};
	s[1] = (ufp_segment){100 * KiB + 3, pat + 70000, 5000};
	s[2] = (ufp_segment){200 * KiB, pat + 130000, 3};
	s[3] = (ufp_segment){10000, zeros, 100};
	s[4] = (ufp_segment){STD_INITIAL - 777, pat + 300000, 777};
	return 5;
}

/* A second, different image over the same 256 KiB. */
static size_t other_segs(ufp_segment *s)
{
	patterns();
	s[0] = (ufp_segment){4096, pat2, 128 * KiB};
	s[1] = (ufp_segment){250 * KiB, pat2 + 200000, 6 * KiB};
	s[2] = (ufp_segment){77, pat2 + 400000, 1};
	return 3;
}

/* Write a non-zero pattern over the whole accessible memory. */
static void scribble(ufp_memory *mem, uint64_t seed)
{
	unsigned char *base = ufp_memory_base(mem);
	uint64_t size = ufp_memory_size(mem);
	t_fill(base, size, seed);
	/* t_fill can produce zero bytes: make every page surely dirty */
	for (uint64_t off = 0; off < size; off += t_page())
		base[off] |= 0x80;
}

/* The pool still works: a memory of m (or no module), every byte checked,
 * written, checked again, freed. */
static void assert_pool_works(ufp_pool *pool, ufp_module *m,
			      const unsigned char *exp, uint64_t explen)
{
	ufp_memory *mem = mk_memory(pool, m, m ? 0 : WPAGE);
	check_memory(mem, exp, m ? explen : 0, "pool still works");
	unsigned char *base = ufp_memory_base(mem);
	base[0] ^= 0xff;
	cr_assert_eq(base[0], (unsigned char)((m ? exp[0] : 0) ^ 0xff));
	t_free(mem);
}

/* ---- fresh memories: image or zero -------------------------------------- */

static size_t make_cases(struct t_case *c)
{
	patterns();
	size_t n = t_common_cases(c, pat, zeros);
	c[n++] = (struct t_case){"dense",
				 512 * KiB,
				 2,
				 {{0, pat, 512 * KiB}, {3 * 4096, pat2, 4096}}};
	c[n++] = (struct t_case){"no_segments", 64 * KiB, 0, {{0}}};
	return n;
}

Test(pool_image, fresh_memory_equals_image_or_zero)
{
	struct t_case c[16];
	size_t n = make_cases(c);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		for (size_t i = 0; i < n; i++) {
			char what[128];
			snprintf(what, sizeof(what), "%s/%s",
				 t_backend_name(t_backends[k]), c[i].name);
			ufp_module *m = mk_module(pool, c[i].segs, c[i].nsegs,
						  c[i].initial);
			unsigned char *exp = t_apply_segments(
				c[i].segs, c[i].nsegs, c[i].initial);
			/* two at once: each in its own slot */
			ufp_memory *a = mk_memory(pool, m, 0);
			ufp_memory *b = mk_memory(pool, m, 1 * MiB);
			cr_assert_neq(ufp_memory_slot(a), ufp_memory_slot(b));
			cr_assert_eq(ufp_memory_size(a), c[i].initial);
			cr_assert_eq(ufp_memory_size(b), 1 * MiB);
			check_memory(a, exp, c[i].initial, what);
			check_memory_random(b, exp, c[i].initial, i, what);
			t_free(a);
			t_free(b);
			free(exp);
			drop_module(m);
			/* the purge of the dropped module holds its affine
			 * slots until it completes */
			cr_assert_eq(ufp_pool_quiesce(pool), 0);
		}
		t_destroy(pool);
	}
}

Test(pool_image, memory_without_module_reads_zero)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		ufp_memory *mem = mk_memory(pool, NULL, 1 * MiB);
		check_memory_random(mem, NULL, 0, 5, "no module");
		scribble(mem, 6);
		t_free(mem);
		mem = mk_memory(pool, NULL, 1 * MiB);
		check_memory(mem, NULL, 0, "no module, again");
		t_free(mem);
		t_destroy(pool);
	}
}

/* The image lives as long as a memory that may still fault it in. */
Test(pool_image, drop_while_live_keeps_the_image)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *mem = mk_memory(pool, m, 0);
		drop_module(m);
		/* nothing was touched before the drop */
		check_memory_random(mem, exp, STD_INITIAL, 3, "after drop");
		t_free(mem);
		cr_assert_eq(ufp_pool_quiesce(pool), 0);
		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
	}
	free(exp);
}

/* ---- private writes ------------------------------------------------------- */

Test(pool_private, two_memories_do_not_see_each_others_writes)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		unsigned char *ea = t_apply_segments(s, ns, 512 * KiB);
		unsigned char *eb = t_apply_segments(s, ns, 512 * KiB);
		ufp_memory *a = mk_memory(pool, m, 512 * KiB);
		ufp_memory *b = mk_memory(pool, m, 512 * KiB);
		cr_assert_neq(ufp_memory_slot(a), ufp_memory_slot(b));
		unsigned char *ba = ufp_memory_base(a);
		unsigned char *bb = ufp_memory_base(b);
		cr_assert_neq(ba, bb);
		uint64_t seed = 99;
		/* interleaved writes at random offsets, both memories */
		for (int i = 0; i < 4000; i++) {
			uint64_t oa = t_rand(&seed) % (512 * KiB);
			uint64_t ob = t_rand(&seed) % (512 * KiB);
			unsigned char va = (unsigned char)(t_rand(&seed) | 1);
			unsigned char vb = (unsigned char)(t_rand(&seed) | 2);
			ba[oa] = va;
			ea[oa] = va;
			bb[ob] = vb;
			eb[ob] = vb;
		}
		check_memory(a, ea, 512 * KiB, "memory a");
		check_memory(b, eb, 512 * KiB, "memory b");
		t_free(a);
		t_free(b);
		free(ea);
		free(eb);
		drop_module(m);
		t_destroy(pool);
	}
}

static const uint64_t keeps[] = {0, 64 * KiB, 256 * KiB, 1 * MiB};
#define NKEEPS (sizeof(keeps) / sizeof(keeps[0]))

/* One round of a privacy test on a 1-slot pool of backend b with
 * keep_resident_bytes `keep`; arg is the test's data. */
typedef void pool_round(ufp_pool *pool, ufp_backend b, uint64_t keep,
			const void *arg);

/* Run `round` on a fresh 1 MiB, 1-slot pool of every backend, every
 * keep_resident_bytes and both dirty trackings; destroy each after. */
static void each_private_pool(pool_round *round, const void *arg)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		for (size_t kd = 0; kd < NKEEPS * NDIRTIES; kd++) {
			size_t kk = kd % NKEEPS;
			cur_dirty = dirties[kd / NKEEPS];
			ufp_pool *pool =
				mk_pool(t_backends[k], 1, 1 * MiB, keeps[kk]);
			round(pool, t_backends[k], keeps[kk], arg);
			t_destroy(pool);
		}
	}
}

/* A round given the module made on its pool and the image's bytes. */
typedef void module_round(ufp_pool *pool, ufp_module *m,
			  const unsigned char *exp, ufp_backend b,
			  uint64_t keep);

struct private_module {
	const ufp_segment *s;
	size_t ns;
	uint64_t initial;
	const unsigned char *exp;
	module_round *round;
};

static void with_module(ufp_pool *pool, ufp_backend b, uint64_t keep,
			const void *arg)
{
	const struct private_module *pm = arg;
	ufp_module *m = mk_module(pool, pm->s, pm->ns, pm->initial);
	pm->round(pool, m, pm->exp, b, keep);
	drop_module(m);
}

/* each_private_pool with a module of segments s made on every pool
 * (dropped after the round). */
static void each_private_module(const ufp_segment *s, size_t ns,
				uint64_t initial, module_round *round)
{
	unsigned char *exp = t_apply_segments(s, ns, initial);
	const struct private_module pm = {s, ns, initial, exp, round};
	each_private_pool(with_module, &pm);
	free(exp);
}

/* each_private_module with the standard image. */
static void each_std_module(module_round *round)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	each_private_module(s, ns, STD_INITIAL, round);
}

static void same_module_rounds(ufp_pool *pool, ufp_module *m,
			       const unsigned char *exp, ufp_backend bk,
			       uint64_t keep)
{
	uint64_t seed = 17;
	for (int round = 0; round < 6; round++) {
		char what[96];
		snprintf(what, sizeof(what), "%s keep %llu round %d",
			 t_backend_name(bk), (unsigned long long)keep, round);
		/* alternate sizes: the image, then zeros */
		uint64_t bytes = round % 2 ? 1 * MiB : STD_INITIAL;
		ufp_memory *mem = mk_memory(pool, m, bytes);
		cr_assert_eq(ufp_memory_slot(mem), 0);
		if (round % 3 == 0)
			check_memory_random(mem, exp, STD_INITIAL, seed, what);
		else
			check_memory(mem, exp, STD_INITIAL, what);
		if (round % 3 == 2) {
			/* touch only a few pages */
			unsigned char *b = ufp_memory_base(mem);
			for (int i = 0; i < 8; i++)
				b[t_rand(&seed) % bytes] = 0xcc;
		} else {
			scribble(mem, seed + (uint64_t)round);
		}
		t_free(mem);
	}
}

Test(pool_private, same_module_same_slot_shows_the_image_again)
{
	each_std_module(same_module_rounds);
}

struct two_images {
	ufp_segment s1[8], s2[8];
	size_t n1, n2;
	unsigned char *e1, *e2;
};

static void other_module_rounds(ufp_pool *pool, ufp_backend b, uint64_t keep,
				const void *arg)
{
	const struct two_images *im = arg;
	(void)b;
	(void)keep;
	ufp_module *m1 = mk_module(pool, im->s1, im->n1, STD_INITIAL);
	ufp_module *m2 = mk_module(pool, im->s2, im->n2, STD_INITIAL);
	for (int round = 0; round < 4; round++) {
		ufp_memory *a = mk_memory(pool, m1, 0);
		check_memory(a, im->e1, STD_INITIAL, "module 1");
		scribble(a, 10 + (uint64_t)round);
		t_free(a);
		ufp_memory *bm = mk_memory(pool, m2, 0);
		cr_assert_eq(ufp_memory_slot(bm), 0);
		check_memory_random(bm, im->e2, STD_INITIAL, (uint64_t)round,
				    "module 2 after module 1");
		/* leave some pages untouched, others dirty */
		unsigned char *bb = ufp_memory_base(bm);
		memset(bb + 64 * KiB, 0x5e, 64 * KiB);
		t_free(bm);
		ufp_memory *c = mk_memory(pool, NULL, 1 * MiB);
		check_memory(c, NULL, 0, "no module after module 2");
		scribble(c, 20 + (uint64_t)round);
		t_free(c);
	}
	drop_module(m1);
	drop_module(m2);
}

Test(pool_private, other_module_same_slot_sees_only_its_image)
{
	struct two_images im;
	im.n1 = std_segs(im.s1);
	im.n2 = other_segs(im.s2);
	im.e1 = t_apply_segments(im.s1, im.n1, STD_INITIAL);
	im.e2 = t_apply_segments(im.s2, im.n2, STD_INITIAL);
	each_private_pool(other_module_rounds, &im);
	free(im.e1);
	free(im.e2);
}

/*
 * Regression: with dirty tracking, a reset kept the shared zero pages a
 * reader had mapped (UFFDIO_ZEROPAGE pages are "clean") but forgot that
 * they were present (populated_hi went to 0). The next memory of a module
 * then read zero where its image has data, and writes over those pages
 * (no fault: the page is present) were never seen by the next reset, so
 * the memory after that read them.
 */
static void zero_pages_round(ufp_pool *pool, ufp_module *m,
			     const unsigned char *exp, ufp_backend bk,
			     uint64_t keep)
{
	(void)bk;
	(void)keep;
	/* a reader of zeros everywhere */
	ufp_memory *a = mk_memory(pool, NULL, 1 * MiB);
	check_memory(a, NULL, 0, "reader of zeros");
	t_free(a);
	/* the module's image must show through */
	ufp_memory *b = mk_memory(pool, m, 0);
	check_memory(b, exp, 1 * MiB, "image after a reader");
	t_free(b);
	/* a reader again, then a writer over its pages */
	a = mk_memory(pool, NULL, 1 * MiB);
	check_memory(a, NULL, 0, "reader of zeros");
	t_free(a);
	a = mk_memory(pool, NULL, 1 * MiB);
	memset(ufp_memory_base(a), 0x93, 1 * MiB);
	t_free(a);
	a = mk_memory(pool, NULL, 1 * MiB);
	check_memory(a, NULL, 0, "after a writer");
	t_free(a);
	b = mk_memory(pool, m, 0);
	check_memory(b, exp, 1 * MiB, "image after a writer");
	t_free(b);
}

Test(pool_private, zero_pages_left_by_a_reader_hide_nothing)
{
	const unsigned char d4[4096] = {[0] = 0xd4, [4095] = 0xd4};
	const ufp_segment seg[] = {{0, d4, sizeof(d4)},
				   {512 * KiB, d4, sizeof(d4)}};
	each_private_module(seg, 2, 1 * MiB, zero_pages_round);
}

/* ---- Wasmtime CVE-2022-39393 -------------------------------------------- */
/*
 * Wasmtime 2.0.1 kept an image module's pages in a slot and a later
 * instance of a module *without* an image in that slot read them. Here:
 * a 1-slot pool, one with an image then one without (and the reverse),
 * with and without kept-resident bytes.
 */

static void image_then_no_image_round(ufp_pool *pool, ufp_module *m,
				      const unsigned char *exp, ufp_backend bk,
				      uint64_t keep)
{
	(void)bk;
	(void)keep;
	/* read only: the image's own pages stay clean */
	ufp_memory *a = mk_memory(pool, m, 0);
	check_memory(a, exp, STD_INITIAL, "image");
	t_free(a);
	ufp_memory *b = mk_memory(pool, NULL, STD_INITIAL);
	cr_assert_eq(ufp_memory_slot(b), 0);
	check_memory(b, NULL, 0, "no image after clean image");
	t_free(b);
	/* read and write */
	a = mk_memory(pool, m, 1 * MiB);
	check_memory(a, exp, STD_INITIAL, "image");
	scribble(a, 31);
	t_free(a);
	b = mk_memory(pool, NULL, 1 * MiB);
	check_memory_random(b, NULL, 0, 4, "no image after dirty image");
	t_free(b);
}

Test(pool_cve_2022_39393, image_then_no_image_reads_only_zeros)
{
	each_std_module(image_then_no_image_round);
}

static void no_image_then_image_round(ufp_pool *pool, ufp_module *m,
				      const unsigned char *exp, ufp_backend bk,
				      uint64_t keep)
{
	(void)bk;
	(void)keep;
	ufp_memory *a = mk_memory(pool, NULL, 1 * MiB);
	scribble(a, 41);
	t_free(a);
	ufp_memory *b = mk_memory(pool, m, 0);
	cr_assert_eq(ufp_memory_slot(b), 0);
	check_memory(b, exp, STD_INITIAL, "image after dirty no-image");
	t_free(b);
	a = mk_memory(pool, NULL, STD_INITIAL);
	scribble(a, 42);
	t_free(a);
	b = mk_memory(pool, m, 1 * MiB);
	check_memory_random(b, exp, STD_INITIAL, 8,
			    "image after dirty no-image");
	t_free(b);
}

Test(pool_cve_2022_39393, no_image_then_image_reads_only_the_image)
{
	each_std_module(no_image_then_image_round);
}

/* A smaller memory grown over bytes a larger one wrote in the same slot. */
static void grown_pages_round(ufp_pool *pool, ufp_module *m,
			      const unsigned char *exp, ufp_backend bk,
			      uint64_t keep)
{
	(void)bk;
	(void)keep;
	for (int who = 0; who < 2; who++) {
		/* the writer: same module, or no module */
		ufp_memory *a = mk_memory(pool, who ? NULL : m, 1 * MiB);
		scribble(a, 51 + (uint64_t)who);
		t_free(a);
		ufp_memory *b = mk_memory(pool, m, 0);
		cr_assert_eq(ufp_memory_size(b), STD_INITIAL);
		cr_assert_eq(ufp_memory_grow(b, 1 * MiB), 0);
		cr_assert_eq(ufp_memory_size(b), 1 * MiB);
		check_memory_random(b, exp, STD_INITIAL, 9,
				    "grown after a writer");
		t_free(b);
		ufp_memory *c = mk_memory(pool, NULL, WPAGE);
		cr_assert_eq(ufp_memory_grow(c, 1 * MiB), 0);
		check_memory(c, NULL, 0, "grown, no module");
		t_free(c);
	}
}

Test(pool_cve_2022_39393, grown_pages_of_a_reused_slot_read_zero)
{
	each_std_module(grown_pages_round);
}

/* ---- bounds ---------------------------------------------------------------- */

ParameterizedTestParameters(pool_bounds, oob_read)
{
	return cr_make_param_array(ufp_backend, (void *)t_backends,
				   T_NBACKENDS);
}
ParameterizedTestParameters(pool_bounds, oob_write)
{
	return cr_make_param_array(ufp_backend, (void *)t_backends,
				   T_NBACKENDS);
}
ParameterizedTestParameters(pool_bounds, oob_read_after_grow)
{
	return cr_make_param_array(ufp_backend, (void *)t_backends,
				   T_NBACKENDS);
}
ParameterizedTestParameters(pool_bounds, read_before_base)
{
	return cr_make_param_array(ufp_backend, (void *)t_backends,
				   T_NBACKENDS);
}
ParameterizedTestParameters(pool_bounds, write_in_guard)
{
	return cr_make_param_array(ufp_backend, (void *)t_backends,
				   T_NBACKENDS);
}

/*
 * Crash expectations carry no .timeout: Criterion 2.4.1 then leaks a
 * runner allocation now and then when the test dies by its signal, which
 * LeakSanitizer turns into a failure of the whole binary. The ctest
 * timeout still bounds a hang.
 */

/* A memory of the standard module, 128 KiB bigger than its image. */
static ufp_memory *bounds_memory(ufp_backend b, ufp_pool **pool)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	*pool = mk_pool(b, 2, 1 * MiB, 0);
	ufp_module *m = mk_module(*pool, s, ns, STD_INITIAL);
	ufp_memory *mem = mk_memory(*pool, m, STD_INITIAL + 128 * KiB);
	/* the last accessible byte is fine (zero: past the image) */
	volatile unsigned char *v = ufp_memory_base(mem);
	cr_assert_eq(v[ufp_memory_size(mem) - 1], 0);
	return mem;
}

ParameterizedTest(ufp_backend *b, pool_bounds, oob_read, .signal = SIGSEGV)
{
	ufp_pool *pool;
	ufp_memory *mem = bounds_memory(*b, &pool);
	volatile unsigned char *v = ufp_memory_base(mem);
	(void)v[ufp_memory_size(mem)];
	cr_assert_fail("reading one byte past the accessible size did not "
		       "trap");
}

ParameterizedTest(ufp_backend *b, pool_bounds, oob_write, .signal = SIGSEGV)
{
	ufp_pool *pool;
	ufp_memory *mem = bounds_memory(*b, &pool);
	volatile unsigned char *v = ufp_memory_base(mem);
	v[ufp_memory_size(mem) + 4096 + 5] = 1;
	cr_assert_fail("writing past the accessible size did not trap");
}

ParameterizedTest(ufp_backend *b, pool_bounds, oob_read_after_grow,
		  .signal = SIGSEGV)
{
	ufp_pool *pool;
	ufp_memory *mem = bounds_memory(*b, &pool);
	uint64_t old = ufp_memory_size(mem);
	cr_assert_eq(ufp_memory_grow(mem, old + 2 * WPAGE), 0);
	volatile unsigned char *v = ufp_memory_base(mem);
	cr_assert_eq(v[old], 0);
	cr_assert_eq(v[old + 2 * WPAGE - 1], 0);
	(void)v[old + 2 * WPAGE];
	cr_assert_fail("reading past the grown size did not trap");
}

ParameterizedTest(ufp_backend *b, pool_bounds, read_before_base,
		  .signal = SIGSEGV)
{
	ufp_pool *pool;
	ufp_memory *mem = bounds_memory(*b, &pool);
	volatile unsigned char *v = ufp_memory_base(mem);
	(void)v[-1];
	cr_assert_fail("reading the byte before the base did not trap");
}

ParameterizedTest(ufp_backend *b, pool_bounds, write_in_guard,
		  .signal = SIGSEGV)
{
	ufp_pool *pool;
	ufp_memory *mem = bounds_memory(*b, &pool);
	volatile unsigned char *v = ufp_memory_base(mem);
	/* past max_memory_bytes: the slot's guard */
	v[1 * MiB + 100] = 1;
	cr_assert_fail("writing in the guard did not trap");
}

Test(pool_bounds, grow_reads_zero_and_respects_limits)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *mem = mk_memory(pool, m, 0);
		unsigned char *base = ufp_memory_base(mem);
		/* touch part of the image before growing */
		assert_bytes(base, exp, 64 * KiB, "before grow", 0);
		base[5] = 0x99;
		exp[5] = 0x99;
		cr_assert_eq(ufp_memory_grow(mem, STD_INITIAL), 0,
			     "grow to the same size");
		cr_assert_eq(ufp_memory_grow(mem, 512 * KiB), 0);
		cr_assert_eq(ufp_memory_size(mem), 512 * KiB);
		cr_assert_eq(ufp_memory_base(mem), base, "grow moved the base");
		check_memory_random(mem, exp, STD_INITIAL, 2, "grown");
		/* the new pages are writable */
		memset(base + 300 * KiB, 0x42, 10 * KiB);
		cr_assert_eq(base[300 * KiB + 10 * KiB - 1], 0x42);
		cr_assert_eq(base[300 * KiB + 10 * KiB], 0);
		/* up to max exactly, then no further */
		cr_assert_eq(ufp_memory_grow(mem, 1 * MiB), 0);
		cr_assert_eq(base[1 * MiB - 1], 0);
		int err = ufp_memory_grow(mem, 1 * MiB + WPAGE);
		cr_assert_eq(err, -E2BIG, "%d (%s)", err, ufp_strerror(err));
		err = ufp_memory_grow(mem, UINT64_MAX - (WPAGE - 1));
		cr_assert_eq(err, -E2BIG, "%d (%s)", err, ufp_strerror(err));
		cr_assert_eq(ufp_memory_size(mem), 1 * MiB,
			     "a failed grow changed the size");
		cr_assert_eq(base[300 * KiB], 0x42);
		cr_assert_eq(base[5], 0x99);
		t_free(mem);
		drop_module(m);
		t_destroy(pool);
		free(exp);
	}
}

/* ---- kernel-mode faults -------------------------------------------------- */

Test(pool_kernel, read_from_pipe_into_untouched_pages, .timeout = 60)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char msg[6000];
	t_fill(msg, sizeof(msg), 61);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		unsigned char *exp = t_apply_segments(s, ns, 512 * KiB);
		ufp_memory *mem = mk_memory(pool, m, 512 * KiB);
		unsigned char *base = ufp_memory_base(mem);
		/* nothing touched yet: into an image page, across a page
		 * boundary, and into the zero part past the image */
		const uint64_t offs[] = {100 * KiB + 50, 192 * KiB - 30,
					 400 * KiB + 1};
		const size_t lens[] = {100, 3000, sizeof(msg)};
		for (int i = 0; i < 3; i++) {
			int fds[2];
			cr_assert_eq(pipe(fds), 0);
			cr_assert_eq(write(fds[1], msg, lens[i]),
				     (ssize_t)lens[i]);
			ssize_t got = read(fds[0], base + offs[i], lens[i]);
			cr_assert_eq(got, (ssize_t)lens[i],
				     "read(2) into untouched memory: %zd (%s)",
				     got, got < 0 ? strerror(errno) : "short");
			memcpy(exp + offs[i], msg, lens[i]);
			close(fds[0]);
			close(fds[1]);
		}
		check_memory(mem, exp, 512 * KiB, "after read(2)");

		/* and the other way: write(2) from untouched memory */
		free(exp);
		exp = t_apply_segments(s, ns, STD_INITIAL);
		ufp_memory *b = mk_memory(pool, m, 0);
		unsigned char *bb = ufp_memory_base(b);
		unsigned char back[5000];
		int fds[2];
		cr_assert_eq(pipe(fds), 0);
		cr_assert_eq(write(fds[1], bb + 98 * KiB, sizeof(back)),
			     (ssize_t)sizeof(back));
		cr_assert_eq(read(fds[0], back, sizeof(back)),
			     (ssize_t)sizeof(back));
		close(fds[0]);
		close(fds[1]);
		assert_bytes(back, exp + 98 * KiB, sizeof(back),
			     "write(2) from untouched memory", 98 * KiB);
		t_free(b);
		t_free(mem);
		free(exp);
		drop_module(m);
		t_destroy(pool);
	}
}

/* ---- use after free ---------------------------------------------------------- */

/* Backends whose freed memory traps (t_backend_has_handler): COW and COPY
 * have no handler, a freed memory there reads zero or kept image bytes. */
static ufp_backend trap_backends[T_NBACKENDS];

static size_t list_trap_backends(void)
{
	size_t n = 0;
	for (size_t k = 0; k < T_NBACKENDS; k++)
		if (t_backend_has_handler(t_backends[k]))
			trap_backends[n++] = t_backends[k];
	return n;
}

ParameterizedTestParameters(pool_uaf, touch_after_free_traps_sigbus)
{
	size_t n = list_trap_backends();
	return cr_make_param_array(ufp_backend, trap_backends, n);
}

ParameterizedTest(ufp_backend *b, pool_uaf, touch_after_free_traps_sigbus,
		  .signal = SIGBUS)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	ufp_pool *pool = mk_pool(*b, 1, 1 * MiB, 0);
	ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
	ufp_memory *mem = mk_memory(pool, m, 1 * MiB);
	volatile unsigned char *v = ufp_memory_base(mem);
	cr_assert_eq(v[0], pat[0]);
	t_free(mem);
	/* a page the memory never touched */
	(void)v[700 * KiB];
	cr_assert_fail("touching a freed memory did not trap");
}

static sigjmp_buf uaf_jb;
static volatile sig_atomic_t uaf_sig;

static void on_trap(int sig)
{
	uaf_sig = sig;
	siglongjmp(uaf_jb, 1);
}

/* 1 if reading p traps (SIGBUS, or SIGSEGV where a backend protects
 * instead of poisoning), with the signal in uaf_sig. */
static int read_traps(volatile unsigned char *p)
{
	uaf_sig = 0;
	if (sigsetjmp(uaf_jb, 1) == 0) {
		(void)*p;
		return 0;
	}
	return 1;
}

Test(pool_uaf, poisoned_slot_recovers_for_its_next_memory, .timeout = 60)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	struct sigaction sa, old_bus, old_segv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_trap;
	sigemptyset(&sa.sa_mask);
	cr_assert_eq(sigaction(SIGBUS, &sa, &old_bus), 0);
	cr_assert_eq(sigaction(SIGSEGV, &sa, &old_segv), 0);

	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *a = mk_memory(pool, m, 1 * MiB);
		ufp_memory *b = mk_memory(pool, m, 0);
		uint32_t slot_a = ufp_memory_slot(a);
		volatile unsigned char *va = ufp_memory_base(a);
		/* populate the first wasm page, then free */
		assert_bytes((unsigned char *)va, exp, 64 * KiB, "a", 0);
		t_free(a);

		/* pages the memory never populated (only those are promised
		 * to trap: clean pages may stay for a warm reuse): two image
		 * pages, a zero page past the image, twice for one of them */
		const uint64_t offs[] = {100 * KiB + 7, 200 * KiB + 1,
					 900 * KiB, 900 * KiB + 1};
		for (int i = 0; i < 4; i++) {
			/* without a handler a freed memory need not trap;
			 * the stray reads still must not hurt the slot */
			int trapped = read_traps(va + offs[i]);
			if (!t_backend_has_handler(t_backends[k]))
				continue;
			cr_assert(trapped,
				  "[%s] reading freed memory at %llu did not "
				  "trap",
				  ctx, (unsigned long long)offs[i]);
			cr_assert(uaf_sig == SIGBUS || uaf_sig == SIGSEGV);
		}

		/* the other memory is unaffected */
		check_memory_random(b, exp, STD_INITIAL, 12, "other memory");
		unsigned char *bb = ufp_memory_base(b);
		bb[123] = 0x3c;
		cr_assert_eq(bb[123], 0x3c);

		/* the only free slot is the poisoned one: the next memory
		 * lands there and reads its image, poison cleared */
		ufp_memory *c = mk_memory(pool, m, 0);
		cr_assert_eq(ufp_memory_slot(c), slot_a);
		for (int i = 0; i < 2; i++) {
			cr_assert_not(
				read_traps((unsigned char *)ufp_memory_base(c) +
					   offs[i]),
				"poison at %llu survived into the next "
				"memory",
				(unsigned long long)offs[i]);
		}
		check_memory(c, exp, STD_INITIAL, "next memory in the slot");
		/* grow over the poisoned zero page */
		cr_assert_eq(ufp_memory_grow(c, 1 * MiB), 0);
		cr_assert_not(read_traps((unsigned char *)ufp_memory_base(c) +
					 900 * KiB),
			      "poison past the image survived a grow");
		check_memory(c, exp, STD_INITIAL, "grown over the poison");
		t_free(c);

		/* once more, with no module in that slot */
		t_free(b);
		c = mk_memory(pool, NULL, 1 * MiB);
		ufp_memory *d = mk_memory(pool, NULL, 1 * MiB);
		(void)d;
		cr_assert(ufp_memory_slot(c) == slot_a ||
			  ufp_memory_slot(d) == slot_a);
		check_memory(c, NULL, 0, "no module after poison");
		check_memory(d, NULL, 0, "no module after poison");
		t_free(c);
		t_free(d);
		drop_module(m);
		t_destroy(pool);
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	free(exp);
}

/* ---- bad input ------------------------------------------------------------ */

struct log_count {
	int n;
	ufp_log_level level;
	char msg[512];
};

static void count_log(void *arg, ufp_log_level level, const char *msg)
{
	struct log_count *lc = arg;
	lc->n++;
	lc->level = level;
	snprintf(lc->msg, sizeof(lc->msg), "%s", msg);
}

/* Create with c (a copy of a valid config with one field broken): expect
 * `want` and exactly one log line, a non-empty one without a newline, at
 * DEBUG: the error is returned, so it is not reported twice. */
static void expect_rejected(ufp_config c, int want, const char *what, bool logs)
{
	struct log_count lc = {0};
	ufp_pool *p = NULL;
	c.log = count_log;
	c.log_arg = &lc;
	if (c.log_level == UFP_LOG_WARN) /* unless the test broke it */
		c.log_level = UFP_LOG_DEBUG;
	int err = ufp_pool_create(&c, &p);
	cr_expect_eq(err, want, "%s: got %d (%s), expected %d (%s)", what, err,
		     ufp_strerror(err), want, ufp_strerror(want));
	if (!err) {
		t_destroy(p);
		return;
	}
	if (!logs)
		return;
	cr_expect_eq(lc.n, 1, "%s: %d log lines, expected one", what, lc.n);
	cr_expect(lc.n == 0 || lc.level == UFP_LOG_DEBUG,
		  "%s: logged at level %d, expected DEBUG", what,
		  (int)lc.level);
	cr_expect(lc.n == 0 || (lc.msg[0] && !strchr(lc.msg, '\n')),
		  "%s: log line \"%s\"", what, lc.msg);
}

Test(pool_bad, config_rejected_with_its_errno_and_one_log_line)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config good;
		t_config(&good, 2, 1 * MiB);
		good.backend = t_backends[k];
		/* a pool that must keep working through all of this */
		ufp_pool *pool = t_pool(&good);
		ufp_config c;
		const int E = -EINVAL;
#define REJECT(want, stmt)                             \
	do {                                           \
		c = good;                              \
		stmt;                                  \
		expect_rejected(c, want, #stmt, true); \
	} while (0)
		REJECT(E, c.slots = 0);
		REJECT(E, c.max_memory_bytes = 0);
		REJECT(E, c.max_memory_bytes = 3 * 4096);
		REJECT(E, c.max_memory_bytes = 1 * MiB + 4096);
		REJECT(E, c.guard_bytes = 100);
		REJECT(E, c.pre_guard_bytes = 1);
		REJECT(E, c.strategy = (ufp_strategy)99);
		REJECT(E, c.strategy = (ufp_strategy)-1);
		REJECT(E, c.backend = (ufp_backend)4);
		REJECT(E, c.backend = (ufp_backend)-1);
		REJECT(E, c.reclaim = (ufp_reclaim)4);
		REJECT(E, c.dirty_tracking = (ufp_dirty_tracking)2);
		REJECT(E, c.log_level = (ufp_log_level)4);
		REJECT(E, c.handler_threads = 0);
		REJECT(E, c.handler_threads = 65);
		REJECT(E, c.ring_entries = 0);
		REJECT(E, c.ring_entries = 32769);
		REJECT(E, c.fault_around_bytes = 0);
		REJECT(E, c.fault_around_bytes = 100);
		REJECT(E, c.fault_around_max_bytes = 4096;
		       c.fault_around_bytes = 8192);
		REJECT(E, c.fault_around_max_bytes = 1 * MiB + 1);
		REJECT(E, c.fault_around_min_bytes = 0);
		REJECT(E, c.fault_around_min_bytes = 4096 + 100);
		REJECT(E, c.keep_resident_bytes = 1);
		REJECT(E, c.reserved = 1);
		/* totals beyond the address space */
		REJECT(-E2BIG, c.slots = UINT32_MAX;
		       c.max_memory_bytes = 4 * 1024 * MiB);
		REJECT(-E2BIG, c.slots = 1;
		       c.max_memory_bytes = (uint64_t)1 << 48);
		REJECT(-E2BIG, c.max_memory_bytes = UINT64_MAX - (WPAGE - 1));
		REJECT(-E2BIG, c.guard_bytes = UINT64_MAX - 4095);
		REJECT(-E2BIG, c.pre_guard_bytes = UINT64_MAX - 4095);
		REJECT(-E2BIG, c.pre_guard_bytes = (uint64_t)1 << 47);
#undef REJECT
		/* no room for a log callback in these */
		c = good;
		c.size = 0;
		expect_rejected(c, E, "size = 0", false);
		c = good;
		c.size = 8;
		expect_rejected(c, E, "size = 8", false);
		ufp_pool *p = NULL;
		int err = ufp_pool_create(NULL, &p);
		cr_expect_eq(err, E, "NULL config: %d", err);
		err = ufp_pool_create(&good, NULL);
		cr_expect_eq(err, E, "NULL out: %d", err);

		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
		/* and a new pool from the good config */
		pool = t_pool(&good);
		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
	}
}

Test(pool_bad, config_limits_that_are_accepted)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		t_config(&c, 3, 1 * MiB);
		c.backend = t_backends[k];
		c.handler_threads = 64;
		c.fault_around_bytes = 4096;
		c.fault_around_max_bytes = 4096;
		ufp_pool *pool = t_pool(&c);
		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
	}
}

Test(pool_bad, config_beyond_max_map_count_is_e2big)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	unsigned long long maxmap = 0;
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%llu", &maxmap), 1);
	fclose(f);
	/* slots of 64 KiB + 64 KiB guard: the address space is never the
	 * limit below 2^30 slots */
	if (maxmap / 2 + 1000 >= ((unsigned long long)1 << 30))
		cr_skip_test("vm.max_map_count %llu is too large to exceed",
			     maxmap);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		t_config(&c, (uint32_t)(maxmap / 2 + 1000), WPAGE);
		c.backend = t_backends[k];
		expect_rejected(c, -E2BIG, "slots > vm.max_map_count / 2",
				true);
	}
}

Test(pool_bad, module_arguments)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	const unsigned char b[4] = {1, 2, 3, 4};
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = NULL;
		int err;
#define EXPECT(want, call)                                             \
	do {                                                           \
		err = (call);                                          \
		cr_expect_eq(err, want, "%s: got %d (%s)", #call, err, \
			     ufp_strerror(err));                       \
	} while (0)
		EXPECT(-EINVAL,
		       ufp_module_create(NULL, s, ns, STD_INITIAL, &m));
		EXPECT(-EINVAL,
		       ufp_module_create(pool, s, ns, STD_INITIAL, NULL));
		EXPECT(-EINVAL,
		       ufp_module_create(pool, NULL, 1, STD_INITIAL, &m));
		EXPECT(-EINVAL,
		       ufp_module_create(pool, (ufp_segment[]){{0, NULL, 1}}, 1,
					 STD_INITIAL, &m));
		EXPECT(-EINVAL, ufp_module_create(pool, s, ns, 4096, &m));
		EXPECT(-EINVAL,
		       ufp_module_create(pool, s, ns, STD_INITIAL + 4096, &m));
		EXPECT(-E2BIG,
		       ufp_module_create(pool, NULL, 0, 1 * MiB + WPAGE, &m));
		EXPECT(-ERANGE,
		       ufp_module_create(pool,
					 (ufp_segment[]){{WPAGE - 3, b, 4}}, 1,
					 WPAGE, &m));
		EXPECT(-ERANGE,
		       ufp_module_create(pool, (ufp_segment[]){{WPAGE, b, 1}},
					 1, WPAGE, &m));
		EXPECT(-ERANGE,
		       ufp_module_create(
			       pool, (ufp_segment[]){{UINT64_MAX - 1, b, 4}}, 1,
			       WPAGE, &m));
		/* a segment past a module's initial bytes but inside the
		 * pool's max is still out of range */
		EXPECT(-ERANGE,
		       ufp_module_create(pool,
					 (ufp_segment[]){{300 * KiB, b, 4}}, 1,
					 STD_INITIAL, &m));
		/* no segments at all is fine */
		EXPECT(0, ufp_module_create(pool, NULL, 0, WPAGE, &m));
		if (!err)
			drop_module(m);
#undef EXPECT
		m = mk_module(pool, s, ns, STD_INITIAL);
		assert_pool_works(pool, m, exp, STD_INITIAL);
		drop_module(m);
		t_destroy(pool);
	}
	free(exp);
}

Test(pool_bad, memory_arguments)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_pool *other = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_module *mo = mk_module(other, s, ns, STD_INITIAL);
		ufp_module *gone = mk_module(pool, s, ns, STD_INITIAL);
		drop_module(gone);
		ufp_memory *mem = NULL;
		int err;
#define EXPECT(want, call)                                             \
	do {                                                           \
		err = (call);                                          \
		cr_expect_eq(err, want, "%s: got %d (%s)", #call, err, \
			     ufp_strerror(err));                       \
		if (!err)                                              \
			t_free(mem);                                   \
	} while (0)
		EXPECT(-EINVAL, ufp_memory_alloc(NULL, m, 0, &mem));
		EXPECT(-EINVAL, ufp_memory_alloc(pool, m, 0, NULL));
		EXPECT(-EINVAL,
		       ufp_memory_alloc(pool, m, STD_INITIAL + 4096, &mem));
		EXPECT(-EINVAL, ufp_memory_alloc(pool, NULL, 4096, &mem));
		EXPECT(-E2BIG,
		       ufp_memory_alloc(pool, NULL, 1 * MiB + WPAGE, &mem));
		EXPECT(-E2BIG, ufp_memory_alloc(pool, m, 2 * MiB, &mem));
		EXPECT(-E2BIG,
		       ufp_memory_alloc(pool, NULL, UINT64_MAX - (WPAGE - 1),
					&mem));
		EXPECT(-ERANGE, ufp_memory_alloc(pool, m, WPAGE, &mem));
		EXPECT(-ERANGE,
		       ufp_memory_alloc(pool, m, STD_INITIAL - WPAGE, &mem));
		EXPECT(-EINVAL, ufp_memory_alloc(pool, mo, 0, &mem));
		EXPECT(-EINVAL, ufp_memory_alloc(pool, gone, 0, &mem));
		EXPECT(-EINVAL, ufp_memory_alloc_wait(NULL, m, 0, 1000, &mem));
		EXPECT(-EINVAL,
		       ufp_memory_alloc_wait(pool, m, 4096, 1000000, &mem));
		EXPECT(-ERANGE,
		       ufp_memory_alloc_wait(pool, m, WPAGE, 1000000, &mem));
#undef EXPECT
		/* none of these took a slot: both are still free */
		ufp_memory *a = mk_memory(pool, m, 0);
		ufp_memory *b = mk_memory(pool, NULL, WPAGE);
		t_free(a);
		t_free(b);
		assert_pool_works(pool, m, exp, STD_INITIAL);
		assert_pool_works(other, mo, exp, STD_INITIAL);
		drop_module(m);
		drop_module(mo);
		t_destroy(pool);
		t_destroy(other);
	}
	free(exp);
}

Test(pool_bad, grow_arguments)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		ufp_memory *mem = mk_memory(pool, NULL, 256 * KiB);
		int err;
#define EXPECT(want, call)                                             \
	do {                                                           \
		err = (call);                                          \
		cr_expect_eq(err, want, "%s: got %d (%s)", #call, err, \
			     ufp_strerror(err));                       \
	} while (0)
		EXPECT(-EINVAL, ufp_memory_grow(NULL, 512 * KiB));
		EXPECT(-EINVAL, ufp_memory_grow(mem, 256 * KiB + 4096));
		EXPECT(-EINVAL, ufp_memory_grow(mem, 128 * KiB));
		EXPECT(-E2BIG, ufp_memory_grow(mem, 1 * MiB + WPAGE));
		cr_expect_eq(ufp_memory_size(mem), 256 * KiB);
		t_free(mem);
		EXPECT(-EINVAL, ufp_memory_grow(mem, 512 * KiB));
#undef EXPECT
		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
	}
}

Test(pool_bad, double_free_and_double_drop)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *a = mk_memory(pool, m, 0);
		ufp_memory *b = mk_memory(pool, m, 0);
		check_memory(a, exp, STD_INITIAL, "a");
		t_free(a);
		int err = ufp_memory_free(a);
		cr_expect_eq(err, -EINVAL, "double free: %d (%s)", err,
			     ufp_strerror(err));
		cr_expect_eq(ufp_memory_free(NULL), -EINVAL);
		/* the double free did not touch b, nor free a's slot twice:
		 * exactly one slot is free */
		check_memory(b, exp, STD_INITIAL, "b after double free");
		ufp_memory *c = mk_memory(pool, m, 0);
		ufp_memory *d = NULL;
		err = ufp_memory_alloc(pool, m, 0, &d);
		cr_expect_eq(err, -EAGAIN,
			     "a double free freed a slot twice: "
			     "%d (%s)",
			     err, ufp_strerror(err));
		if (!err)
			t_free(d);
		t_free(c);
		t_free(b);

		cr_expect_eq(ufp_module_drop(NULL), -EINVAL);
		ufp_module *m2 = mk_module(pool, s, ns, STD_INITIAL);
		drop_module(m2);
		err = ufp_module_drop(m2);
		cr_expect_eq(err, -EALREADY, "drop twice: %d (%s)", err,
			     ufp_strerror(err));
		/* drop while a memory is live, then twice */
		ufp_memory *e = mk_memory(pool, m, 0);
		drop_module(m);
		err = ufp_module_drop(m);
		cr_expect_eq(err, -EALREADY,
			     "drop twice with a live memory: "
			     "%d (%s)",
			     err, ufp_strerror(err));
		check_memory(e, exp, STD_INITIAL, "memory of a dropped module");
		t_free(e);
		cr_assert_eq(ufp_pool_quiesce(pool), 0);
		m = mk_module(pool, s, ns, STD_INITIAL);
		assert_pool_works(pool, m, exp, STD_INITIAL);
		drop_module(m);
		t_destroy(pool);
	}
	free(exp);
}

Test(pool_bad, null_handles_everywhere_else)
{
	ufp_stats st;
	uint64_t r;
	ufp_backend b;
	cr_expect_eq(ufp_pool_destroy(NULL), -EINVAL);
	cr_expect_eq(ufp_pool_quiesce(NULL), -EINVAL);
	cr_expect_eq(ufp_pool_stats(NULL, &st), -EINVAL);
	cr_expect_eq(ufp_pool_resident_bytes(NULL, &r), -EINVAL);
	cr_expect_eq(ufp_pool_info(NULL, &b, NULL, NULL), -EINVAL);
	cr_expect_null(ufp_memory_base(NULL));
	cr_expect_eq(ufp_memory_size(NULL), 0);
	cr_expect_eq(ufp_memory_slot(NULL), UINT32_MAX);
	cr_expect_eq(ufp_module_initial_bytes(NULL), 0);
	ufp_config_init(NULL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		cr_expect_eq(ufp_pool_stats(pool, NULL), -EINVAL);
		cr_expect_eq(ufp_pool_resident_bytes(pool, NULL), -EINVAL);
		cr_expect_eq(ufp_pool_info(pool, NULL, NULL, NULL), 0);
		cr_expect_eq(ufp_pool_info(pool, &b, NULL, NULL), 0);
		cr_expect_eq(b, t_backends[k], "pool_info backend");
		assert_pool_works(pool, NULL, NULL, 0);
		t_destroy(pool);
	}
}

/* ---- waiting for a slot ----------------------------------------------------- */

Test(pool_wait, full_pool_returns_eagain)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 3, 1 * MiB, 0);
		ufp_memory *mem[3];
		for (int i = 0; i < 3; i++)
			mem[i] = mk_memory(pool, NULL, WPAGE);
		ufp_memory *x = NULL;
		for (int i = 0; i < 3; i++) {
			int err = ufp_memory_alloc(pool, NULL, WPAGE, &x);
			cr_assert_eq(err, -EAGAIN, "%d (%s)", err,
				     ufp_strerror(err));
		}
		t_free(mem[1]);
		mem[1] = mk_memory(pool, NULL, WPAGE);
		int err = ufp_memory_alloc(pool, NULL, WPAGE, &x);
		cr_assert_eq(err, -EAGAIN, "%d (%s)", err, ufp_strerror(err));
		for (int i = 0; i < 3; i++)
			t_free(mem[i]);
		t_destroy(pool);
	}
}

struct freer {
	ufp_memory *mem;
	int err;
};

static void *free_later(void *arg)
{
	struct freer *f = arg;
	struct timespec ts = {0, 50 * 1000 * 1000};
	nanosleep(&ts, NULL);
	f->err = ufp_memory_free(f->mem);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(pool_wait, alloc_wait_returns_when_another_thread_frees, .timeout = 60)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		struct freer f = {mk_memory(pool, NULL, WPAGE), -1};
		pthread_t th;
		cr_assert_eq(pthread_create(&th, NULL, free_later, &f), 0);
		ufp_memory *mem = NULL;
		const uint64_t timeout = 20ull * 1000 * 1000 * 1000;
		double t0 = now_s();
		int err =
			ufp_memory_alloc_wait(pool, NULL, WPAGE, timeout, &mem);
		double dt = now_s() - t0;
		cr_assert_eq(err, 0, "alloc_wait: %d (%s)", err,
			     ufp_strerror(err));
		cr_assert_lt(dt, 20.0,
			     "alloc_wait returned 0 after its "
			     "timeout");
		pthread_join(th, NULL);
		cr_assert_eq(f.err, 0);
		unsigned char *base = ufp_memory_base(mem);
		cr_assert_eq(base[100], 0);
		base[100] = 1;
		t_free(mem);
		t_destroy(pool);
	}
}

Test(pool_wait, alloc_wait_times_out_when_nobody_frees, .timeout = 60)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB, 0);
		ufp_memory *held = mk_memory(pool, NULL, WPAGE);
		ufp_memory *mem = NULL;
		double t0 = now_s();
		int err = ufp_memory_alloc_wait(pool, NULL, WPAGE,
						20 * 1000 * 1000, &mem);
		double dt = now_s() - t0;
		cr_assert_eq(err, -ETIMEDOUT, "%d (%s)", err,
			     ufp_strerror(err));
		cr_assert_geq(dt, 0.018,
			      "timed out after %.3f s, before its "
			      "20 ms timeout",
			      dt);
		err = ufp_memory_alloc_wait(pool, NULL, WPAGE, 0, &mem);
		cr_assert_eq(err, -ETIMEDOUT, "zero timeout: %d (%s)", err,
			     ufp_strerror(err));
		t_free(held);
		err = ufp_memory_alloc_wait(pool, NULL, WPAGE, 0, &mem);
		cr_assert_eq(err, 0, "a free slot and zero timeout: %d (%s)",
			     err, ufp_strerror(err));
		t_free(mem);
		t_destroy(pool);
	}
}

/* ---- lifecycle ------------------------------------------------------------ */

/* One full life of a pool: modules, memories, grow, free, drop, purge. */
static void pool_life(ufp_backend b, ufp_reclaim r, unsigned handlers)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	ufp_config c;
	t_config(&c, 4, 1 * MiB);
	c.backend = b;
	c.reclaim = r;
	c.handler_threads = handlers;
	c.keep_resident_bytes = 64 * KiB;
	ufp_pool *pool = t_pool(&c);
	ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
	ufp_module *kept = mk_module(pool, s, ns, STD_INITIAL);
	ufp_memory *mem[4];
	for (int i = 0; i < 4; i++) {
		mem[i] = mk_memory(pool, i == 3 ? kept : m, 0);
		scribble(mem[i], (uint64_t)i);
	}
	cr_assert_eq(ufp_memory_grow(mem[0], 1 * MiB), 0);
	scribble(mem[0], 9);
	for (int i = 0; i < 4; i++)
		t_free(mem[i]);
	drop_module(m);
	cr_assert_eq(ufp_pool_quiesce(pool), 0);
	/* `kept` is left for destroy to drop */
	t_destroy(pool);
}

Test(pool_lifecycle, destroy_leaves_no_fd_or_mapping_behind)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		for (size_t r = 0; r < T_NRECLAIMS; r++) {
			for (unsigned h = 1; h <= 2; h++) {
				ufp_backend b = t_backends[k];
				ufp_reclaim rc = t_reclaims[r];
				/* warm lazy state: feature probe, thread
				 * stack cache, allocator arenas */
				pool_life(b, rc, h);
				pool_life(b, rc, h);
				int fds = t_count_fds();
				int maps = t_count_maps();
				pool_life(b, rc, h);
				cr_expect_eq(t_count_fds(), fds,
					     "%s/%s/%u handlers: %d fds "
					     "before, %d after",
					     t_backend_name(b),
					     t_reclaim_name(rc), h, fds,
					     t_count_fds());
				cr_expect_eq(t_count_maps(), maps,
					     "%s/%s/%u handlers: %d mappings "
					     "before, %d after",
					     t_backend_name(b),
					     t_reclaim_name(rc), h, maps,
					     t_count_maps());
			}
		}
	}
}

Test(pool_lifecycle, destroy_with_a_live_memory_is_ebusy)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *mem = mk_memory(pool, m, 0);
		unsigned char *base = ufp_memory_base(mem);
		assert_bytes(base, exp, 64 * KiB, "before destroy", 0);
		int err = ufp_pool_destroy(pool);
		cr_assert_eq(err, -EBUSY, "%d (%s)", err, ufp_strerror(err));
		/* nothing changed: the rest faults in, the module works */
		check_memory_random(mem, exp, STD_INITIAL, 1, "after EBUSY");
		assert_pool_works(pool, m, exp, STD_INITIAL);
		t_free(mem);
		drop_module(m);
		t_destroy(pool);
	}
	free(exp);
}

Test(pool_lifecycle, resident_bytes_follow_touch_and_free)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 4 * MiB, 0);
		uint64_t r0, r1, r2;
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r0), 0);
		ufp_memory *mem = mk_memory(pool, NULL, 4 * MiB);
		unsigned char *base = ufp_memory_base(mem);
		memset(base, 0xab, 2 * MiB);
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r1), 0);
		cr_assert_geq(r1, r0 + 2 * MiB,
			      "resident %llu before, %llu after writing 2 MiB",
			      (unsigned long long)r0, (unsigned long long)r1);
		t_free(mem);
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r2), 0);
		cr_assert_leq(r2, r0,
			      "resident %llu before, %llu after free with "
			      "keep_resident_bytes 0",
			      (unsigned long long)r0, (unsigned long long)r2);
		t_destroy(pool);
	}
}

/* Without dirty tracking nothing clean is kept either: reading the image
 * makes pages resident, a free with keep_resident_bytes 0 drops them. */
Test(pool_lifecycle, resident_bytes_of_image_pages_go_at_free)
{
	ufp_segment s[8];
	size_t ns = std_segs(s);
	cur_dirty = UFP_DIRTY_OFF;
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 4 * MiB, 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		uint64_t r0, r1, r2;
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r0), 0);
		ufp_memory *mem = mk_memory(pool, m, 4 * MiB);
		volatile unsigned char *v = ufp_memory_base(mem);
		for (uint64_t off = 0; off < 64 * KiB; off += t_page())
			(void)v[off]; /* 16 pages of image data */
		memset(ufp_memory_base(mem) + 1 * MiB, 0x17, 1 * MiB);
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r1), 0);
		cr_assert_geq(r1, r0 + 1 * MiB,
			      "[%s] resident %llu before, %llu after touching",
			      ctx, (unsigned long long)r0,
			      (unsigned long long)r1);
		t_free(mem);
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r2), 0);
		cr_assert_leq(r2, r0,
			      "[%s] resident %llu before, %llu after free with "
			      "keep_resident_bytes 0",
			      ctx, (unsigned long long)r0,
			      (unsigned long long)r2);
		drop_module(m);
		t_destroy(pool);
	}
}

/* ---- small API ---------------------------------------------------------------- */

Test(pool_api, strerror_is_never_null)
{
	const int extra[] = {INT_MIN, INT_MIN + 1, INT_MAX, -100000, 100000};
	for (int e = -5000; e <= 5000; e++) {
		const char *s = ufp_strerror(e);
		cr_assert_not_null(s, "ufp_strerror(%d)", e);
		cr_assert_neq(s[0], '\0', "ufp_strerror(%d) is empty", e);
	}
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		cr_assert_not_null(ufp_strerror(extra[i]));
	/* the documented codes are named, not lumped together */
	const int docs[] = {-EINVAL,	-E2BIG,	  -ERANGE,   -EAGAIN,
			    -ETIMEDOUT, -EBUSY,	  -EALREADY, -EPERM,
			    -ENOSYS,	-ENOTSUP, -ENOMEM};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(ufp_strerror(docs[i]),
					  ufp_strerror(docs[j]),
					  "%d and %d share a description",
					  docs[i], docs[j]);
}

Test(pool_api, version_matches_the_header)
{
	const char *v = ufp_version();
	cr_assert_not_null(v);
	cr_assert_str_eq(v, UFP_VERSION_STRING);
	unsigned a, b, c;
	char tail;
	cr_assert_eq(sscanf(v, "%u.%u.%u%c", &a, &b, &c, &tail), 3,
		     "\"%s\" is not MAJOR.MINOR.PATCH", v);
	cr_assert_eq(a, UFP_VERSION_MAJOR);
	cr_assert_eq(b, UFP_VERSION_MINOR);
	cr_assert_eq(c, UFP_VERSION_PATCH);
}

static const char *const counter_names[] = {
#define UFP_T_NAME(name, doc) #name,
	UFP_STATS_LIST(UFP_T_NAME)
#undef UFP_T_NAME
};
#define NCOUNTERS (sizeof(counter_names) / sizeof(counter_names[0]))

/* Distinct, recognisable values: counter i holds 1000003 * (i + 1). */
static void distinct_stats(ufp_stats *st, uint64_t *vals)
{
	size_t i = 0;
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
#define UFP_T_SET(name, doc)            \
	vals[i] = 1000003ull * (i + 1); \
	st->name = vals[i];             \
	i++;
	UFP_STATS_LIST(UFP_T_SET)
#undef UFP_T_SET
}

static void check_length_contract(const ufp_stats *st, int json)
{
	size_t n = ufp_stats_format(st, json, NULL, 0);
	cr_assert_gt(n, 0);
	char *full = malloc(n + 1);
	cr_assert_not_null(full);
	memset(full, 'x', n + 1);
	cr_assert_eq(ufp_stats_format(st, json, full, n + 1), n);
	cr_assert_eq(strlen(full), n, "json %d: strlen %zu, returned %zu", json,
		     strlen(full), n);
	/* truncated: still the needed length, a NUL-terminated prefix */
	char *part = malloc(n);
	cr_assert_not_null(part);
	for (size_t cap = 1; cap <= n; cap = cap * 3 + 1) {
		memset(part, 'x', n);
		cr_assert_eq(ufp_stats_format(st, json, part, cap), n);
		cr_assert_eq(strlen(part), cap - 1);
		cr_assert_eq(memcmp(part, full, cap - 1), 0);
	}
	/* cap 0 never writes */
	part[0] = 'x';
	cr_assert_eq(ufp_stats_format(st, json, part, 0), n);
	cr_assert_eq(part[0], 'x');
	free(part);
	free(full);
}

Test(pool_api, stats_format_text_and_json)
{
	ufp_stats st;
	uint64_t vals[NCOUNTERS];
	distinct_stats(&st, vals);

	/* text: one "name value" line per counter */
	size_t n = ufp_stats_format(&st, 0, NULL, 0);
	char *txt = malloc(n + 1);
	cr_assert_not_null(txt);
	cr_assert_eq(ufp_stats_format(&st, 0, txt, n + 1), n);
	int seen[NCOUNTERS] = {0};
	size_t lines = 0;
	for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
		char name[64];
		unsigned long long v;
		lines++;
		cr_assert_eq(sscanf(line, "%63s %llu", name, &v), 2,
			     "text line \"%s\"", line);
		for (size_t i = 0; i < NCOUNTERS; i++)
			if (strcmp(name, counter_names[i]) == 0) {
				cr_expect_eq(v, vals[i], "%s: %llu", name, v);
				seen[i]++;
			}
	}
	cr_expect_eq(lines, NCOUNTERS);
	for (size_t i = 0; i < NCOUNTERS; i++)
		cr_expect_eq(seen[i], 1, "text: %s appears %d times",
			     counter_names[i], seen[i]);
	free(txt);

	/* JSON: one object, "name": value for every counter */
	n = ufp_stats_format(&st, 1, NULL, 0);
	char *js = malloc(n + 1);
	cr_assert_not_null(js);
	cr_assert_eq(ufp_stats_format(&st, 1, js, n + 1), n);
	size_t a = strspn(js, " \n\t");
	cr_assert_eq(js[a], '{', "JSON: %s", js);
	size_t e = n;
	while (e > 0 && strchr(" \n\t", js[e - 1]))
		e--;
	cr_assert_eq(js[e - 1], '}', "JSON: %s", js);
	for (size_t i = 0; i < NCOUNTERS; i++) {
		char key[80];
		snprintf(key, sizeof(key), "\"%s\"", counter_names[i]);
		char *p = strstr(js, key);
		cr_expect_not_null(p, "JSON lacks %s", key);
		if (!p)
			continue;
		p += strlen(key);
		p += strspn(p, " \n\t");
		cr_expect_eq(*p, ':', "JSON %s not followed by ':'", key);
		char *end;
		unsigned long long v = strtoull(p + 1, &end, 10);
		cr_expect_eq(v, vals[i], "JSON %s: %llu", key, v);
	}
	free(js);

	check_length_contract(&st, 0);
	check_length_contract(&st, 1);
}

Test(pool_api, stats_of_a_pool)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 1 * MiB, 0);
		ufp_stats st0 = {.size = sizeof(st0)}, st1 = st0;
		cr_assert_eq(ufp_pool_stats(pool, &st0), 0);
		cr_assert_eq(st0.size, sizeof(ufp_stats));
		ufp_memory *a = mk_memory(pool, NULL, WPAGE);
		ufp_memory *b = mk_memory(pool, NULL, WPAGE);
		t_free(a);
		t_free(b);
		cr_assert_eq(ufp_pool_stats(pool, &st1), 0);
		cr_expect_eq(st1.allocs - st0.allocs, 2);
		cr_expect_eq(st1.resets - st0.resets, 2);
		size_t n = ufp_stats_format(&st1, 1, NULL, 0);
		cr_assert_gt(n, 0);
		t_destroy(pool);
	}
}

/* ---- ABI: struct sizes (issue 12, item 7) ------------------------------- */

/* Exactly the sizes of released ufp_config versions are accepted; a prefix
 * ending anywhere else may end inside a field (half a pointer). */
Test(pool_api, config_accepts_exactly_released_sizes)
{
	const uint32_t ok[] = {
		offsetof(ufp_config, fault_around_min_bytes), /* 0.1 */
		offsetof(ufp_config, fill_mode),	      /* 0.2 */
		sizeof(ufp_config),			      /* 0.3 */
	};
	const uint32_t bad[] = {
		0,
		8,
		offsetof(ufp_config, log),
		offsetof(ufp_config, log) + 4, /* inside the pointer */
		offsetof(ufp_config, log_arg),
		offsetof(ufp_config, log_level),
		offsetof(ufp_config, fault_around_min_bytes) + 4,
		offsetof(ufp_config, fill_mode) + 4 == sizeof(ufp_config)
			? 4
			: offsetof(ufp_config, fill_mode) + 4,
		sizeof(ufp_config) + 8, /* a newer header we cannot know */
	};
	for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
		struct {
			ufp_config c;
			unsigned char after[64];
		} b;
		memset(&b, 0xff, sizeof(b)); /* past size: must not be read */
		t_config(&b.c, 1, 1 * MiB);
		b.c.backend = UFP_BACKEND_COPY;
		b.c.size = ok[k];
		/* fields past the caller's size get their defaults */
		if (ok[k] <= offsetof(ufp_config, fault_around_min_bytes))
			b.c.fault_around_min_bytes = 12345;
		if (ok[k] <= offsetof(ufp_config, fill_mode))
			b.c.fill_mode = (ufp_fill_mode)77;
		ufp_pool *p = NULL;
		int err = ufp_pool_create(&b.c, &p);
		cr_assert_eq(err, 0, "size %u: %s", ok[k], ufp_strerror(err));
		cr_assert_eq(ufp_pool_destroy(p), 0);
	}
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		ufp_config c;
		t_config(&c, 1, 1 * MiB);
		c.backend = UFP_BACKEND_COPY;
		c.size = bad[k];
		ufp_pool *p = NULL;
		cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL, "size %u",
			     bad[k]);
		cr_assert_null(p);
	}
}

/* ufp_pool_stats writes what the caller's size says and no more: an older,
 * smaller struct gets its prefix, a newer, larger one ours and zeros. */
Test(pool_api, stats_honours_caller_size)
{
	ufp_config c;
	t_config(&c, 1, 1 * MiB);
	c.backend = UFP_BACKEND_COPY;
	ufp_pool *p = t_pool(&c);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc(p, NULL, 64 << 10, &mem), 0);
	cr_assert_eq(ufp_memory_free(mem), 0);

	struct {
		ufp_stats st;
		unsigned char after[64];
	} b;
	/* smaller: only [0, size) is written */
	const uint32_t small = offsetof(ufp_stats, allocs);
	memset(&b, 0xab, sizeof(b));
	b.st.size = small;
	cr_assert_eq(ufp_pool_stats(p, &b.st), 0);
	cr_assert_eq(b.st.size, small);
	for (size_t o = small; o < sizeof(b); o++)
		cr_assert_eq(((unsigned char *)&b)[o], 0xab,
			     "byte %zu past the caller's %u written", o, small);
	/* larger: ours, and size says so; nothing past it is written (an
	 * uninitialized size must not become a wild memset) */
	memset(&b, 0xab, sizeof(b));
	b.st.size = sizeof(ufp_stats) + 16;
	cr_assert_eq(ufp_pool_stats(p, &b.st), 0);
	cr_assert_eq(b.st.size, sizeof(ufp_stats));
	cr_assert_eq(b.st.allocs, 1);
	for (size_t o = 0; o < sizeof(b.after); o++)
		cr_assert_eq(b.after[o], 0xab);
	/* exact */
	b.st.size = sizeof(ufp_stats);
	cr_assert_eq(ufp_pool_stats(p, &b.st), 0);
	cr_assert_eq(b.st.allocs, 1);
	/* no room for one counter, or not a multiple of 8 */
	const uint32_t bad[] = {0, 4, 8, offsetof(ufp_stats, allocs) + 4};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		b.st.size = bad[k];
		cr_assert_eq(ufp_pool_stats(p, &b.st), -EINVAL, "size %u",
			     bad[k]);
	}
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* ---- a header before the base (prefix_bytes) ----------------------------- */

static sigjmp_buf prefix_jb;
static void prefix_trap(int sig)
{
	siglongjmp(prefix_jb, sig);
}

/* 0, or the signal a read of *p raised. */
static int prefix_read_sig(const volatile unsigned char *p)
{
	struct sigaction sa = {.sa_handler = prefix_trap}, o1, o2;
	sigaction(SIGSEGV, &sa, &o1);
	sigaction(SIGBUS, &sa, &o2);
	int sig = sigsetjmp(prefix_jb, 1);
	if (!sig)
		(void)*p;
	sigaction(SIGSEGV, &o1, NULL);
	sigaction(SIGBUS, &o2, NULL);
	return sig;
}

/* Every backend: the header is read-write, zero for every memory (after
 * a memory or a stale pointer wrote it), it lies between the previous
 * slot's guard and the base, and the guard still traps; a drop releases
 * it with the slot's pages. */
Test(pool_prefix, header_before_the_base)
{
	const size_t page = t_page();
	ufp_segment s[8];
	size_t ns = std_segs(s);
	unsigned char *exp = t_apply_segments(s, ns, STD_INITIAL);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		t_config(&c, 2, 1 * MiB);
		c.backend = t_backends[k];
		c.prefix_bytes = 2 * page;
		ufp_pool *pool = t_pool(&c);
		uint64_t r0;
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r0), 0);
		ufp_module *m = mk_module(pool, s, ns, STD_INITIAL);
		ufp_memory *a = mk_memory(pool, m, 0),
			   *b = mk_memory(pool, m, 0);
		unsigned char *ba = ufp_memory_base(a),
			      *bb = ufp_memory_base(b);
		/* the base is where the image is; the header just before it */
		cr_assert_eq(memcmp(ba, exp, STD_INITIAL), 0);
		for (size_t o = 1; o <= 2 * page; o++)
			cr_assert_eq(ba[-(ptrdiff_t)o], 0,
				     "[%s] header byte -%zu",
				     t_backend_name(c.backend), o);
		memset(ba - 2 * page, 0xa5, 2 * page);
		memset(bb - 2 * page, 0x5a, 2 * page);
		/* the headers are not part of the memory: b's is not a's */
		cr_assert_eq(ba[-1], 0xa5);
		cr_assert_eq(ufp_memory_size(a), STD_INITIAL);
		/* below a header: the guard of the slot before it (or the
		 * pool's pre-guard) */
		unsigned char *lo = ba < bb ? ba : bb;
		cr_assert_neq(prefix_read_sig(lo - 2 * page - 1), 0,
			      "[%s] the byte before a header did not trap",
			      t_backend_name(c.backend));
		cr_assert_neq(prefix_read_sig(ba + ufp_memory_size(a)), 0);
		t_free(a);
		ba[-1] = 0x77; /* a stale pointer */
		a = mk_memory(pool, m, 0);
		unsigned char *na = ufp_memory_base(a);
		for (size_t o = 1; o <= 2 * page; o++)
			cr_assert_eq(na[-(ptrdiff_t)o], 0,
				     "[%s] header byte -%zu of a new memory",
				     t_backend_name(c.backend), o);
		t_free(a);
		t_free(b);
		drop_module(m);
		cr_assert_eq(ufp_pool_quiesce(pool), 0);
		uint64_t r1;
		cr_assert_eq(ufp_pool_resident_bytes(pool, &r1), 0);
		cr_assert_leq(r1, r0, "[%s] %llu bytes left after drop",
			      t_backend_name(c.backend),
			      (unsigned long long)r1);
		t_destroy(pool);
	}
	free(exp);
}

Test(pool_prefix, must_be_a_page_multiple)
{
	ufp_config c;
	t_config(&c, 1, 1 * MiB);
	c.prefix_bytes = 100;
	ufp_pool *p = NULL;
	cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL);
	cr_assert_null(p);
}

/* ---- exact sizes (wasm_page_bytes) and a per-memory maximum --------------- */

/* wasm_page_bytes = 1: sizes, grow and segment bounds in bytes; the
 * memory is accessible to the end of its last OS page (the hardware's
 * unit), ufp_memory_size is exact. Every backend. */
Test(pool_exact, byte_sizes_and_bounds)
{
	const size_t page = t_page();
	static unsigned char seg[10] = "0123456789";
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_config c;
		t_config(&c, 1, 1 * MiB);
		c.backend = t_backends[k];
		c.wasm_page_bytes = 1;
		ufp_pool *pool = t_pool(&c);
		ufp_module *m = NULL;
		ufp_segment fits = {90, seg, 10}, over = {91, seg, 10};
		cr_assert_eq(ufp_module_create(pool, &over, 1, 100, &m),
			     -ERANGE, "a segment past the exact size");
		cr_assert_eq(ufp_module_create(pool, &fits, 1, 100, &m), 0);
		cr_assert_eq(ufp_module_initial_bytes(m), 100);
		ufp_memory *mem = mk_memory(pool, m, 0);
		unsigned char *b = ufp_memory_base(mem);
		cr_assert_eq(ufp_memory_size(mem), 100);
		cr_assert_eq(memcmp(b + 90, seg, 10), 0);
		cr_assert_eq(b[89], 0);
		/* grow by single bytes, within and across OS pages */
		cr_assert_eq(ufp_memory_grow(mem, 101), 0);
		cr_assert_eq(ufp_memory_size(mem), 101);
		cr_assert_eq(ufp_memory_grow(mem, 3 * page + 7), 0);
		cr_assert_eq(ufp_memory_size(mem), 3 * page + 7);
		cr_assert_eq(b[3 * page + 6], 0);
		b[3 * page + 6] = 1;
		cr_assert_eq(ufp_memory_grow(mem, 3 * page + 6), -EINVAL,
			     "a shrink");
		t_free(mem);
		mem = mk_memory(pool, m, 5000);
		cr_assert_eq(ufp_memory_size(mem), 5000);
		cr_assert_eq(memcmp(ufp_memory_base(mem) + 90, seg, 10), 0);
		cr_assert_eq(((unsigned char *)ufp_memory_base(mem))[4999], 0);
		t_free(mem);
		drop_module(m);
		t_destroy(pool);
	}
}

/* the last OS page of an exact size is accessible, the next one traps */
Test(pool_exact, the_page_after_the_last_traps, .signal = SIGSEGV)
{
	ufp_config c;
	t_config(&c, 1, 1 * MiB);
	c.wasm_page_bytes = 1;
	ufp_pool *pool = t_pool(&c);
	ufp_memory *mem = mk_memory(pool, NULL, 100);
	volatile unsigned char *b = ufp_memory_base(mem);
	(void)b[t_page() - 1];
	(void)b[t_page()];
	cr_assert_fail("the page after an exact size of 100 was accessible");
}

Test(pool_exact, wasm_page_bytes_rules)
{
	const uint64_t bad[] = {0, 3, 65536 * 2, 48};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		ufp_config c;
		t_config(&c, 1, 1 * MiB);
		c.wasm_page_bytes = bad[k];
		ufp_pool *p = NULL;
		cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL, "%llu",
			     (unsigned long long)bad[k]);
	}
	/* the default is the wasm page: a size that is no multiple of it is
	 * refused */
	ufp_config c;
	t_config(&c, 1, 1 * MiB);
	cr_assert_eq(c.wasm_page_bytes, 65536);
	ufp_pool *p = t_pool(&c);
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc(p, NULL, 4096, &mem), -EINVAL);
	t_destroy(p);
}

/* ufp_memory_alloc_ex: the memory's own maximum (a module's declared one) */
Test(pool_exact, per_memory_maximum)
{
	ufp_config c;
	t_config(&c, 2, 4 * MiB);
	ufp_pool *p = t_pool(&c);
	ufp_alloc_opts o = {.size = sizeof(o),
			    .initial_bytes = WPAGE,
			    .max_bytes = 3 * WPAGE};
	ufp_memory *mem = NULL;
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, &o, &mem), 0);
	cr_assert_eq(ufp_memory_grow(mem, 3 * WPAGE), 0);
	cr_assert_eq(ufp_memory_grow(mem, 4 * WPAGE), -E2BIG);
	cr_assert_eq(ufp_memory_size(mem), 3 * WPAGE);
	/* the other memory is not limited by it */
	ufp_memory *other = mk_memory(p, NULL, WPAGE);
	cr_assert_eq(ufp_memory_grow(other, 4 * MiB), 0);
	t_free(other);
	t_free(mem);
	ufp_memory *no = NULL;
	ufp_alloc_opts bad = o;
	bad.max_bytes = WPAGE / 2; /* below initial */
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, &bad, &no), -EINVAL);
	bad.max_bytes = 8 * MiB; /* beyond the slot */
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, &bad, &no), -E2BIG);
	bad = o;
	bad.size = 8;
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, &bad, &no), -EINVAL);
	bad = o;
	bad.reserved = 1;
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, &bad, &no), -EINVAL);
	cr_assert_eq(ufp_memory_alloc_ex(p, NULL, NULL, &no), -EINVAL);
	cr_assert_null(no);
	/* the pool is still usable */
	mem = mk_memory(p, NULL, WPAGE);
	t_free(mem);
	t_destroy(p);
}
