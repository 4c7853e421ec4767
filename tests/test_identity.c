/* SPDX-License-Identifier: MIT */
/* ufp-test: labels=concurrency timeout=180 */
/*
 * test_identity.c - module identity (lib/module.c): ufp_module_acquire,
 * ufp_module_retain, ufp_module_release, and how they meet
 * ufp_module_drop.
 *
 * The contract: the same handle for the same initial memory contents
 * (however the segments are cut), never for different contents (one byte,
 * initial_bytes, a non-zero byte in the zero tail, data moved to another
 * page), also when every hash collides; the last release drops and purges;
 * bad arguments are rejected with the documented errno and leave the pool
 * usable. The threaded test uses seeded PRNGs and bounded iterations; it is
 * not a benchmark.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "helpers.h"
#include "internal.h"

#define KIB ((uint64_t)1 << 10)
#define WPAGE ((uint64_t)64 << 10)

static ufp_pool *make_pool(ufp_backend b, uint32_t slots)
{
	ufp_config c;
	t_config(&c, slots, 4 * WPAGE);
	c.backend = b;
	c.keep_resident_bytes = 16 * KIB; /* so that freed slots keep pages */
	return t_pool(&c);
}

static ufp_module *acquire(ufp_pool *p, const ufp_segment *s, size_t n,
			   uint64_t bytes)
{
	ufp_module *m = NULL;
	int err = ufp_module_acquire(p, s, n, bytes, &m);
	cr_assert_eq(err, 0, "ufp_module_acquire: %s", ufp_strerror(err));
	cr_assert_not_null(m);
	return m;
}

static void release(ufp_module *m)
{
	int err = ufp_module_release(m);
	cr_assert_eq(err, 0, "ufp_module_release: %s", ufp_strerror(err));
}

/* Allocate a memory of m and check that it reads exactly `want`. */
static void expect_contents(ufp_pool *p, ufp_module *m,
			    const unsigned char *want, uint64_t bytes)
{
	ufp_memory *mem;
	int err = ufp_memory_alloc(p, m, 0, &mem);
	cr_assert_eq(err, 0, "ufp_memory_alloc: %s", ufp_strerror(err));
	cr_assert_eq(ufp_memory_size(mem), bytes);
	cr_assert(memcmp(ufp_memory_base(mem), want, bytes) == 0,
		  "memory does not read its module's contents");
	/* dirty a page, so that the reset has something to do */
	((unsigned char *)ufp_memory_base(mem))[100] ^= 0x5a;
	err = ufp_memory_free(mem);
	cr_assert_eq(err, 0, "ufp_memory_free: %s", ufp_strerror(err));
}

/* ---- same contents, same handle ------------------------------------------ */

Test(identity, equal_contents_give_one_handle_however_cut)
{
	static unsigned char data[3 * 4096 + 100];
	t_fill(data, sizeof(data), 7);
	const uint64_t bytes = 2 * WPAGE;
	/* the same bytes at 5000: one segment; three pieces out of order;
	 * a wrong first write overwritten by a later one; and a segment
	 * with a zero tail that writes zeros where memory is zero anyway */
	static const unsigned char zeros[300];
	ufp_segment one[] = {{5000, data, sizeof(data)}};
	ufp_segment pieces[] = {{5000 + 8000, data + 8000, sizeof(data) - 8000},
				{5000, data, 4000},
				{5000 + 4000, data + 4000, 4000}};
	ufp_segment overwrite[] = {
		{5000, zeros, sizeof(zeros)},
		{5000, data, sizeof(data)},
		{bytes - sizeof(zeros), zeros, sizeof(zeros)}};
	unsigned char *want = t_apply_segments(one, 1, bytes);

	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *p = make_pool(t_backends[k], 4);
		ufp_module *a = acquire(p, one, 1, bytes);
		ufp_module *b = acquire(p, pieces, 3, bytes);
		ufp_module *c = acquire(p, overwrite, 3, bytes);
		cr_expect_eq(a, b, "%s: pieces gave another module",
			     t_backend_name(t_backends[k]));
		cr_expect_eq(a, c,
			     "%s: overwritten segments gave another module",
			     t_backend_name(t_backends[k]));
		/* a module from ufp_module_create is the caller's own */
		ufp_module *own;
		int err = ufp_module_create(p, one, 1, bytes, &own);
		cr_assert_eq(err, 0);
		cr_expect_neq(own, a,
			      "acquire must not hand out a created module");
		ufp_module *d = acquire(p, one, 1, bytes);
		cr_expect_eq(d, a, "a created module hid the shared one");
		expect_contents(p, a, want, bytes);
		expect_contents(p, own, want, bytes);
		/* four references: three releases leave it alive */
		release(a);
		release(b);
		release(c);
		cr_expect_eq(ufp_module_initial_bytes(d), bytes);
		expect_contents(p, d, want, bytes);
		release(d);
		cr_expect_eq(ufp_module_drop(own), 0);
		cr_expect_eq(ufpi_pool_check(p), 0);
		t_destroy(p);
	}
	free(want);
}

