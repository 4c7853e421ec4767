/* SPDX-License-Identifier: MIT */
/*
 * test_handler.c - the userfaultfd handler under concurrency (uffd/
 * handler.c), and its fault-around window.
 *
 * Stress tests (not benchmarks: they assert correctness only, with a
 * seeded PRNG, sizes in the STRESS_* constants and a timeout each): 2 and
 * 4 threads allocate memories of several modules, touch random pages,
 * check every byte they touched and free, with 1 and 2 handler threads.
 * Threads never assert themselves (Criterion asserts belong to the test's
 * own thread): they record the first wrong byte and the test reports it.
 *
 * Window tests are specific to the UFFD backend and named uffd_*: they
 * count the handler's faults. Race tests run several threads through the
 * same fresh pages at once (EEXIST from UFFDIO_COPY is then normal).
 *
 * Expected bytes are computed here: a calloc'd buffer with the module's
 * segments applied in order, zero past them.
 */
/* ufp-test: labels=concurrency timeout=240 fill=copy */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "helpers.h"
#include "internal.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define WPAGE (64 * KiB)

static ufp_module *mk_module(ufp_pool *p, const ufp_segment *s, size_t n,
			     uint64_t initial)
{
	ufp_module *m = NULL;
	int err = ufp_module_create(p, s, n, initial, &m);
	cr_assert_eq(err, 0, "ufp_module_create: %s", ufp_strerror(err));
	return m;
}

/* ---- stress: allocate, touch, verify, free --------------------------------- */

#define STRESS_MAX (1 * MiB) /* max_memory_bytes */
#define STRESS_ITERS 2000    /* iterations per test, over all threads */
#define STRESS_TOUCH 8	     /* pages touched per iteration, at most */
#define STRESS_NMOD 3	     /* modules; index STRESS_NMOD is "none" */

static unsigned char spat[3][512 * 1024];

struct stress {
	ufp_pool *pool;
	ufp_module *mod[STRESS_NMOD + 1];
	uint64_t initial[STRESS_NMOD + 1];
	unsigned char *exp[STRESS_NMOD + 1]; /* STRESS_MAX bytes each */
};

struct worker {
	struct stress *st;
	unsigned iters;
	uint64_t seed;
	int failed;
	unsigned done;
	char msg[256];
};

#define WFAIL(w, ...)                                                      \
	do {                                                               \
		if (!(w)->failed)                                          \
			snprintf((w)->msg, sizeof((w)->msg), __VA_ARGS__); \
		(w)->failed = 1;                                           \
	} while (0)

