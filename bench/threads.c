/* SPDX-License-Identifier: MIT */
/*
 * threads.c - `ufp-bench threads`: N threads instantiate and touch
 * concurrently (N = 1, 2, 4), each running alloc -> read every image page,
 * write 5% -> free cycles of one shared module, in a pool with 2N slots.
 * Reports instantiations per second (all threads) and the median cycle.
 * With userfaultfd, cold faults of all threads funnel into the handler
 * thread(s); warm affine reuse mostly avoids them. The settings compared
 * like with like (bench.h), plus UFFD at the defaults with two handler
 * threads; beside each time the residency after every memory is freed:
 * the pool's private bytes and the process's Pss delta.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

struct tsetting {
	size_t set; /* in ufpb_settings */
	unsigned handlers;
};

static const struct tsetting tsettings[] = {
	{UFPB_SET_UFFD_DEFAULT, 1}, {UFPB_SET_UFFD_DEFAULT, 2},
	{UFPB_SET_UFFD_MINOR, 1},   {UFPB_SET_UFFD_COPY, 1},
	{UFPB_SET_COW_KEEP0, 1},    {UFPB_SET_COW_KEEPALL, 1},
};

struct worker {
	ufp_pool *pool;
	ufp_module *m;
	uint64_t pages;
	int cycles;
	double *ns;
	int err;
	pthread_barrier_t *start;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const size_t page = ufpi_page_size();

	pthread_barrier_wait(w->start);
	for (int k = 0; k < w->cycles; k++) {
		ufp_memory *mem;
		uint64_t t0 = ufpb_now_ns();
		w->err = ufp_memory_alloc_wait(w->pool, w->m, 0, 1000000000ull,
					       &mem);
		if (w->err)
			return NULL;
		volatile unsigned char *b = ufp_memory_base(mem);
		unsigned char sink = 0;
		for (uint64_t p = 0; p < w->pages; p++) {
			sink ^= b[p * page];
			if (p % 20 == 7)
				b[p * page + 1] = (unsigned char)k;
		}
		(void)sink;
		w->err = ufp_memory_free(mem);
		w->ns[k] = (double)(ufpb_now_ns() - t0);
		if (w->err)
			return NULL;
	}
	return NULL;
}

/* N workers on one module, started together; ns[] gets every cycle's
 * time, *dt the wall time from the start to the last join. The first
 * worker error, or 0. */
static int run_workers(ufp_pool *pool, ufp_module *m, unsigned nthreads,
		       size_t len, int cycles, double *ns, uint64_t *dt)
{
	struct worker w[8];
	pthread_t tid[8];
	pthread_barrier_t start;
	int err = 0;

	pthread_barrier_init(&start, NULL, nthreads + 1);
	for (unsigned t = 0; t < nthreads; t++) {
		w[t] = (struct worker){pool,
				       m,
				       len / ufpi_page_size(),
				       cycles,
				       ns + (size_t)t * cycles,
				       0,
				       &start};
		pthread_create(&tid[t], NULL, worker_main, &w[t]);
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = ufpb_now_ns();
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(tid[t], NULL);
		if (w[t].err)
			err = w[t].err;
	}
	*dt = ufpb_now_ns() - t0;
	pthread_barrier_destroy(&start);
	return err;
}

/* One run: N threads, `cycles` each. Returns cycles per second, fills
 * median cycle ns. */
static int run(const struct tsetting *st, unsigned nthreads,
	       const unsigned char *data, size_t len, int cycles,
	       double *per_sec, double *median_ns, struct ufpb_resid *idle,
	       ufp_fill_mode *fill)
{
	ufp_config c;
	ufp_pool *pool;
	struct ufpb_resid base, now;
	ufp_module *m;
	ufp_segment seg = {0, data, len};
	int err;

	ufpb_config(&ufpb_settings[st->set], 2 * nthreads, len, &c);
	c.handler_threads = st->handlers;
	err = ufpb_resid_read(NULL, &base);
	if (!err)
		err = ufp_pool_create(&c, &pool);
	if (!err)
		err = ufp_pool_fill_mode(pool, fill);
	if (err)
		return err;
	err = ufp_module_create(pool, &seg, 1, len, &m);
	if (err) {
		UFPI_IGNORE(ufp_pool_destroy(pool));
		return err;
	}
	double *ns = calloc((size_t)nthreads * (size_t)cycles, sizeof(*ns));
	if (!ns)
		abort();
	uint64_t dt;
	err = run_workers(pool, m, nthreads, len, cycles, ns, &dt);
	*per_sec = (double)nthreads * cycles / ((double)dt / 1e9);
	*median_ns = ufpb_median(ns, (size_t)nthreads * cycles);
	free(ns);
	if (!err)
		err = ufpb_resid_read(pool, &now);
	ufpb_resid_sub(idle, &now, &base);
	UFPI_IGNORE(ufp_module_drop(m));
	UFPI_IGNORE(ufp_pool_destroy(pool));
	return err;
}