Test(identity, empty_contents_are_one_module_per_size)
{
	ufp_pool *p = make_pool(UFP_BACKEND_UFFD, 2);
	ufp_module *a = acquire(p, NULL, 0, WPAGE);
	static const unsigned char zeros[64];
	ufp_segment z = {1000, zeros, sizeof(zeros)};
	ufp_module *b = acquire(p, &z, 1, WPAGE);
	ufp_module *c = acquire(p, NULL, 0, 2 * WPAGE);
	ufp_module *d = acquire(p, NULL, 0, 0);
	cr_expect_eq(a, b, "all-zero segments changed the contents");
	cr_expect_neq(a, c, "64 KiB and 128 KiB of zeros are one module");
	cr_expect_neq(a, d);
	cr_expect_neq(c, d);
	release(a);
	release(b);
	release(c);
	release(d);
	t_destroy(p);
}

/* ---- different contents, different handles ------------------------------- */

/* Variants of one module's contents: each pair differs in one way. */
static void different_contents(bool collide)
{
	const uint64_t bytes = 2 * WPAGE;
	static unsigned char base[8192];
	static unsigned char byte[8192];
	static unsigned char last[1] = {9};
	t_fill(base, sizeof(base), 3);
	memcpy(byte, base, sizeof(byte));
	byte[4567] ^= 1; /* one bit of one byte */

	struct {
		const char *what;
		ufp_segment seg[2];
		size_t n;
		uint64_t bytes;
	} v[] = {
		{"base", {{4096, base, sizeof(base)}}, 1, bytes},
		{"one byte", {{4096, byte, sizeof(byte)}}, 1, bytes},
		/* the same data over a larger memory: differ in the zero tail */
		{"initial_bytes", {{4096, base, sizeof(base)}}, 1, 3 * WPAGE},
		/* a non-zero byte in what is the zero tail of base */
		{"zero tail",
		 {{4096, base, sizeof(base)}, {bytes - 1, last, 1}},
		 2,
		 bytes},
		/* the same pages one page further: same stored data, other
		 * page map */
		{"moved", {{8192, base, sizeof(base)}}, 1, bytes},
		/* one byte shorter: the last byte of base becomes zero */
		{"shorter", {{4096, base, sizeof(base) - 1}}, 1, bytes},
	};
	const size_t nv = sizeof(v) / sizeof(v[0]);
	cr_assert(base[sizeof(base) - 1] != 0, "test bug: need a non-zero end");

	ufpi_module_hash_collide(collide);
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *p = make_pool(t_backends[k], 4);
		ufp_module *m[sizeof(v) / sizeof(v[0])];
		for (size_t i = 0; i < nv; i++)
			m[i] = acquire(p, v[i].seg, v[i].n, v[i].bytes);
		for (size_t i = 0; i < nv; i++)
			for (size_t j = i + 1; j < nv; j++)
				cr_expect_neq(m[i], m[j],
					      "%s%s: \"%s\" and \"%s\" got one "
					      "module",
					      t_backend_name(t_backends[k]),
					      collide ? " (hashes collide)"
						      : "",
					      v[i].what, v[j].what);
		/* and each reads its own contents, acquired again */
		for (size_t i = 0; i < nv; i++) {
			ufp_module *again =
				acquire(p, v[i].seg, v[i].n, v[i].bytes);
			cr_expect_eq(again, m[i], "%s: not found again",
				     v[i].what);
			unsigned char *want =
				t_apply_segments(v[i].seg, v[i].n, v[i].bytes);
			expect_contents(p, again, want, v[i].bytes);
			free(want);
			release(again);
		}
		for (size_t i = 0; i < nv; i++)
			release(m[i]);
		cr_expect_eq(ufpi_pool_check(p), 0);
		t_destroy(p);
	}
	ufpi_module_hash_collide(false);
}

Test(identity, different_contents_never_share_a_handle)
{
	different_contents(false);
}

