/* SPDX-License-Identifier: MIT */
/*
 * test_image.c - memory images built from data segments (lib/image.c),
 * both through ufpi_image_create() and through the public API (a fresh
 * memory of a module).
 *
 * Every expectation is computed here, independently of the library: the
 * expected memory is a calloc'd buffer with the segments memcpy'd in order
 * (the WebAssembly rule: later segments overwrite earlier ones), and the
 * expected stored pages are the pages of that buffer holding a non-zero
 * byte. Real modules from ../shared/wasm (sql.js, QuickJS) are used when the
 * folder is present, through the bench's loader (bench/wasm.h); those tests
 * skip, with the reason, when it is absent.
 */
/* ufp-test: timeout=180 */
#include <stddef.h>

#include "helpers.h"
#include "internal.h"
#include "wasm.h"

/* A test that hangs (a fault never served) fails on its own instead of
 * stalling the whole suite. */
TestSuite(image, .timeout = 120);
TestSuite(image_api, .timeout = 120);
TestSuite(image_wasm, .timeout = 120);

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)

/* ---- expectations ------------------------------------------------------- */

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Pages of exp[0, bytes) holding at least one non-zero byte. */
static uint64_t nonzero_pages(const unsigned char *exp, uint64_t bytes)
{
	const size_t page = t_page();
	uint64_t n = 0;
	for (uint64_t off = 0; off < bytes; off += page)
		n += !all_zero(exp + off, page);
	return n;
}

/*
 * Check an image against the expected memory: geometry, exactly the
 * non-zero pages stored (with their bytes), zero pages not stored, stored
 * pages in page order (internal.h: consecutive present pages are
 * contiguous in data).
 */
static void check_image(const struct ufpi_image *img, const unsigned char *exp,
			uint64_t bytes, const char *what)
{
	const size_t page = t_page();
	uint64_t npages = bytes / page;
	int64_t last = -1;

	cr_assert_eq(img->npages, npages, "%s: npages %u, expected %llu", what,
		     img->npages, (unsigned long long)npages);
	cr_assert_eq(img->ndata, nonzero_pages(exp, bytes),
		     "%s: ndata %u, expected %llu non-zero pages", what,
		     img->ndata, (unsigned long long)nonzero_pages(exp, bytes));
	cr_assert_eq(atomic_load(&img->refs), 1, "%s: refs", what);
	for (uint64_t p = 0; p < npages; p++) {
		const unsigned char *src = ufpi_image_page(img, p);
		const unsigned char *want = exp + p * page;
		if (all_zero(want, page)) {
			cr_assert_null(src, "%s: zero page %llu is stored",
				       what, (unsigned long long)p);
			continue;
		}
		cr_assert_not_null(src, "%s: page %llu with data is missing",
				   what, (unsigned long long)p);
		t_assert_bytes(src, want, page, what, p * page);
		cr_assert_gt((int64_t)img->map[p], last,
			     "%s: page %llu stored out of page order", what,
			     (unsigned long long)p);
		last = img->map[p];
	}
	/* nothing past the end */
	cr_assert_null(ufpi_image_page(img, npages));
}

static void image_case(const ufp_segment *segs, size_t n, uint64_t bytes,
		       const char *what)
{
	struct ufpi_image *img = NULL;
	unsigned char *exp = t_apply_segments(segs, n, bytes);
	int err = ufpi_image_create(segs, n, bytes, &img);
	cr_assert_eq(err, 0, "%s: ufpi_image_create: %s", what,
		     ufp_strerror(err));
	cr_assert_not_null(img);
	check_image(img, exp, bytes, what);
	ufpi_image_unref(img);
	free(exp);
}

/* ---- synthetic cases ---------------------------------------------------- */

static unsigned char pat[256 * 1024];
static const unsigned char zeros[64 * 1024];

static size_t make_cases(struct t_case *c)
{
	t_fill(pat, sizeof(pat), 42);
	size_t n = t_common_cases(c, pat, zeros);
	/* a long run of consecutive data pages and a hole */
	c[n++] = (struct t_case){
		"dense_run",
		256 * KiB,
		2,
		{{3 * 4096, pat, 37 * 4096}, {0, pat + 200000, 4096}}};
	c[n++] = (struct t_case){
		"all_zero_segment", 64 * KiB, 1, {{0, zeros, 64 * KiB}}};
	c[n++] = (struct t_case){"no_segments", 64 * KiB, 0, {{0}}};
	return n;
}