static void *stress_worker(void *arg)
{
	struct worker *w = arg;
	struct stress *st = w->st;
	const size_t page = t_page();
	unsigned char *want = malloc(STRESS_TOUCH * page);
	uint64_t off[STRESS_TOUCH];

	if (!want) {
		WFAIL(w, "out of memory");
		return NULL;
	}
	for (unsigned it = 0; it < w->iters && !w->failed; it++) {
		unsigned mi = (unsigned)(t_rand(&w->seed) % (STRESS_NMOD + 1));
		uint64_t bytes =
			st->initial[mi] + WPAGE * (t_rand(&w->seed) % 4);
		if (bytes > STRESS_MAX)
			bytes = STRESS_MAX;
		ufp_memory *mem = NULL;
		int err =
			ufp_memory_alloc_wait(st->pool, st->mod[mi], bytes,
					      30ull * 1000 * 1000 * 1000, &mem);
		if (err) {
			WFAIL(w, "iteration %u: alloc: %s", it,
			      ufp_strerror(err));
			break;
		}
		unsigned char *base = ufp_memory_base(mem);
		const unsigned char *exp = st->exp[mi];
		unsigned n = 1 + (unsigned)(t_rand(&w->seed) % STRESS_TOUCH);
		/* first touch: the whole page must be right; then one byte
		 * of it written, remembered */
		for (unsigned t = 0; t < n; t++) {
			uint64_t p = t_rand(&w->seed) % (bytes / page);
			off[t] = p * page;
			unsigned char *got = base + off[t];
			unsigned char *wp = want + t * page;
			bool seen = false;
			for (unsigned u = 0; u < t; u++)
				if (off[u] == off[t]) {
					memcpy(wp, want + u * page, page);
					seen = true;
				}
			if (!seen)
				memcpy(wp, exp + off[t], page);
			int64_t d = t_first_diff(got, wp, page);
			if (d >= 0) {
				WFAIL(w,
				      "iteration %u, module %u, slot %u: byte "
				      "%llu is 0x%02x, expected 0x%02x",
				      it, mi, ufp_memory_slot(mem),
				      (unsigned long long)(off[t] +
							   (uint64_t)d),
				      got[d], wp[d]);
				break;
			}
			size_t b = t_rand(&w->seed) % page;
			unsigned char v = (unsigned char)(t_rand(&w->seed) | 1);
			got[b] = v;
			wp[b] = v;
			/* later copies of the same page see this write */
			for (unsigned u = 0; u < t; u++)
				if (off[u] == off[t])
					want[u * page + b] = v;
		}
		/* sometimes grow: the new wasm page reads zero */
		if (!w->failed && bytes < STRESS_MAX &&
		    t_rand(&w->seed) % 4 == 0) {
			err = ufp_memory_grow(mem, bytes + WPAGE);
			if (err)
				WFAIL(w, "iteration %u: grow: %s", it,
				      ufp_strerror(err));
			else if (t_first_diff(base + bytes, exp + bytes,
					      WPAGE) >= 0)
				WFAIL(w,
				      "iteration %u, module %u: grown page "
				      "is not zero",
				      it, mi);
		}
		/* everything written is still there, nothing else changed */
		for (unsigned t = 0; t < n && !w->failed; t++) {
			int64_t d = t_first_diff(base + off[t], want + t * page,
						 page);
			if (d >= 0)
				WFAIL(w,
				      "iteration %u, module %u: byte %llu is "
				      "0x%02x after the writes, expected "
				      "0x%02x",
				      it, mi,
				      (unsigned long long)(off[t] +
							   (uint64_t)d),
				      base[off[t] + (uint64_t)d],
				      want[t * page + (uint64_t)d]);
		}
		err = ufp_memory_free(mem);
		if (err)
			WFAIL(w, "iteration %u: free: %s", it,
			      ufp_strerror(err));
		w->done++;
	}
	free(want);
	return NULL;
}

static void stress(ufp_backend b, unsigned nthreads, unsigned handlers,
		   uint64_t keep)
{
	struct stress st = {0};
	ufp_config c;
	ufp_segment segs[3][4];
	size_t nsegs[3];

	t_fill(spat[0], sizeof(spat[0]), 11);
	t_fill(spat[1], sizeof(spat[1]), 12);
	t_fill(spat[2], sizeof(spat[2]), 13);
	/* dense 256 KiB */
	segs[0][0] = (ufp_segment){0, spat[0], 256 * KiB};
	nsegs[0] = 1;
	st.initial[0] = 256 * KiB;
	/* sparse and unaligned over 512 KiB, ending at initial_bytes */
	segs[1][0] = (ufp_segment){4095, spat[1], 3};
	segs[1][1] = (ufp_segment){100 * KiB + 17, spat[1] + 100, 70000};
	segs[1][2] = (ufp_segment){300 * KiB, spat[1] + 99999, 5};
	segs[1][3] = (ufp_segment){512 * KiB - 1000, spat[1] + 5000, 1000};
	nsegs[1] = 4;
	st.initial[1] = 512 * KiB;
	/* overlapping, 64 KiB */
	segs[2][0] = (ufp_segment){0, spat[2], 64 * KiB};
	segs[2][1] = (ufp_segment){8 * KiB, spat[0] + 7, 20 * KiB};
	nsegs[2] = 2;
	st.initial[2] = 64 * KiB;
	st.initial[STRESS_NMOD] = 64 * KiB;

	t_config(&c, nthreads + 1, STRESS_MAX);
	c.backend = b;
	c.handler_threads = handlers;
	c.keep_resident_bytes = keep;
	st.pool = t_pool(&c);
	for (int i = 0; i < STRESS_NMOD; i++) {
		st.mod[i] =
			mk_module(st.pool, segs[i], nsegs[i], st.initial[i]);
		st.exp[i] = t_apply_segments(segs[i], nsegs[i], STRESS_MAX);
	}
	st.mod[STRESS_NMOD] = NULL;
	st.exp[STRESS_NMOD] = t_apply_segments(NULL, 0, STRESS_MAX);

	pthread_t th[8];
	struct worker w[8];
	for (unsigned t = 0; t < nthreads; t++) {
		w[t] = (struct worker){.st = &st,
				       .iters = STRESS_ITERS / nthreads,
				       .seed = 1000 + t * 77 + handlers};
		cr_assert_eq(pthread_create(&th[t], NULL, stress_worker, &w[t]),
			     0);
	}
	unsigned total = 0;
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		total += w[t].done;
	}
	for (unsigned t = 0; t < nthreads; t++)
		cr_expect_not(w[t].failed,
			      "%s, %u threads, %u handlers, keep "
			      "%llu: thread %u: %s",
			      t_backend_name(b), nthreads, handlers,
			      (unsigned long long)keep, t, w[t].msg);
	cr_expect_eq(total, (STRESS_ITERS / nthreads) * nthreads);

	cr_expect_eq(ufpi_pool_check(st.pool), 0, "ufpi_pool_check");
	ufp_stats s = t_stats(st.pool);
	cr_expect_eq(s.allocs, total);
	if (t_backend_has_handler(b))
		cr_expect_eq(s.fault_errors, 0, "handler fault errors");
	for (int i = 0; i < STRESS_NMOD; i++)
		cr_assert_eq(ufp_module_drop(st.mod[i]), 0);
	cr_assert_eq(ufp_pool_destroy(st.pool), 0);
	for (int i = 0; i <= STRESS_NMOD; i++)
		free(st.exp[i]);
}