/* With every hash equal only the byte comparison tells them apart. */
Test(identity, different_contents_with_colliding_hashes)
{
	different_contents(true);
}

/* ---- reference counts and the drop policy -------------------------------- */

Test(identity, last_release_drops_and_purges)
{
	static unsigned char data[32 * 1024];
	t_fill(data, sizeof(data), 11);
	ufp_segment seg = {0, data, sizeof(data)};
	unsigned char *want = t_apply_segments(&seg, 1, WPAGE);

	for (size_t k = 0; k < T_NBACKENDS; k++) {
		for (size_t r = 0; r < T_NRECLAIMS; r++) {
			ufp_config c;
			t_config(&c, 2, 4 * WPAGE);
			c.backend = t_backends[k];
			c.reclaim = t_reclaims[r];
			c.keep_resident_bytes = WPAGE;
			ufp_pool *p = t_pool(&c);
			uint64_t base_res, res;
			cr_assert_eq(ufp_pool_resident_bytes(p, &base_res), 0);

			ufp_module *a = acquire(p, &seg, 1, WPAGE);
			ufp_module *b = acquire(p, &seg, 1, WPAGE);
			cr_assert_eq(a, b);
			cr_assert_eq(ufp_module_retain(a), 0); /* three */
			expect_contents(p, a, want, WPAGE);
			/* drop is the release of the last reference only */
			cr_expect_eq(ufp_module_drop(a), -EBUSY);
			release(a);
			release(b);
			/* one reference left: alive, pages kept, found again */
			cr_assert_eq(ufp_pool_quiesce(p), 0);
			cr_assert_eq(ufp_pool_resident_bytes(p, &res), 0);
			cr_expect_gt(res, base_res,
				     "%s/%s: nothing kept, the test shows "
				     "nothing",
				     t_backend_name(c.backend),
				     t_reclaim_name(c.reclaim));
			ufp_stats before = t_stats(p);
			ufp_module *again = acquire(p, &seg, 1, WPAGE);
			cr_expect_eq(again, a);
			expect_contents(p, again, want, WPAGE);
			cr_expect_eq(t_stats(p).affinity_hits,
				     before.affinity_hits + 1,
				     "the shared module lost its slot");
			release(again);
			cr_expect_eq(t_stats(p).purges, before.purges,
				     "released with a reference left");
			/* the last one: purge, everything back */
			release(a);
			cr_assert_eq(ufp_pool_quiesce(p), 0);
			cr_assert_eq(ufp_pool_resident_bytes(p, &res), 0);
			cr_expect_eq(res, base_res,
				     "%s/%s: %llu bytes resident after the "
				     "last release, %llu before",
				     t_backend_name(c.backend),
				     t_reclaim_name(c.reclaim),
				     (unsigned long long)res,
				     (unsigned long long)base_res);
			cr_expect_eq(t_stats(p).purges, before.purges + 1);
			cr_expect_eq(ufp_module_release(a), -EALREADY);
			cr_expect_eq(ufp_module_retain(a), -EINVAL);
			cr_expect_eq(ufp_module_drop(a), -EALREADY);
			/* contents asked for again: a new module, same bytes */
			ufp_module *fresh = acquire(p, &seg, 1, WPAGE);
			expect_contents(p, fresh, want, WPAGE);
			release(fresh);
			cr_expect_eq(ufpi_pool_check(p), 0);
			t_destroy(p);
		}
	}
	free(want);
}

Test(identity, release_with_a_live_memory_defers_the_purge)
{
	static unsigned char data[8192];
	t_fill(data, sizeof(data), 5);
	ufp_segment seg = {0, data, sizeof(data)};
	ufp_pool *p = make_pool(UFP_BACKEND_UFFD, 2);
	ufp_module *m = acquire(p, &seg, 1, WPAGE);
	ufp_memory *mem;
	cr_assert_eq(ufp_memory_alloc(p, m, 0, &mem), 0);
	release(m);
	/* the memory keeps working; the contents are no longer findable */
	cr_expect(memcmp(ufp_memory_base(mem), data, sizeof(data)) == 0);
	ufp_module *other = acquire(p, &seg, 1, WPAGE);
	cr_expect_neq(other, m, "a dropped module was handed out");
	cr_expect_eq(ufp_module_retain(m), -EINVAL);
	cr_assert_eq(ufp_memory_free(mem), 0);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	uint64_t res;
	ufp_stats st = t_stats(p);
	cr_expect_eq(st.purges, 1, "purge not run at the last free");
	release(other);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	cr_assert_eq(ufp_pool_resident_bytes(p, &res), 0);
	cr_expect_eq(res, 0);
	t_destroy(p);
}