Test(image, synthetic_cases_match_applied_segments)
{
	struct t_case c[16];
	size_t n = make_cases(c);
	for (size_t k = 0; k < n; k++)
		image_case(c[k].segs, c[k].nsegs, c[k].initial, c[k].name);
}

Test(image, sparse_image_stores_only_pages_with_data)
{
	const size_t page = t_page();
	const unsigned char a = 0x5a, b = 0xa5, d = 0x01;
	const ufp_segment segs[] = {
		{0, &a, 1},
		{500 * page + 17, &b, 1},
		{4 * MiB - 1, &d, 1},
	};
	struct ufpi_image *img = NULL;
	int err = ufpi_image_create(segs, 3, 4 * MiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->npages, 4 * MiB / page);
	cr_assert_eq(img->ndata, 3);
	cr_assert_eq(ufpi_image_page(img, 0)[0], a);
	cr_assert_eq(ufpi_image_page(img, 500)[17], b);
	cr_assert_eq(ufpi_image_page(img, 4 * MiB / page - 1)[page - 1], d);
	for (uint64_t p = 0; p < img->npages; p++)
		if (p != 0 && p != 500 && p != 4 * MiB / page - 1)
			cr_assert_null(ufpi_image_page(img, p), "page %llu",
				       (unsigned long long)p);
	ufpi_image_unref(img);
	image_case(segs, 3, 4 * MiB, "sparse 4 MiB");
}

Test(image, unaligned_segments)
{
	const size_t page = t_page();
	t_fill(pat, sizeof(pat), 7);
	/* start and end inside pages, crossing 1, 2 and many boundaries */
	const ufp_segment segs[] = {
		{page - 1, pat, 2},
		{2 * page + 3, pat + 10, page + 5},
		{5 * page + page / 2, pat + 100, 10 * page + 1},
		{17, pat + 50000, 1},
	};
	image_case(segs, 4, 128 * KiB, "unaligned");
}