static void stress_all(unsigned nthreads, unsigned handlers, uint64_t keep)
{
	for (size_t k = 0; k < T_NBACKENDS; k++)
		stress(t_backends[k], nthreads, handlers, keep);
}

Test(handler_stress, threads_2_handlers_1, .timeout = 200)
{
	stress_all(2, 1, 0);
}

Test(handler_stress, threads_2_handlers_2, .timeout = 200)
{
	stress_all(2, 2, 0);
}

Test(handler_stress, threads_4_handlers_1, .timeout = 200)
{
	stress_all(4, 1, 0);
}

Test(handler_stress, threads_4_handlers_2, .timeout = 200)
{
	stress_all(4, 2, 0);
}

Test(handler_stress, threads_4_handlers_2_keep_resident, .timeout = 200)
{
	stress_all(4, 2, 128 * KiB);
}

/* ---- the fault-around window (UFFD only) ----------------------------------- */

/* A 1-slot UFFD pool of 4 MiB memories with a dense 4 MiB image. */
struct window_env {
	ufp_pool *pool;
	ufp_module *m;
	unsigned char *img;
	unsigned char *exp;
};

static void window_env_min(struct window_env *e, uint64_t around,
			   uint64_t around_max, uint64_t around_min)
{
	ufp_config c;
	t_config(&c, 1, 4 * MiB);
	c.backend = UFP_BACKEND_UFFD;
	c.fault_around_bytes = around;
	c.fault_around_max_bytes = around_max;
	if (around_min)
		c.fault_around_min_bytes = around_min;
	e->pool = t_pool(&c);
	e->img = malloc(4 * MiB);
	cr_assert_not_null(e->img);
	t_fill(e->img, 4 * MiB, 4242);
	/* every page surely holds a non-zero byte: all of them are stored */
	for (uint64_t off = 0; off < 4 * MiB; off += t_page())
		e->img[off] |= 1;
	ufp_segment seg = {0, e->img, 4 * MiB};
	e->exp = t_apply_segments(&seg, 1, 4 * MiB);
	e->m = mk_module(e->pool, &seg, 1, 4 * MiB);
}

static void window_env(struct window_env *e, uint64_t around,
		       uint64_t around_max)
{
	window_env_min(e, around, around_max, 0);
}

static void window_env_done(struct window_env *e)
{
	cr_assert_eq(ufp_module_drop(e->m), 0);
	cr_assert_eq(ufp_pool_destroy(e->pool), 0);
	free(e->img);
	free(e->exp);
}