Test(identity, destroy_releases_modules_still_referenced)
{
	static unsigned char data[4096];
	t_fill(data, sizeof(data), 1);
	ufp_segment seg = {0, data, sizeof(data)};
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		ufp_pool *p = make_pool(t_backends[k], 2);
		ufp_module *m = acquire(p, &seg, 1, WPAGE);
		cr_assert_eq(ufp_module_retain(m), 0);
		unsigned char *want = t_apply_segments(&seg, 1, WPAGE);
		expect_contents(p, m, want, WPAGE);
		free(want);
		/* leaks show up under LeakSanitizer */
		t_destroy(p);
	}
}

/* ---- bad arguments ------------------------------------------------------- */

Test(identity, bad_arguments_are_rejected_and_the_pool_works)
{
	static unsigned char data[4096];
	t_fill(data, sizeof(data), 2);
	ufp_segment seg = {0, data, sizeof(data)};
	ufp_segment null_bytes = {0, NULL, 10};
	ufp_segment too_far = {WPAGE - 10, data, 11};
	ufp_pool *p = make_pool(UFP_BACKEND_UFFD, 2);
	ufp_module *m = acquire(p, &seg, 1, WPAGE), *out = NULL;

	cr_expect_eq(ufp_module_acquire(NULL, &seg, 1, WPAGE, &out), -EINVAL);
	cr_expect_eq(ufp_module_acquire(p, &seg, 1, WPAGE, NULL), -EINVAL);
	cr_expect_eq(ufp_module_acquire(p, NULL, 1, WPAGE, &out), -EINVAL);
	cr_expect_eq(ufp_module_acquire(p, &null_bytes, 1, WPAGE, &out),
		     -EINVAL);
	cr_expect_eq(ufp_module_acquire(p, &seg, 1, WPAGE + 4096, &out),
		     -EINVAL);
	cr_expect_eq(ufp_module_acquire(p, &seg, 1, 8 * WPAGE, &out), -E2BIG);
	cr_expect_eq(ufp_module_acquire(p, &too_far, 1, WPAGE, &out), -ERANGE);
	/* a module handle that is not one */
	uint64_t junk[16] = {0};
	cr_expect_eq(ufp_module_acquire((ufp_pool *)junk, &seg, 1, WPAGE, &out),
		     -EINVAL);
	cr_expect_null(out, "out written on failure");
	cr_expect_eq(ufp_module_retain(NULL), -EINVAL);
	cr_expect_eq(ufp_module_release(NULL), -EINVAL);
	cr_expect_eq(ufp_module_retain((ufp_module *)junk), -EINVAL);
	cr_expect_eq(ufp_module_release((ufp_module *)junk), -EINVAL);

	/* nothing of that touched the module or the pool */
	unsigned char *want = t_apply_segments(&seg, 1, WPAGE);
	cr_expect_eq(acquire(p, &seg, 1, WPAGE), m);
	expect_contents(p, m, want, WPAGE);
	release(m);
	release(m);
	cr_expect_eq(ufp_module_release(m), -EALREADY);
	cr_expect_eq(ufpi_pool_check(p), 0);
	ufp_module *n = acquire(p, &seg, 1, WPAGE);
	expect_contents(p, n, want, WPAGE);
	release(n);
	free(want);
	t_destroy(p);
}

/* ---- threads ------------------------------------------------------------- */

#define NCONTENT 4
#define NTHREADS 4
#define ITERS 300

struct shared {
	ufp_pool *pool;
	ufp_segment seg[2 * NCONTENT];
	unsigned char data[2 * NCONTENT][6000];
	ufp_module *pinned[NCONTENT]; /* held by the main thread */
	atomic_int bad_handle, bad_bytes, errors;
};