/* Medians over the reps of one setting at N threads; 0 or the error of
 * the rep that failed. */
static int point(struct ufpb *b, const struct tsetting *ts, unsigned n_threads,
		 const unsigned char *data, size_t len, int cycles, double *rm,
		 double *mm, struct ufpb_resid *r, int *n, ufp_fill_mode *fill)
{
	double rate[16], med[16];
	struct ufpb_resid rs[16];
	int err = 0;
	*n = 0;
	for (int k = 0; k < b->reps && k < 16; k++) {
		err = run(ts, n_threads, data, len, cycles, &rate[*n], &med[*n],
			  &rs[*n], fill);
		if (err)
			return err;
		(*n)++;
	}
	*rm = ufpb_median(rate, (size_t)*n);
	*mm = ufpb_median(med, (size_t)*n);
	ufpb_resid_median(rs, (size_t)*n, r);
	return 0;
}

static void print_point(struct ufpb *b, const struct tsetting *ts,
			unsigned n_threads, const unsigned char *data,
			size_t len, int cycles)
{
	ufp_fill_mode fill = UFP_FILL_AUTO;
	struct ufpb_resid r;
	double rm = 0, mm = 0;
	char name[64], js[512];
	int n;
	int err = point(b, ts, n_threads, data, len, cycles, &rm, &mm, &r, &n,
			&fill);
	snprintf(name, sizeof(name), "%s%s%s", ufpb_settings[ts->set].name,
		 ts->handlers > 1 ? " 2 handlers" : "",
		 ufpb_fill_note(&ufpb_settings[ts->set], fill));
	if (err) {
		ufpb_say(b, "  %-32s %3u %s\n", name, n_threads,
			 ufp_strerror(err));
		return;
	}
	ufpb_say(b, "  %-32s %3u %10.0f %9.1f %10lld %10lld %9lld %8lld\n",
		 name, n_threads, rm, mm / 1000, (long long)r.priv >> 10,
		 (long long)r.pss >> 10, (long long)r.rss_anon >> 10,
		 (long long)r.rss_shmem >> 10);
	ufpb_emit(b, "threads",
		  "\"setting\": \"%s\", \"fill\": \"%s\", "
		  "\"handlers\": %u, "
		  "\"threads\": %u, "
		  "\"cycles_per_sec_median\": %.0f, "
		  "\"cycle_ns_median\": %.0f, \"reps\": %d, %s",
		  ufpb_settings[ts->set].name, ufpb_fill_name(fill),
		  ts->handlers, n_threads, rm, mm, n,
		  ufpb_resid_json(&r, "freed", js, sizeof(js)));
}

int ufpb_threads(struct ufpb *b, int argc, char **argv)
{
	static const unsigned counts[] = {1, 2, 4};
	size_t len = 1 << 20;
	int cycles = b->quick ? 100 : 400;
	(void)argc, (void)argv;

	unsigned char *data = malloc(len);
	if (!data)
		return 1;
	for (size_t k = 0; k < len; k++)
		data[k] = (unsigned char)(k * 131 + 7) | 1;

	ufpb_say(b,
		 "threads: N threads run alloc -> read 1 MiB image, write "
		 "5%% of pages -> free of one shared module, 2N slots, "
		 "%d cycles each;\n  cycles/s over all threads (median of "
		 "%d reps) and median cycle; idle priv = the pool's private "
		 "KiB and Pss / RssAnon /\n  RssShm = the process's deltas "
		 "(KiB) once every memory is freed.\n\n",
		 cycles, b->reps);
	ufpb_say(b, "  %-32s %3s %10s %9s %10s %10s %9s %8s\n", "setting", "N",
		 "cycles/s", "cycle us", "idle priv", "Pss KiB", "RssAnon K",
		 "RssShm K");
	for (size_t si = 0; si < sizeof(tsettings) / sizeof(tsettings[0]); si++)
		for (size_t ci = 0; ci < 3; ci++)
			print_point(b, &tsettings[si], counts[ci], data, len,
				    cycles);
	free(data);
	return 0;
}