Test(handler, uffd_window_sequential_touch_grows_the_window, .timeout = 60)
{
	struct window_env e;
	window_env(&e, 64 * KiB, 1 * MiB);
	const size_t page = t_page();
	const uint64_t pages = 4 * MiB / page;
	ufp_memory *mem = t_alloc(e.pool, e.m, 0);
	volatile unsigned char *v = ufp_memory_base(mem);
	ufp_stats s0 = t_stats(e.pool);
	for (uint64_t p = 0; p < pages; p++)
		cr_assert_eq(v[p * page], e.exp[p * page]);
	ufp_stats s1 = t_stats(e.pool);
	uint64_t faults = s1.faults - s0.faults;
	cr_expect_gt(faults, 0, "no fault at all: is this the UFFD backend?");
	cr_expect_lt(faults, pages / 8, "%llu faults for %llu sequential pages",
		     (unsigned long long)faults, (unsigned long long)pages);
	/* and fewer than a window that never grows would need */
	cr_expect_lt(faults, 4 * MiB / (64 * KiB),
		     "%llu faults: the window did not grow",
		     (unsigned long long)faults);
	cr_expect_eq(t_installed(&s1) - t_installed(&s0), pages,
		     "every page of a dense image is copied exactly once");
	cr_expect_eq(s1.pages_zeroed - s0.pages_zeroed, 0);
	t_assert_bytes(ufp_memory_base(mem), e.exp, 4 * MiB, "sequential", 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	window_env_done(&e);
}

/* Read one page inside each of the windows order[0, touches) of `around`
 * bytes, never a window's first page (so no window's end is hit in
 * sequence), each checked against the image exp. */
static void touch_isolated(const unsigned char *base, const unsigned char *exp,
			   const uint64_t *order, uint64_t touches,
			   uint64_t around, uint64_t *seed)
{
	const size_t page = t_page();
	for (uint64_t i = 0; i < touches; i++) {
		uint64_t off = order[i] * around +
			       (1 + t_rand(seed) % (around / page - 1)) * page;
		t_assert_bytes(base + off, exp + off, page, "random", off);
	}
}

Test(handler, uffd_window_random_touch_fills_at_most_one_window_per_fault,
     .timeout = 60)
{
	struct window_env e;
	const uint64_t around = 64 * KiB;
	window_env(&e, around, 1 * MiB);
	const size_t page = t_page();
	const uint64_t nwin = 4 * MiB / around, touches = 48;
	uint64_t order[64], seed = 77;
	cr_assert_leq(nwin, 64);
	t_permutation(order, nwin, &seed);
	ufp_memory *mem = t_alloc(e.pool, e.m, 0);
	unsigned char *base = ufp_memory_base(mem);
	uint64_t r0, r1;
	cr_assert_eq(ufp_pool_resident_bytes(e.pool, &r0), 0);
	ufp_stats s0 = t_stats(e.pool);
	/* one page inside each of `touches` distinct windows, never the
	 * first page of a window: a window's end is never hit in sequence */
	touch_isolated(base, e.exp, order, touches, around, &seed);
	ufp_stats s1 = t_stats(e.pool);
	cr_assert_eq(ufp_pool_resident_bytes(e.pool, &r1), 0);
	uint64_t faults = s1.faults - s0.faults, res = r1 - r0;
	cr_expect_eq(faults, touches, "%llu faults for %llu isolated touches",
		     (unsigned long long)faults, (unsigned long long)touches);
	cr_expect_leq(res, faults * around,
		      "%llu bytes resident after %llu faults of a %llu-byte "
		      "window",
		      (unsigned long long)res, (unsigned long long)faults,
		      (unsigned long long)around);
	cr_expect_geq(res, touches * page);
	cr_expect_leq(t_installed(&s1) - t_installed(&s0),
		      faults * (around / page));
	cr_assert_eq(ufp_memory_free(mem), 0);
	window_env_done(&e);
}

/* Isolated faults shrink the window to fault_around_min_bytes: random
 * access populates a few pages per page touched, not a whole window. */
Test(handler, uffd_window_shrinks_on_isolated_faults, .timeout = 60)
{
	struct window_env e;
	const uint64_t around = 64 * KiB, floor = 16 * KiB;
	window_env(&e, around, 1 * MiB); /* floor: the default */
	ufp_config d;
	ufp_config_init(&d);
	cr_assert_eq(d.fault_around_min_bytes, floor);
	const size_t page = t_page();
	const uint64_t nwin = 4 * MiB / around, touches = 48;
	uint64_t order[64], seed = 78;
	t_permutation(order, nwin, &seed);
	ufp_memory *mem = t_alloc(e.pool, e.m, 0);
	unsigned char *base = ufp_memory_base(mem);
	ufp_stats s0 = t_stats(e.pool);
	touch_isolated(base, e.exp, order, touches, around, &seed);
	ufp_stats s1 = t_stats(e.pool);
	uint64_t copied = t_installed(&s1) - t_installed(&s0);
	/* 64 KiB, 32 KiB, then 16 KiB for every further isolated fault */
	uint64_t most = (around + around / 2 + (touches - 2) * floor) / page;
	cr_expect_eq(s1.faults - s0.faults, touches);
	cr_expect_leq(copied, most,
		      "%llu pages populated for %llu isolated touches (at "
		      "most %llu with a shrinking window)",
		      (unsigned long long)copied, (unsigned long long)touches,
		      (unsigned long long)most);
	cr_assert_eq(ufp_memory_free(mem), 0);
	window_env_done(&e);
}

/* After isolated faults shrank it, a sequential pass grows it again. */
Test(handler, uffd_window_grows_again_after_shrinking, .timeout = 60)
{
	struct window_env e;
	window_env(&e, 64 * KiB, 1 * MiB);
	const size_t page = t_page();
	ufp_memory *mem = t_alloc(e.pool, e.m, 0);
	volatile unsigned char *v = ufp_memory_base(mem);
	/* shrink: isolated touches in the upper 2 MiB, 128 KiB apart */
	ufp_stats sa = t_stats(e.pool);
	for (uint64_t k = 0; k < 8; k++) {
		uint64_t off = 2 * MiB + k * 128 * KiB + 5 * page;
		cr_assert_eq(v[off], e.exp[off]);
	}
	ufp_stats s0 = t_stats(e.pool);
	/* 64 + 32 + 6 * 16 KiB: it did shrink */
	cr_assert_leq(t_installed(&s0) - t_installed(&sa),
		      (64 + 32 + 6 * 16) * KiB / page);
	for (uint64_t off = 0; off < 2 * MiB; off += page)
		cr_assert_eq(v[off], e.exp[off]);
	ufp_stats s1 = t_stats(e.pool);
	/* 16 + 32 + ... + 1024 KiB covers 2 MiB in 8 faults; a window
	 * stuck at 16 KiB would take 128 */
	cr_expect_leq(s1.faults - s0.faults, 10,
		      "%llu faults for 2 MiB read in sequence",
		      (unsigned long long)(s1.faults - s0.faults));
	t_assert_bytes(ufp_memory_base(mem), e.exp, 4 * MiB, "after both", 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	window_env_done(&e);
}

/* Window sizes that are page multiples but not powers of two: halving
 * must keep every window a page multiple, or the fill would miss the
 * faulting page and the wake would fail (the thread would sleep forever:
 * the timeout catches it). */
Test(handler, uffd_window_odd_sizes_never_hang, .timeout = 60)
{
	const size_t page = t_page();
	const uint64_t cfgs[][3] = {
		{3 * page, 18 * page, page}, /* 12 KiB .. 72 KiB, 4 KiB */
		{16 * page, 18 * page, 0},   /* 64 KiB .. 72 KiB, default */
		{5 * page, 5 * page,
		 3 * page}, /* 20 KiB fixed, shrinks to 12 */
	};
	for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
		struct window_env e;
		window_env_min(&e, cfgs[c][0], cfgs[c][1], cfgs[c][2]);
		ufp_memory *mem = t_alloc(e.pool, e.m, 0);
		volatile unsigned char *v = ufp_memory_base(mem);
		uint64_t seed = 99 + c;
		/* a sequential stretch (grows the window), then isolated
		 * pages everywhere (shrinks it through odd sizes) */
		for (uint64_t off = 0; off < 256 * KiB; off += page)
			cr_assert_eq(v[off], e.exp[off]);
		for (int k = 0; k < 200; k++) {
			uint64_t off =
				(t_rand(&seed) % (4 * MiB / page)) * page +
				t_rand(&seed) % page;
			cr_assert_eq(v[off], e.exp[off],
				     "config %zu, byte %llu", c,
				     (unsigned long long)off);
		}
		t_assert_bytes(ufp_memory_base(mem), e.exp, 4 * MiB, "odd", 0);
		cr_assert_eq(t_stats(e.pool).fault_errors, 0);
		cr_assert_eq(ufp_memory_free(mem), 0);
		window_env_done(&e);
	}
}

Test(handler, uffd_window_of_one_page_faults_once_per_page, .timeout = 60)
{
	const size_t page = t_page();
	struct window_env e;
	window_env(&e, page, page);
	const uint64_t pages = 1 * MiB / page;
	ufp_memory *mem = t_alloc(e.pool, e.m, 0);
	volatile unsigned char *v = ufp_memory_base(mem);

	/* sequential: no growth */
	ufp_stats s0 = t_stats(e.pool);
	for (uint64_t p = 0; p < pages; p++)
		cr_assert_eq(v[p * page], e.exp[p * page]);
	ufp_stats s1 = t_stats(e.pool);
	cr_expect_eq(s1.faults - s0.faults, pages,
		     "%llu faults for %llu sequential pages",
		     (unsigned long long)(s1.faults - s0.faults),
		     (unsigned long long)pages);
	cr_expect_eq(t_installed(&s1) - t_installed(&s0), pages);

	/* backwards over the next MiB: one each too */
	for (uint64_t p = 2 * pages; p-- > pages;)
		cr_assert_eq(v[p * page], e.exp[p * page]);
	ufp_stats s2 = t_stats(e.pool);
	cr_expect_eq(s2.faults - s1.faults, pages);
	t_assert_bytes(ufp_memory_base(mem), e.exp, 2 * MiB, "one-page window",
		       0);
	/* touching populated pages again costs no fault */
	for (uint64_t p = 0; p < 2 * pages; p++)
		(void)v[p * page];
	cr_expect_eq(t_stats(e.pool).faults, s2.faults);
	cr_assert_eq(ufp_memory_free(mem), 0);
	window_env_done(&e);
}

/* ---- races on the same fresh pages ---------------------------------------- */

#define RACE_BYTES (1 * MiB)

struct racer {
	unsigned char *base;
	const unsigned char *exp;
	pthread_barrier_t *bar;
	int mode; /* 0 forward, 1 backward, 2 write byte 7 of every page */
	unsigned char tag;
	int failed;
	char msg[200];
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	const size_t page = t_page();
	const uint64_t pages = RACE_BYTES / page;
	pthread_barrier_wait(r->bar);
	for (uint64_t i = 0; i < pages && !r->failed; i++) {
		uint64_t p = r->mode == 1 ? pages - 1 - i : i;
		unsigned char *got = r->base + p * page;
		const unsigned char *want = r->exp + p * page;
		if (r->mode == 2) {
			got[7] = r->tag;
			continue;
		}
		/* byte 7 may be a writer's tag: check around it */
		int64_t d = t_first_diff(got, want, 7);
		if (d < 0) {
			d = t_first_diff(got + 8, want + 8, page - 8);
			if (d >= 0)
				d += 8;
		}
		if (d >= 0) {
			snprintf(r->msg, sizeof(r->msg),
				 "byte %llu is 0x%02x, expected 0x%02x",
				 (unsigned long long)(p * page + (uint64_t)d),
				 got[d], want[d]);
			r->failed = 1;
		}
	}
	return NULL;
}

static void race(ufp_backend b, uint64_t around, int modes[3], int nthreads)
{
	ufp_config c;
	t_config(&c, 1, RACE_BYTES);
	c.backend = b;
	c.fault_around_bytes = around;
	c.fault_around_max_bytes = around < 1 * MiB ? 1 * MiB : around;
	/* every round must start from fresh pages: no clean page kept */
	c.dirty_tracking = UFP_DIRTY_OFF;
	ufp_pool *pool = t_pool(&c);
	unsigned char *pat = malloc(RACE_BYTES);
	cr_assert_not_null(pat);
	t_fill(pat, RACE_BYTES, 555);
	/* image pages and zero pages interleaved, runs of both */
	ufp_segment segs[] = {
		{0, pat, 300 * KiB},
		{512 * KiB + 5, pat + 1000, 3 * 4096},
		{600 * KiB, pat + 70000, 300 * KiB},
		{RACE_BYTES - 4096, pat + 4096, 4096},
	};
	unsigned char *exp = t_apply_segments(segs, 4, RACE_BYTES);
	ufp_module *m = mk_module(pool, segs, 4, RACE_BYTES);
	unsigned char tag = 0xa0;

	for (int round = 0; round < 8; round++, tag++) {
		ufp_memory *mem = t_alloc(pool, m, 0);
		pthread_barrier_t bar;
		pthread_t th[3];
		struct racer r[3];
		cr_assert_eq(
			pthread_barrier_init(&bar, NULL, (unsigned)nthreads),
			0);
		for (int t = 0; t < nthreads; t++) {
			r[t] = (struct racer){.base = ufp_memory_base(mem),
					      .exp = exp,
					      .bar = &bar,
					      .mode = modes[t],
					      .tag = tag};
			cr_assert_eq(
				pthread_create(&th[t], NULL, race_main, &r[t]),
				0);
		}
		bool wrote = false;
		for (int t = 0; t < nthreads; t++) {
			pthread_join(th[t], NULL);
			wrote |= modes[t] == 2;
		}
		pthread_barrier_destroy(&bar);
		for (int t = 0; t < nthreads; t++)
			cr_assert_not(r[t].failed,
				      "%s, window %llu, round %d, thread %d: "
				      "%s",
				      t_backend_name(b),
				      (unsigned long long)around, round, t,
				      r[t].msg);
		/* afterwards: the image, with every tag that was written */
		if (wrote)
			for (uint64_t off = 7; off < RACE_BYTES;
			     off += t_page())
				exp[off] = tag;
		t_assert_bytes(ufp_memory_base(mem), exp, RACE_BYTES,
			       "after the race", 0);
		if (wrote) {
			free(exp);
			exp = t_apply_segments(segs, 4, RACE_BYTES);
		}
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	cr_assert_eq(ufpi_pool_check(pool), 0);
	if (t_backend_has_handler(b))
		cr_expect_eq(t_stats(pool).fault_errors, 0);
	cr_assert_eq(ufp_module_drop(m), 0);
	cr_assert_eq(ufp_pool_destroy(pool), 0);
	free(exp);
	free(pat);
}

/* race() on every backend, in 4 KiB and in 64 KiB windows. */
static void race_every_backend(int *modes, int nthreads)
{
	for (size_t k = 0; k < T_NBACKENDS; k++) {
		race(t_backends[k], 4096, modes, nthreads);
		race(t_backends[k], 64 * KiB, modes, nthreads);
	}
}

Test(handler_race, two_readers_same_order, .timeout = 120)
{
	int modes[] = {0, 0, 0};
	race_every_backend(modes, 2);
}

Test(handler_race, two_readers_opposite_orders, .timeout = 120)
{
	int modes[] = {0, 1, 0};
	race_every_backend(modes, 2);
}

Test(handler_race, writer_and_readers_lose_no_write, .timeout = 120)
{
	int modes[] = {2, 0, 1};
	race_every_backend(modes, 3);
}

/*
 * Regression: UFFDIO_ZEROPAGE refuses a pte holding a uffd-wp marker (the
 * dirty reset re-protects the span of restored pages, and with
 * WP_UNPOPULATED that puts markers on the missing pages inside it), while
 * a fault on such a pte still reaches the handler as MISSING: the handler
 * answered EEXIST forever and the thread faulted in a loop (found by the
 * multi-threaded model test as a hang).
 */
Test(regression, zeropage_over_wp_marker_does_not_livelock, .timeout = 30)
{
	const size_t page = ufpi_page_size();
	ufp_config c;
	ufp_pool *pool;
	ufp_memory *mem;
	int dirty = 0;

	t_config(&c, 1, 64 << 10);
	c.backend = UFP_BACKEND_UFFD;
	c.keep_resident_bytes = 64 << 10;
	c.fault_around_bytes = c.fault_around_max_bytes = page;
	pool = t_pool(&c);
	cr_assert_eq(ufp_pool_info(pool, NULL, NULL, &dirty), 0);
	if (!dirty)
		t_skip("dirty tracking unavailable (WP_ASYNC + PAGEMAP_SCAN)");

	/* pages 0 and 2 written, page 1 never touched */
	cr_assert_eq(ufp_memory_alloc(pool, NULL, 64 << 10, &mem), 0);
	unsigned char *b = ufp_memory_base(mem);
	b[0] = 1;
	b[2 * page] = 2;
	cr_assert_eq(ufp_memory_free(mem), 0);

	/* the reset restored 0 and 2 and write-protected [0, 3 pages) */
	cr_assert_eq(ufp_memory_alloc(pool, NULL, 64 << 10, &mem), 0);
	b = ufp_memory_base(mem);
	cr_assert_eq(b[page + 7], 0, "page 1 must read zero");
	cr_assert_eq(b[0], 0);
	cr_assert_eq(b[2 * page], 0);
	b[page] = 3; /* and it is writable */
	cr_assert_eq(b[page], 3);
	cr_assert_eq(ufp_memory_free(mem), 0);
	cr_assert_eq(ufp_pool_destroy(pool), 0);
}