static void *worker(void *arg)
{
	struct shared *sh = arg;
	static atomic_uint next_seed;
	uint64_t seed = 1000 + atomic_fetch_add(&next_seed, 1);

	for (int it = 0; it < ITERS; it++) {
		/* the first NCONTENT contents are pinned by the main thread:
		 * their handle can only be the pinned one; the others come
		 * and go with the threads' references */
		size_t c = t_rand(&seed) % (2 * NCONTENT);
		ufp_module *m;
		int err =
			ufp_module_acquire(sh->pool, &sh->seg[c], 1, WPAGE, &m);
		if (err) {
			atomic_fetch_add(&sh->errors, 1);
			continue;
		}
		if (c < NCONTENT && m != sh->pinned[c])
			atomic_fetch_add(&sh->bad_handle, 1);
		ufp_memory *mem;
		err = ufp_memory_alloc_wait(sh->pool, m, 0, UINT64_MAX, &mem);
		if (!err) {
			const unsigned char *b = ufp_memory_base(mem);
			if (memcmp(b + sh->seg[c].offset, sh->data[c],
				   sizeof(sh->data[c])) != 0)
				atomic_fetch_add(&sh->bad_bytes, 1);
			((unsigned char *)ufp_memory_base(mem))[7] = 1;
			err = ufp_memory_free(mem);
		}
		if (t_rand(&seed) % 2) {
			/* a second reference for a while */
			if (!err)
				err = ufp_module_retain(m);
			if (!err)
				err = ufp_module_release(m);
		}
		if (!err)
			err = ufp_module_release(m);
		if (err)
			atomic_fetch_add(&sh->errors, 1);
	}
	return NULL;
}

Test(identity, concurrent_acquire_and_release)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		struct shared *sh = calloc(1, sizeof(*sh));
		cr_assert_not_null(sh);
		sh->pool = make_pool(t_backends[k], NTHREADS + 2);
		uint64_t base_res, res;
		cr_assert_eq(ufp_pool_resident_bytes(sh->pool, &base_res), 0);
		for (size_t c = 0; c < 2 * NCONTENT; c++) {
			t_fill(sh->data[c], sizeof(sh->data[c]), 77 + c);
			sh->seg[c] = (ufp_segment){100 + 4096 * c, sh->data[c],
						   sizeof(sh->data[c])};
		}
		for (size_t c = 0; c < NCONTENT; c++)
			sh->pinned[c] =
				acquire(sh->pool, &sh->seg[c], 1, WPAGE);
		pthread_t th[NTHREADS];
		for (int i = 0; i < NTHREADS; i++)
			cr_assert_eq(pthread_create(&th[i], NULL, worker, sh),
				     0);
		for (int i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		cr_expect_eq(atomic_load(&sh->errors), 0, "%s: %d calls failed",
			     t_backend_name(t_backends[k]),
			     atomic_load(&sh->errors));
		cr_expect_eq(atomic_load(&sh->bad_handle), 0,
			     "%s: %d acquires of pinned contents got another "
			     "module",
			     t_backend_name(t_backends[k]),
			     atomic_load(&sh->bad_handle));
		cr_expect_eq(atomic_load(&sh->bad_bytes), 0,
			     "%s: %d memories read other contents",
			     t_backend_name(t_backends[k]),
			     atomic_load(&sh->bad_bytes));
		cr_expect_eq(ufpi_pool_check(sh->pool), 0);
		/* every reference is gone once the pins go: nothing stays */
		for (size_t c = 0; c < NCONTENT; c++)
			release(sh->pinned[c]);
		cr_assert_eq(ufp_pool_quiesce(sh->pool), 0);
		cr_assert_eq(ufp_pool_resident_bytes(sh->pool, &res), 0);
		cr_expect_eq(res, base_res, "%s: %llu bytes left resident",
			     t_backend_name(t_backends[k]),
			     (unsigned long long)res);
		for (size_t b = 0; b < UFPI_IDENTITY_BUCKETS; b++)
			cr_expect_null(sh->pool->identity[b],
				       "a module is left in the table");
		t_destroy(sh->pool);
		free(sh);
	}
}

/* Threads that acquire the same new contents at the same moment must all
 * get one module: lookup and insertion are one step. */
#define ROUNDS 200

struct race {
	ufp_pool *pool;
	pthread_barrier_t start, done;
	ufp_segment seg;
	ufp_module *got[NTHREADS];
	atomic_int errors;
};

struct race_arg {
	struct race *r;
	int id;
};

static void *racer(void *arg)
{
	struct race_arg *a = arg;
	struct race *r = a->r;
	for (int round = 0; round < ROUNDS; round++) {
		pthread_barrier_wait(&r->start);
		if (ufp_module_acquire(r->pool, &r->seg, 1, WPAGE,
				       &r->got[a->id]))
			atomic_fetch_add(&r->errors, 1);
		pthread_barrier_wait(&r->done); /* main compares */
		pthread_barrier_wait(&r->start);
		if (ufp_module_release(r->got[a->id]))
			atomic_fetch_add(&r->errors, 1);
		pthread_barrier_wait(&r->done);
	}
	return NULL;
}