Test(image, overlapping_segments_later_wins)
{
	const size_t page = t_page();
	unsigned char x[3 * 4096], y[100];
	memset(x, 0x11, sizeof(x));
	memset(y, 0x22, sizeof(y));
	const ufp_segment segs[] = {
		{page / 2, x, sizeof(x)},
		{page - 50, y, sizeof(y)}, /* straddles page 0/1 over x */
		{page / 2 + 10, y, 1},
	};
	struct ufpi_image *img = NULL;
	int err = ufpi_image_create(segs, 3, 64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	/* spot checks written out by hand, independent of apply_segments */
	const unsigned char *p0 = ufpi_image_page(img, 0);
	const unsigned char *p1 = ufpi_image_page(img, 1);
	cr_assert_not_null(p0);
	cr_assert_not_null(p1);
	cr_assert_eq(p0[page / 2 - 1], 0);
	cr_assert_eq(p0[page / 2], 0x11);
	cr_assert_eq(p0[page / 2 + 10], 0x22);
	cr_assert_eq(p0[page / 2 + 11], 0x11);
	cr_assert_eq(p0[page - 51], 0x11);
	cr_assert_eq(p0[page - 50], 0x22);
	cr_assert_eq(p1[49], 0x22);
	cr_assert_eq(p1[50], 0x11);
	ufpi_image_unref(img);
	image_case(segs, 3, 64 * KiB, "overlapping");

	/* the same two segments in the other order: the other one wins */
	const ufp_segment rev[] = {segs[1], segs[0]};
	err = ufpi_image_create(rev, 2, 64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(ufpi_image_page(img, 0)[page - 50], 0x11);
	cr_assert_eq(ufpi_image_page(img, 1)[49], 0x11);
	ufpi_image_unref(img);
}

Test(image, segment_ending_exactly_at_initial_bytes)
{
	const size_t page = t_page();
	const unsigned char last = 0x77;
	t_fill(pat, sizeof(pat), 9);
	const ufp_segment segs[] = {
		{128 * KiB - 1, &last, 1},
		{64 * KiB - 3 * page - 9, pat, 3 * page + 9},
		{128 * KiB, NULL, 0}, /* empty, at the very end: in bounds */
	};
	struct ufpi_image *img = NULL;
	int err = ufpi_image_create(segs, 3, 128 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(ufpi_image_page(img, 128 * KiB / page - 1)[page - 1],
		     last);
	ufpi_image_unref(img);
	image_case(segs, 3, 128 * KiB, "ends at initial_bytes");
	/* a whole-memory segment */
	image_case((ufp_segment[]){{0, pat, 128 * KiB}}, 1, 128 * KiB,
		   "whole memory");
}

Test(image, segment_beyond_initial_bytes_is_erange)
{
	const unsigned char b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	const ufp_segment ok = {0, b, 8};
	const ufp_segment bad[] = {
		{64 * KiB - 1, b, 2},	 /* one byte past the end */
		{64 * KiB, b, 1},	 /* starts at the end */
		{64 * KiB + 1, NULL, 0}, /* empty, but past the end */
		{128 * KiB, b, 8},	 /* well past */
		{UINT64_MAX - 3, b, 8},	 /* offset + len wraps around */
		{8, b, UINT64_MAX - 4},	 /* len alone wraps around */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ufpi_image *img = NULL;
		/* alone, and after a valid segment */
		int err = ufpi_image_create(&bad[i], 1, 64 * KiB, &img);
		cr_expect_eq(err, -ERANGE, "bad segment %zu alone: %d (%s)", i,
			     err, ufp_strerror(err));
		if (!err)
			ufpi_image_unref(img);
		const ufp_segment two[] = {ok, bad[i]};
		err = ufpi_image_create(two, 2, 64 * KiB, &img);
		cr_expect_eq(err, -ERANGE, "bad segment %zu second: %d (%s)", i,
			     err, ufp_strerror(err));
		if (!err)
			ufpi_image_unref(img);
	}
	/* with zero initial bytes, any non-empty segment is out of range */
	struct ufpi_image *img = NULL;
	cr_expect_eq(ufpi_image_create(&ok, 1, 0, &img), -ERANGE);
}

Test(image, zero_pages_are_not_stored)
{
	const size_t page = t_page();
	unsigned char *z = calloc(1, 3 * page);
	cr_assert_not_null(z);
	t_fill(pat, sizeof(pat), 3);

	/* an all-zero segment stores nothing */
	struct ufpi_image *img = NULL;
	int err = ufpi_image_create((ufp_segment[]){{page, z, 3 * page}}, 1,
				    64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->ndata, 0);
	for (uint64_t p = 0; p < img->npages; p++)
		cr_assert_null(ufpi_image_page(img, p));
	ufpi_image_unref(img);

	/* an unaligned all-zero segment: still nothing */
	err = ufpi_image_create((ufp_segment[]){{123, z, 2 * page + 7}}, 1,
				64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->ndata, 0);
	ufpi_image_unref(img);

	/* data on pages 1..3, then page 2 zeroed over: pages 1 and 3 stay */
	const ufp_segment segs[] = {{page, pat, 3 * page}, {2 * page, z, page}};
	err = ufpi_image_create(segs, 2, 64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->ndata, 2);
	cr_assert_null(ufpi_image_page(img, 0));
	cr_assert_not_null(ufpi_image_page(img, 1));
	cr_assert_null(ufpi_image_page(img, 2));
	cr_assert_not_null(ufpi_image_page(img, 3));
	ufpi_image_unref(img);
	image_case(segs, 2, 64 * KiB, "zeroed over");

	/* a page with a single non-zero byte is stored */
	unsigned char one[64] = {0};
	one[63] = 1;
	err = ufpi_image_create((ufp_segment[]){{5 * page - 64, one, 64}}, 1,
				64 * KiB, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->ndata, 1);
	cr_assert_not_null(ufpi_image_page(img, 4));
	ufpi_image_unref(img);
	free(z);
}

Test(image, null_bytes_with_len_is_einval)
{
	struct ufpi_image *img = NULL;
	const unsigned char b = 1;
	int err = ufpi_image_create((ufp_segment[]){{0, NULL, 1}}, 1, 64 * KiB,
				    &img);
	cr_expect_eq(err, -EINVAL, "%d (%s)", err, ufp_strerror(err));
	err = ufpi_image_create((ufp_segment[]){{0, &b, 1}, {100, NULL, 4096}},
				2, 64 * KiB, &img);
	cr_expect_eq(err, -EINVAL, "%d (%s)", err, ufp_strerror(err));
	/* NULL bytes with len 0 is an empty segment: fine */
	img = NULL;
	err = ufpi_image_create((ufp_segment[]){{100, NULL, 0}}, 1, 64 * KiB,
				&img);
	cr_assert_eq(err, 0, "%d (%s)", err, ufp_strerror(err));
	cr_assert_eq(img->ndata, 0);
	ufpi_image_unref(img);
}

Test(image, empty_images)
{
	struct ufpi_image *img = NULL;
	int err = ufpi_image_create(NULL, 0, 0, &img);
	cr_assert_eq(err, 0, "%s", ufp_strerror(err));
	cr_assert_eq(img->npages, 0);
	cr_assert_eq(img->ndata, 0);
	cr_assert_null(ufpi_image_page(img, 0));
	ufpi_image_unref(img);
	image_case(NULL, 0, 1 * MiB, "no segments, 1 MiB");
}

/* ---- through the public API -------------------------------------------- */

static ufp_pool *mk_pool(ufp_backend b, uint32_t slots, uint64_t max)
{
	ufp_config c;
	t_config(&c, slots, max);
	c.backend = b;
	return t_pool(&c);
}

/* Every byte of a fresh memory of the module equals exp, then zero. */
static void check_fresh_memory(ufp_pool *pool, ufp_module *m,
			       const unsigned char *exp, uint64_t explen,
			       uint64_t bytes, const char *what)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(pool, m, bytes, &mem);
	cr_assert_eq(err, 0, "%s: ufp_memory_alloc: %s", what,
		     ufp_strerror(err));
	uint64_t size = ufp_memory_size(mem);
	cr_assert_eq(size, bytes ? bytes : explen, "%s: size", what);
	const unsigned char *base = ufp_memory_base(mem);
	cr_assert_not_null(base);
	t_assert_bytes(base, exp, explen, what, 0);
	for (uint64_t off = explen; off < size; off += sizeof(zeros)) {
		uint64_t n =
			size - off < sizeof(zeros) ? size - off : sizeof(zeros);
		t_assert_bytes(base + off, zeros, n, what, off);
	}
	err = ufp_memory_free(mem);
	cr_assert_eq(err, 0, "%s: ufp_memory_free: %s", what,
		     ufp_strerror(err));
}

Test(image_api, fresh_memory_is_segment_data_or_zero)
{
	struct t_case c[16];
	size_t n = make_cases(c);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 2, 2 * MiB);
		for (size_t i = 0; i < n; i++) {
			char what[128];
			snprintf(what, sizeof(what), "%s/%s",
				 t_backend_name(t_backends[k]), c[i].name);
			ufp_module *m = NULL;
			int err = ufp_module_create(pool, c[i].segs, c[i].nsegs,
						    c[i].initial, &m);
			cr_assert_eq(err, 0, "%s: ufp_module_create: %s", what,
				     ufp_strerror(err));
			cr_assert_eq(ufp_module_initial_bytes(m), c[i].initial,
				     "%s", what);
			unsigned char *exp = t_apply_segments(
				c[i].segs, c[i].nsegs, c[i].initial);
			check_fresh_memory(pool, m, exp, c[i].initial, 0, what);
			/* a larger memory: the image, then zeros */
			check_fresh_memory(pool, m, exp, c[i].initial, 2 * MiB,
					   what);
			free(exp);
			err = ufp_module_drop(m);
			cr_assert_eq(err, 0, "%s", ufp_strerror(err));
		}
		cr_assert_eq(ufp_pool_destroy(pool), 0);
	}
}