Test(identity, simultaneous_acquires_of_new_contents_agree)
{
	static unsigned char data[ROUNDS][512];
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		struct race r = {0};
		struct race_arg args[NTHREADS];
		pthread_t th[NTHREADS];
		int split = 0;
		r.pool = make_pool(t_backends[k], 2);
		pthread_barrier_init(&r.start, NULL, NTHREADS + 1);
		pthread_barrier_init(&r.done, NULL, NTHREADS + 1);
		for (int i = 0; i < NTHREADS; i++) {
			args[i] = (struct race_arg){&r, i};
			cr_assert_eq(
				pthread_create(&th[i], NULL, racer, &args[i]),
				0);
		}
		for (int round = 0; round < ROUNDS; round++) {
			/* new contents each round: nobody holds them yet */
			t_fill(data[round], sizeof(data[round]), 500 + round);
			r.seg = (ufp_segment){64, data[round],
					      sizeof(data[round])};
			pthread_barrier_wait(&r.start);
			pthread_barrier_wait(&r.done);
			for (int i = 1; i < NTHREADS; i++)
				split += r.got[i] != r.got[0];
			pthread_barrier_wait(&r.start);
			pthread_barrier_wait(&r.done);
		}
		for (int i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		cr_expect_eq(atomic_load(&r.errors), 0);
		cr_expect_eq(split, 0,
			     "%s: %d acquires of the same contents got another "
			     "module than a simultaneous one",
			     t_backend_name(t_backends[k]), split);
		for (size_t b = 0; b < UFPI_IDENTITY_BUCKETS; b++)
			cr_expect_null(r.pool->identity[b]);
		pthread_barrier_destroy(&r.start);
		pthread_barrier_destroy(&r.done);
		t_destroy(r.pool);
	}
}

/* ---- the lookup's contents are the image's ------------------------------- */

/* ufpi_contents_build (heap, for lookups) must give exactly the page map
 * and data of ufpi_image_create for any segments: overlapping, crossing
 * pages, all-zero, at the very end. Random sets, seeded. */
Test(identity, lookup_contents_equal_the_image)
{
	const size_t page = t_page();
	uint64_t seed = 42;
	static unsigned char pool_bytes[3 * 65536];
	t_fill(pool_bytes, sizeof(pool_bytes), 9);
	for (size_t i = 0; i < sizeof(pool_bytes); i += 7)
		pool_bytes[i] = 0; /* some zeros inside the data */
	memset(pool_bytes + 65536, 0, 3 * 4096); /* and whole zero pages */

	for (int round = 0; round < 300; round++) {
		uint64_t bytes = (1 + t_rand(&seed) % 4) * WPAGE;
		ufp_segment s[6];
		size_t n = t_rand(&seed) % 7;
		for (size_t i = 0; i < n; i++) {
			uint64_t len = t_rand(&seed) % (3 * page);
			if (t_rand(&seed) % 4 == 0)
				len = t_rand(&seed) % 16;
			uint64_t off = t_rand(&seed) % (bytes - len + 1);
			if (t_rand(&seed) % 8 == 0)
				off = bytes - len; /* at the very end */
			uint64_t from =
				t_rand(&seed) % (sizeof(pool_bytes) - len + 1);
			s[i] = (ufp_segment){off, pool_bytes + from, len};
		}
		struct ufpi_image *img;
		struct ufpi_contents c;
		cr_assert_eq(ufpi_image_create(s, n, bytes, &img), 0);
		cr_assert_eq(ufpi_contents_build(s, n, bytes, &c), 0);
		cr_expect(ufpi_image_matches(img, &c),
			  "round %d: contents differ from the image (%zu "
			  "segments over %llu bytes)",
			  round, n, (unsigned long long)bytes);
		if (c.ndata) {
			/* and one changed byte is noticed */
			c.data[t_rand(&seed) % (c.ndata * page)] ^= 0x10;
			cr_expect(!ufpi_image_matches(img, &c), "round %d",
				  round);
		}
		ufpi_contents_free(&c);
		ufpi_image_unref(img);
	}
	/* the same checks and errors, in the same order */
	ufp_segment bad[] = {{0, NULL, 1}, {WPAGE, pool_bytes, 1}};
	struct ufpi_contents c;
	cr_expect_eq(ufpi_contents_build(bad, 2, WPAGE, &c), -EINVAL);
	cr_expect_eq(ufpi_contents_build(bad + 1, 1, WPAGE, &c), -ERANGE);
}