Test(image_api, segment_bytes_are_copied)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB);
		unsigned char *buf = malloc(100000);
		cr_assert_not_null(buf);
		t_fill(buf, 100000, 77);
		ufp_segment segs[] = {{12345, buf, 100000}};
		unsigned char *exp = t_apply_segments(segs, 1, 256 * KiB);
		ufp_module *m = NULL;
		int err = ufp_module_create(pool, segs, 1, 256 * KiB, &m);
		cr_assert_eq(err, 0, "%s", ufp_strerror(err));
		/* the caller may reuse or free the bytes after the call */
		memset(buf, 0xee, 100000);
		free(buf);
		check_fresh_memory(pool, m, exp, 256 * KiB, 0, "copied");
		free(exp);
		cr_assert_eq(ufp_module_drop(m), 0);
		cr_assert_eq(ufp_pool_destroy(pool), 0);
	}
}

Test(image_api, bad_segments_are_rejected)
{
	const unsigned char b[4] = {9, 9, 9, 9};
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, 1 * MiB);
		ufp_module *m = NULL;
		int err;
		err = ufp_module_create(pool,
					(ufp_segment[]){{64 * KiB - 3, b, 4}},
					1, 64 * KiB, &m);
		cr_expect_eq(err, -ERANGE, "%d (%s)", err, ufp_strerror(err));
		err = ufp_module_create(pool,
					(ufp_segment[]){{UINT64_MAX - 1, b, 4}},
					1, 64 * KiB, &m);
		cr_expect_eq(err, -ERANGE, "%d (%s)", err, ufp_strerror(err));
		err = ufp_module_create(pool, (ufp_segment[]){{0, NULL, 4}}, 1,
					64 * KiB, &m);
		cr_expect_eq(err, -EINVAL, "%d (%s)", err, ufp_strerror(err));
		/* the pool still works: a valid module, a memory, its bytes */
		const ufp_segment ok[] = {{64 * KiB - 4, b, 4}};
		unsigned char *exp = t_apply_segments(ok, 1, 64 * KiB);
		err = ufp_module_create(pool, ok, 1, 64 * KiB, &m);
		cr_assert_eq(err, 0, "%s", ufp_strerror(err));
		check_fresh_memory(pool, m, exp, 64 * KiB, 0, "after errors");
		free(exp);
		cr_assert_eq(ufp_module_drop(m), 0);
		cr_assert_eq(ufp_pool_destroy(pool), 0);
	}
}

/* ---- real modules ------------------------------------------------------- */

static void wasm_case(const char *file)
{
	char path[4096], err[512] = "";
	struct ufpw_module wm;

	if (!t_shared_wasm(file, path, sizeof(path)))
		t_skip("../shared/wasm/%s is absent (UFP_SHARED_WASM unset or "
		       "folder missing)",
		       file);
	int rc = ufpw_load_file(path, &wm, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s: %s", file, err);
	cr_assert_gt(wm.nsegs, 0, "%s: no active segments", file);
	cr_assert_gt(wm.mem_min_pages, 0);
	cr_assert_lt(wm.mem_min_pages, 65536);
	uint64_t initial = wm.mem_min_pages * 64 * KiB;
	const ufp_segment *segs = (const ufp_segment *)wm.segs;
	unsigned char *exp = t_apply_segments(segs, wm.nsegs, initial);
	cr_assert_gt(nonzero_pages(exp, initial), 0);

	/* the image itself */
	image_case(segs, wm.nsegs, initial, file);

	/* a fresh memory of the module, for every backend */
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *pool = mk_pool(t_backends[k], 1, initial);
		ufp_module *m = NULL;
		int e = ufp_module_create(pool, segs, wm.nsegs, initial, &m);
		cr_assert_eq(e, 0, "%s: ufp_module_create: %s", file,
			     ufp_strerror(e));
		check_fresh_memory(pool, m, exp, initial, 0, file);
		/* again in the same slot: still exactly the image */
		check_fresh_memory(pool, m, exp, initial, 0, file);
		cr_assert_eq(ufp_module_drop(m), 0);
		cr_assert_eq(ufp_pool_destroy(pool), 0);
	}
	free(exp);
	ufpw_free(&wm);
}

Test(image_wasm, sqljs_fresh_memory_is_segment_data_or_zero)
{
	wasm_case("sqljs-1.16.0.wasm");
}

Test(image_wasm, quickjs_fresh_memory_is_segment_data_or_zero)
{
	wasm_case("quickjs-0.32.0.wasm");
}
