/* SPDX-License-Identifier: MIT */
/*
 * fault.c - `ufp-bench fault`: cold first touch through the userfaultfd
 * handler against the run's bulk-copy floor (issue 3) and against the same
 * touch through a plain private memfd mapping (issue 10, DESIGN.md §11).
 *
 *   ufp-bench fault [--mib N] [--seed S]
 *
 * Workload: a module whose image covers all of N MiB (default 64, 16 with
 * --quick), every page non-zero. For each fault-around setting (fixed
 * windows of 4 KiB .. 2 MiB, the library default that starts at 64 KiB
 * and doubles on sequential faults up to 1 MiB, and 16 KiB growing to
 * 1 MiB for comparison) a fresh one-slot pool, UFFD backend, otherwise
 * ufp_config_init's defaults (fill mode AUTO; dirty tracking where the
 * kernel has it) but prefetch off: this is the fault path itself; the default window is also run with each fill mode
 * forced (MINOR: page-cache pages mapped with UFFDIO_CONTINUE; COPY:
 * private copies). Each rep allocates, reads one byte per page in the
 * given order (sequential, or a seeded shuffle), and frees; only the read
 * loop is timed. Every rep is cold: two modules with the same image take
 * turns in the slot (see struct pool_run), and the handler's fault and
 * population counters must show it, else the run fails; so does a wrong
 * byte. After the timed reps one more sequential touch reads the
 * residency (ufpb_resid_read) with the memory live and after its free.
 *
 * Baselines, same run: the floor (floor.c, shared by every scenario), and
 * the kernel's own copy-on-write faults: the same image in a sealed memfd,
 * mapped MAP_PRIVATE afresh each rep and read in sequential order
 * (Wasmtime's cold touch; fault-around of file mappings included), each
 * sample taken right after a sequential rep of the MINOR row it is
 * compared with.
 *
 * Population overhead: touching a random 10% of the pages (fresh seed per
 * rep), pages populated (copied + zeroed + continued) per page touched.
 * With a fixed window of w pages and density d this is about
 * (1-(1-d)^w)/d: 3.4 pages for 16 KiB, 8.1 for 64 KiB at d = 10%.
 *
 * Targets, at the default window: sequential <= 1.3x the floor (issue 3);
 * random-order overhead <= 4 pages populated per page touched (issue 3);
 * sequential in MINOR mode <= 1.3x the private memfd mapping (issue 10).
 * The run also reports the CPU pressure it ran under (/proc/pressure/cpu):
 * with other work on the machine the handler waits for a CPU at every
 * fault.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

#define SEQ_TARGET 1.3
#define POP_TARGET 4.0
#define MEMFD_TARGET 1.3
#define SUBSET_PERCENT 10
#define ROW_BUDGET_NS 4e9 /* both orders of one window setting */

struct setting {
	uint64_t win, max, min; /* 0, 0, 0: ufp_config_init's defaults */
	ufp_fill_mode fill;
	const char *note;
};

/* Fixed windows (no growth, no shrinking), the default with each fill
 * mode, and two settings that are not the default, to show what a smaller
 * starting window or a smaller shrink floor would trade. */
static const struct setting settings[] = {
	{4 << 10, 4 << 10, 4 << 10, UFP_FILL_AUTO, ""},
	{16 << 10, 16 << 10, 16 << 10, UFP_FILL_AUTO, ""},
	{64 << 10, 64 << 10, 64 << 10, UFP_FILL_AUTO, ""},
	{256 << 10, 256 << 10, 256 << 10, UFP_FILL_AUTO, ""},
	{1 << 20, 1 << 20, 1 << 20, UFP_FILL_AUTO, ""},
	{2 << 20, 2 << 20, 2 << 20, UFP_FILL_AUTO, ""},
	{0, 0, 0, UFP_FILL_AUTO, "default"},
	{0, 0, 0, UFP_FILL_MINOR, "default window, MINOR forced"},
	{0, 0, 0, UFP_FILL_COPY, "default window, COPY forced"},
	{16 << 10, 1 << 20, 16 << 10, UFP_FILL_AUTO, "not default"},
	{64 << 10, 1 << 20, 4 << 10, UFP_FILL_AUTO, "not default"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))
#define DEFAULT_ROW 6
#define MINOR_ROW 7

struct work {
	struct ufpb *b;
	size_t page;
	size_t npages;
	size_t bytes;
	unsigned char *src; /* the image bytes, page-aligned, resident */
	uint64_t byte_sum;  /* sum of the first byte of every page */
	uint32_t *seq;	    /* 0..npages-1 */
	uint32_t *perm;	    /* seeded shuffle */
	uint32_t *sub;	    /* a fresh random subset per rep */
	size_t nsub;
	uint64_t seed;
	int reps;
	int dirty;  /* dirty tracking on in the pools measured */
	double *ns; /* reps samples */
	int memfd;  /* the image in a sealed memfd, for the kernel baseline */
	double *memfd_ns; /* its samples, per page */
	int nmemfd;
};

static unsigned char page_byte(size_t p)
{
	return (unsigned char)(1 + p % 251); /* never zero */
}

static const char *human(uint64_t bytes, char *buf, size_t cap)
{
	if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
		snprintf(buf, cap, "%llu MiB",
			 (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, cap, "%llu KiB",
			 (unsigned long long)(bytes >> 10));
	return buf;
}
/* ---- thread wake-up round trip ----------------------------------------- */

/*
 * Every fault is a round trip between two threads: the faulting thread
 * sleeps, the handler thread wakes, serves, and wakes it again. Two
 * threads passing a token through two eventfds measure that part alone,
 * without userfaultfd: what a fault costs at least on this machine, on
 * top of its share of the copy.
 */
struct pingpong {
	int to, from;
};

static void *pong(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t v;
	while (read(pp->to, &v, sizeof(v)) == sizeof(v) && v != UINT64_MAX - 1)
		if (write(pp->from, &v, sizeof(v)) != sizeof(v))
			break;
	return NULL;
}

/* Mean ns per round trip over n, or -1 if it could not be measured. */
static double wake_rtt_ns(unsigned n)
{
	struct pingpong pp = {eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC)};
	pthread_t t;
	double r = -1;
	uint64_t v = 1;

	if (pp.to < 0 || pp.from < 0 || pthread_create(&t, NULL, pong, &pp)) {
		if (pp.to >= 0)
			close(pp.to);
		if (pp.from >= 0)
			close(pp.from);
		return -1;
	}
	uint64_t t0 = ufpb_now_ns();
	unsigned k;
	for (k = 0; k < n; k++) {
		v = 1;
		if (write(pp.to, &v, sizeof(v)) != sizeof(v) ||
		    read(pp.from, &v, sizeof(v)) != sizeof(v))
			break;
	}
	if (k == n)
		r = (double)(ufpb_now_ns() - t0) / n;
	v = UINT64_MAX - 1; /* the largest value an eventfd accepts: stop */
	if (write(pp.to, &v, sizeof(v)) == sizeof(v))
		pthread_join(t, NULL);
	else
		pthread_cancel(t), pthread_join(t, NULL);
	close(pp.to);
	close(pp.from);
	return r;
}

/* ---- the kernel's copy-on-write faults ---------------------------------- */

/*
 * The same image in a sealed memfd, as the COW backend and Wasmtime keep
 * it; each sample maps it MAP_PRIVATE afresh, reads one byte per page in
 * sequential order (timed) and unmaps it. The page cache is warm, as it is
 * for a pool's module, so this is the kernel's fault path alone. Samples
 * are taken rep by rep between the reps of the row the target compares
 * (MINOR at the default window), so both see the same machine.
 */
static int memfd_open(struct work *w)
{
	int err = ufpi_os_memfd_image("ufp-bench-fault", w->bytes, &w->memfd);
	if (err) {
		w->memfd = -1;
		return err;
	}
	err = ufpi_os_pwrite_all(w->memfd, w->src, w->bytes, 0);
	if (!err)
		err = ufpi_os_seal(w->memfd);
	return err;
}

/* One sample; with ns NULL a warm-up. */
static int memfd_once(struct work *w, double *ns)
{
	unsigned char *m = mmap(NULL, w->bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE, w->memfd, 0);
	if (m == MAP_FAILED)
		return -errno;
	const volatile unsigned char *base = m;
	uint64_t sum = 0, t0 = ufpb_now_ns();
	for (size_t i = 0; i < w->npages; i++)
		sum += base[i * w->page];
	uint64_t t1 = ufpb_now_ns();
	munmap(m, w->bytes);
	if (sum != w->byte_sum)
		return -EIO;
	if (ns && w->nmemfd < w->reps)
		ns[w->nmemfd++] = (double)(t1 - t0) / (double)w->npages;
	return 0;
}

/* ---- touches through the pool ------------------------------------------ */

/* Two modules with identical images, used alternately: a slot handed to a
 * different module is wiped at alloc (outside the timing), which keeps
 * every rep cold even where the library keeps clean pages across frees of
 * the same module (dirty tracking, whatever keep_resident_bytes says). */
struct pool_run {
	ufp_pool *pool;
	ufp_module *mod[2];
	unsigned next;
	int dirty; /* dirty tracking on in this pool (ufp_pool_info) */
	ufp_fill_mode fill;
};

static int run_open(struct work *w, const struct setting *st,
		    struct pool_run *pr)
{
	ufp_config cfg;
	int err;

	ufp_config_init(&cfg);
	cfg.slots = 1;
	cfg.max_memory_bytes = w->bytes;
	cfg.guard_bytes = 64 << 10; /* no bounds checks are elided here */
	cfg.backend = UFP_BACKEND_UFFD;
	cfg.fill_mode = st->fill;
	cfg.keep_resident_bytes = 0;
	/* the fault path itself: a learned set would map the pages ahead
	 * (ufp-bench prefetch measures that) */
	cfg.prefetch = UFP_PREFETCH_OFF;
	if (st->win) {
		cfg.fault_around_bytes = st->win;
		cfg.fault_around_max_bytes = st->max;
		cfg.fault_around_min_bytes = st->min;
	}
	err = ufp_pool_create(&cfg, &pr->pool);
	if (err)
		return err;
	ufp_segment seg = {.offset = 0, .bytes = w->src, .len = w->bytes};
	for (int k = 0; k < 2 && !err; k++)
		err = ufp_module_create(pr->pool, &seg, 1, w->bytes,
					&pr->mod[k]);
	if (!err)
		err = ufp_pool_info(pr->pool, NULL, NULL, &pr->dirty);
	if (!err)
		err = ufp_pool_fill_mode(pr->pool, &pr->fill);
	return err;
}

static void run_close(struct pool_run *pr)
{
	for (int k = 0; k < 2; k++)
		if (pr->mod[k])
			UFPI_IGNORE(ufp_module_drop(pr->mod[k]));
	if (pr->pool) {
		UFPI_IGNORE(ufp_pool_quiesce(pr->pool));
		UFPI_IGNORE(ufp_pool_destroy(pr->pool));
	}
}

struct touch_result {
	double ns;	    /* touch loop */
	double cpu;	    /* process CPU time during the loop */
	uint64_t faults;    /* handler faults during the loop */
	uint64_t populated; /* pages copied + zeroed + continued */
};

static uint64_t populated(const ufp_stats *s)
{
	return s->pages_copied + s->pages_zeroed + s->pages_continued;
}

/* alloc, read one byte of each page in order[0..n), free. With resid set,
 * also read the residency with the memory live and after the free. */
static int touch_once(struct work *w, struct pool_run *pr,
		      const uint32_t *order, size_t n, struct touch_result *res,
		      struct ufpb_resid resid[2])
{
	ufp_memory *mem;
	ufp_stats s0 = {.size = sizeof(s0)}, s1 = s0;
	uint64_t sum = 0, want = 0;
	int err = ufp_memory_alloc(pr->pool, pr->mod[pr->next++ & 1], 0, &mem);
	if (err)
		return err;
	const volatile unsigned char *base = ufp_memory_base(mem);
	const size_t page = w->page;

	err = ufp_pool_stats(pr->pool, &s0);
	uint64_t c0 = ufpb_cpu_ns(), t0 = ufpb_now_ns();
	for (size_t i = 0; i < n; i++)
		sum += base[(size_t)order[i] * page];
	uint64_t t1 = ufpb_now_ns(), c1 = ufpb_cpu_ns();
	if (!err)
		err = ufp_pool_stats(pr->pool, &s1);
	if (!err && resid)
		err = ufpb_resid_read(pr->pool, &resid[0]);
	int e2 = ufp_memory_free(mem);
	if (!err && !e2 && resid)
		err = ufpb_resid_read(pr->pool, &resid[1]);
	if (err || e2)
		return err ? err : e2;

	if (n == w->npages)
		want = w->byte_sum;
	else
		for (size_t i = 0; i < n; i++)
			want += page_byte(order[i]);
	if (sum != want)
		return -EIO; /* a wrong byte: not a benchmark any more */
	res->ns = (double)(t1 - t0);
	res->cpu = (double)(c1 - c0);
	res->faults = s1.faults - s0.faults;
	res->populated = populated(&s1) - populated(&s0);
	/* cold means the handler served it: at least one fault and at least
	 * one page populated per page read */
	if (!res->faults || res->populated < n)
		return -EALREADY;
	return 0;
}

struct row {
	const char *order;
	double med, p99, cpu_med, faults_pp, pop_pt;
	int reps;
	ufp_fill_mode fill;	      /* what the pool ran */
	struct ufpb_resid live, idle; /* after the timed reps */
	int err;		      /* -ENOTSUP: fill mode unavailable */
};

/* Fewer reps for a row that would blow the run's time budget (small
 * windows on a slow or busy machine), never below 3; reported. */
static int row_reps(const struct work *w, double warm_ns)
{
	int reps = w->reps;
	if (warm_ns * 2 * reps > ROW_BUDGET_NS) {
		reps = (int)(ROW_BUDGET_NS / (warm_ns * 2));
		if (reps < 3)
			reps = 3;
		if (reps > w->reps)
			reps = w->reps;
	}
	return reps;
}

static int measure_order(struct work *w, struct pool_run *pr,
			 const uint32_t *order, int reps, double *cpus,
			 struct row *row, int pair)
{
	struct touch_result tr;
	uint64_t faults = 0, pop = 0;
	int err = 0;
	for (int r = 0; r < reps && !err; r++) {
		err = touch_once(w, pr, order, w->npages, &tr, NULL);
		if (!err && pair)
			err = memfd_once(w, w->memfd_ns);
		w->ns[r] = tr.ns / (double)w->npages;
		cpus[r] = tr.cpu / (double)w->npages;
		faults += tr.faults;
		pop += tr.populated;
	}
	if (err)
		return err;
	row->order = order == w->seq ? "sequential" : "random";
	row->reps = reps;
	row->fill = pr->fill;
	row->med = ufpb_median(w->ns, (size_t)reps);
	row->p99 = ufpb_percentile(w->ns, (size_t)reps, 99);
	row->cpu_med = ufpb_median(cpus, (size_t)reps);
	row->faults_pp = (double)faults / ((double)w->npages * reps);
	row->pop_pt = (double)pop / ((double)w->npages * reps);
	return 0;
}

static int measure_setting(struct work *w, const struct setting *st,
			   struct row *seq, struct row *rnd, int pair)
{
	struct pool_run pr = {0};
	struct touch_result tr;
	struct ufpb_resid base, resid[2];
	double *pops = calloc((size_t)w->reps, sizeof(*pops));
	double *cpus = calloc((size_t)w->reps, sizeof(*cpus));
	int err = pops && cpus ? ufpb_resid_read(NULL, &base) : -ENOMEM;
	if (!err)
		err = run_open(w, st, &pr);
	if (err)
		goto out;
	w->dirty = pr.dirty;

	/* warm-up: the handler thread, the image pages, the page tables of
	 * this process; not counted */
	err = touch_once(w, &pr, w->seq, w->npages, &tr, NULL);
	int reps = err ? 0 : row_reps(w, tr.ns);
	if (!err)
		err = measure_order(w, &pr, w->seq, reps, cpus, seq, pair);
	if (!err)
		err = measure_order(w, &pr, w->perm, reps, cpus, rnd, 0);

	/* population overhead: a random 10% subset, a fresh one per rep */
	for (int r = 0; r < reps && !err; r++) {
		ufpb_shuffle(w->sub, w->npages, w->seed + 1000 + (uint64_t)r);
		err = touch_once(w, &pr, w->sub, w->nsub, &tr, NULL);
		pops[r] = (double)tr.populated / (double)w->nsub;
	}
	if (!err)
		rnd->pop_pt = ufpb_median(pops, (size_t)reps);
	/* the residency of one more sequential touch, live and freed */
	if (!err)
		err = touch_once(w, &pr, w->seq, w->npages, &tr, resid);
	if (!err) {
		ufpb_resid_sub(&seq->live, &resid[0], &base);
		ufpb_resid_sub(&seq->idle, &resid[1], &base);
	}
out:
	free(pops);
	free(cpus);
	run_close(&pr);
	return err;
}

/* Cumulative µs some task waited for a CPU (/proc/pressure/cpu), or -1.
 * The handler answers each fault only once it is scheduled: on a busy
 * machine every fault round trip pays a scheduling delay, so the run
 * reports how contended the CPUs were while it ran. */
static double cpu_stall_us(void)
{
	FILE *f = fopen("/proc/pressure/cpu", "re");
	unsigned long long total;
	double r = -1;
	if (!f)
		return -1;
	if (fscanf(f, "some avg10=%*f avg60=%*f avg300=%*f total=%llu",
		   &total) == 1)
		r = (double)total;
	fclose(f);
	return r;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;
	*v = strtoull(s, &end, 10);
	return *s && !*end ? 0 : -1;
}

/* ---- output -------------------------------------------------------------- */

/* What the run measured besides the rows. */
struct context {
	const struct ufpb_floor *fl;
	double rtt;	  /* thread wake-up round trip, ns */
	double memfd_ns;  /* private memfd mapping, sequential, per page */
	double stall_pct; /* CPU pressure over the run, -1 unknown */
	double run_s;
	uint64_t mib, seed;
};

/* What the run does and what each column means. */
static void explain(struct ufpb *b, const struct work *w,
		    const struct context *cx)
{
	ufpb_say(
		b,
		"fault: cold first touch of a %llu MiB image (%zu pages, "
		"every page non-zero) served by the\n"
		"  userfaultfd handler. Each rep: alloc, read one byte per "
		"page (sequential, or shuffled\n"
		"  with seed %llu), free; only the read loop is timed. One "
		"fresh one-slot pool per row,\n"
		"  UFFD backend, ufp_config_init defaults but the window "
		"and fill; dirty tracking %s.\n"
		"  Every rep is cold: two modules with the same image take "
		"turns in the slot, and the\n"
		"  fault counters must show it.\n"
		"  floor      one bulk UFFDIO_COPY of %zu MiB into a fresh "
		"registered range (the ioctl\n"
		"             only), measured once for the whole run\n"
		"  memfd      the same sequential read through a fresh "
		"MAP_PRIVATE mapping of the image's\n"
		"             sealed memfd: the kernel's copy-on-write "
		"faults (Wasmtime's cold touch)\n"
		"  fill       how the handler installed image pages (AUTO "
		"resolved): MINOR maps the\n"
		"             page cache (UFFDIO_CONTINUE), COPY makes "
		"private copies (UFFDIO_COPY)\n"
		"  ns/pg p99  wall time per page touched, median and p99 "
		"over `reps` (up to %d; fewer\n"
		"             where a row would take over %.0f s); with so few "
		"reps the p99 is the slowest\n"
		"  x floor    ns/pg over the floor: the figure of the target\n"
		"  cpu x fl   CPU time of the whole process (toucher + "
		"handler) per page over the floor's:\n"
		"             the work done, without the time spent waiting "
		"for wake-ups\n"
		"  faults/pg  handler faults per page touched\n"
		"  pop/touch  pages populated per page touched; random rows: "
		"touching only a random %d%%\n"
		"             of the pages (median over `reps` subsets)\n",
		(unsigned long long)cx->mib, w->npages,
		(unsigned long long)cx->seed,
		w->dirty ? "on where the kernel has it" : "off",
		cx->fl->bytes >> 20, w->reps, ROW_BUDGET_NS / 1e9,
		SUBSET_PERCENT);
}

/* The costs every cold touch pays that the rows compare against: the
 * floor, the memfd touch, first reads, a wake-up, the CPU pressure. */
static void print_costs(struct ufpb *b, const struct work *w,
			const struct context *cx)
{
	ufpb_say(b,
		 "\nfloor: %.0f ns/page wall, %.0f ns/page CPU (median of "
		 "%zu); memfd: %.0f ns/page\n",
		 cx->fl->copy_ns, cx->fl->copy_cpu, cx->fl->samples,
		 cx->memfd_ns);
	ufpb_say(b,
		 "costs on this machine that the floor leaves out and every "
		 "cold touch pays:\n"
		 "  first read of a page already present after the copy: "
		 "%.0f ns/page sequential,\n"
		 "  %.0f random; a wake-up round trip between two threads "
		 "(eventfd ping-pong), which\n"
		 "  every fault makes: %.0f ns\n",
		 cx->fl->read_seq, cx->fl->read_rnd, cx->rtt);
	if (cx->stall_pct >= 0)
		ufpb_say(b,
			 "cpu pressure: some task waited for a CPU %.0f%% of "
			 "the %.1f s run%s\n",
			 cx->stall_pct, cx->run_s,
			 cx->stall_pct > 10
				 ? " - other work was running:\n  wall times "
				   "include the waits of both threads for a "
				   "CPU"
				 : "");
	ufpb_say(b, "\n");
	ufpb_emit(b, "fault",
		  "\"order\": \"bulk_copy_floor\", \"ns_per_page_median\": "
		  "%.1f, \"cpu_ns_per_page_median\": %.1f, \"floor_bytes\": "
		  "%zu, \"image_bytes\": %zu, \"reps\": %zu, "
		  "\"first_read_seq_ns_per_page\": %.1f, "
		  "\"first_read_random_ns_per_page\": %.1f, "
		  "\"wake_round_trip_ns\": %.0f, "
		  "\"cpu_some_stall_pct\": %.1f, \"run_seconds\": %.2f",
		  cx->fl->copy_ns, cx->fl->copy_cpu, cx->fl->bytes, w->bytes,
		  cx->fl->samples, cx->fl->read_seq, cx->fl->read_rnd, cx->rtt,
		  cx->stall_pct, cx->run_s);
	ufpb_emit(b, "fault",
		  "\"order\": \"memfd_private_sequential\", "
		  "\"ns_per_page_median\": %.1f, \"image_bytes\": %zu, "
		  "\"reps\": %d",
		  cx->memfd_ns, w->bytes, w->nmemfd);
}

static void print_intro(struct ufpb *b, const struct work *w,
			const struct context *cx)
{
	explain(b, w, cx);
	print_costs(b, w, cx);
}

static void window_of(size_t k, uint64_t v[3])
{
	ufp_config def;
	ufp_config_init(&def);
	const struct setting *st = &settings[k];
	v[0] = st->win ? st->win : def.fault_around_bytes;
	v[1] = st->win ? st->max : def.fault_around_max_bytes;
	v[2] = st->win ? st->min : def.fault_around_min_bytes;
}

static void print_row(struct ufpb *b, const struct work *w,
		      const struct context *cx, size_t k, const struct row *r)
{
	const struct setting *st = &settings[k];
	double floor_ns = cx->fl->copy_ns, floor_cpu = cx->fl->copy_cpu;
	uint64_t win[3];
	char a[32], c[32], m[32];

	window_of(k, win);
	if (r->err) {
		ufpb_say(b, "%-10s %7s %7s %7s %-5s  %s\n", r->order,
			 human(win[0], a, sizeof(a)),
			 human(win[1], c, sizeof(c)),
			 human(win[2], m, sizeof(m)), ufpb_fill_name(st->fill),
			 ufp_strerror(r->err));
		return;
	}
	ufpb_say(b,
		 "%-10s %7s %7s %7s %-5s %8.0f %8.0f %7.2f %8.2f %9.4f %9.2f "
		 "%4d%s%s%s\n",
		 r->order, human(win[0], a, sizeof(a)),
		 human(win[1], c, sizeof(c)), human(win[2], m, sizeof(m)),
		 ufpb_fill_name(r->fill), r->med, r->p99, r->med / floor_ns,
		 r->cpu_med / floor_cpu, r->faults_pp, r->pop_pt, r->reps,
		 *st->note ? "  (" : "", st->note, *st->note ? ")" : "");
	ufpb_emit(b, "fault",
		  "\"order\": \"%s\", \"window\": %llu, "
		  "\"window_max\": %llu, \"window_min\": %llu, "
		  "\"default\": %s, \"fill_asked\": \"%s\", \"fill\": \"%s\", "
		  "\"ns_per_page_median\": %.1f, \"ns_per_page_p99\": %.1f, "
		  "\"floor_ns_per_page\": %.1f, \"ratio\": %.3f, "
		  "\"memfd_ratio\": %.3f, \"cpu_ns_per_page_median\": %.1f, "
		  "\"floor_cpu_ns_per_page\": %.1f, \"cpu_ratio\": %.3f, "
		  "\"faults_per_page\": %.5f, \"populated_per_touched\": %.3f, "
		  "\"populated_over\": \"%s\", \"reps\": %d, "
		  "\"image_bytes\": %zu, \"seed\": %llu, "
		  "\"dirty_tracking\": %s",
		  r->order, (unsigned long long)win[0],
		  (unsigned long long)win[1], (unsigned long long)win[2],
		  k == DEFAULT_ROW ? "true" : "false", ufpb_fill_name(st->fill),
		  ufpb_fill_name(r->fill), r->med, r->p99, floor_ns,
		  r->med / floor_ns, r->med / cx->memfd_ns, r->cpu_med,
		  floor_cpu, r->cpu_med / floor_cpu, r->faults_pp, r->pop_pt,
		  strcmp(r->order, "random") ? "full touch"
					     : "random 10% subset",
		  r->reps, w->bytes, (unsigned long long)cx->seed,
		  w->dirty ? "true" : "false");
}

static void print_rows(struct ufpb *b, const struct work *w,
		       const struct context *cx, struct row rows[2][NSETTINGS])
{
	ufpb_say(b, "%-10s %7s %7s %7s %-5s %8s %8s %7s %8s %9s %9s %4s\n",
		 "order", "window", "max", "min", "fill", "ns/pg", "p99",
		 "x floor", "cpu x fl", "faults/pg", "pop/touch", "reps");
	for (int o = 0; o < 2; o++)
		for (size_t k = 0; k < NSETTINGS; k++)
			print_row(b, w, cx, k, &rows[o][k]);

	char buf[160], js[512];
	ufpb_say(b, "\nresidency after the timed reps, one more sequential "
		    "touch: live, then freed\n");
	ufpb_resid_explain(b);
	ufpb_say(b, "%-7s %7s %-5s %-5s%s\n", "window", "max", "fill", "when",
		 ufpb_resid_head());
	for (size_t k = 0; k < NSETTINGS; k++) {
		const struct row *r = &rows[0][k];
		uint64_t win[3];
		char a[32], c[32];
		if (r->err)
			continue;
		window_of(k, win);
		for (int i = 0; i < 2; i++) {
			ufpb_say(b, "%7s %7s %-5s %-5s%s%s%s%s\n",
				 human(win[0], a, sizeof(a)),
				 human(win[1], c, sizeof(c)),
				 ufpb_fill_name(r->fill), i ? "freed" : "live",
				 ufpb_resid_cols(i ? &r->idle : &r->live, buf,
						 sizeof(buf)),
				 *settings[k].note ? "  (" : "",
				 settings[k].note,
				 *settings[k].note ? ")" : "");
			/* JSON mode prints no table: the same order */
			ufpb_emit(b, "fault",
				  "\"residency\": true, \"window\": %llu, "
				  "\"window_max\": %llu, \"fill\": \"%s\", %s",
				  (unsigned long long)win[0],
				  (unsigned long long)win[1],
				  ufpb_fill_name(r->fill),
				  ufpb_resid_json(i ? &r->idle : &r->live,
						  i ? "freed" : "live", js,
						  sizeof(js)));
		}
	}
}

static void print_targets(struct ufpb *b, const struct context *cx,
			  struct row rows[2][NSETTINGS])
{
	const struct row *ds = &rows[0][DEFAULT_ROW],
			 *dr = &rows[1][DEFAULT_ROW], *mn = &rows[0][MINOR_ROW];
	double floor_ns = cx->fl->copy_ns;
	char what[96];

	ufpb_say(b, "\ntargets at the default window (64 KiB, growing to 1 "
		    "MiB, shrinking to 16 KiB), medians of this run:\n");
	snprintf(what, sizeof(what), "sequential, fill %s, x the floor",
		 ufpb_fill_name(ds->fill));
	ufpb_verdict(b, "fault", "sequential_ratio_default", what,
		     ds->med / floor_ns, SEQ_TARGET, 1);
	/* What no lazy scheme can avoid here: the floor's copy plus the
	 * first user access to each page it installed. */
	double lazy_floor = floor_ns + cx->fl->read_seq;
	ufpb_say(b,
		 "    (CPU-time ratio %.2fx; against the floor plus the first "
		 "read of each page, %.0f ns/page,\n"
		 "     the least any population on first touch costs here: "
		 "%.2fx)\n",
		 ds->cpu_med / cx->fl->copy_cpu, lazy_floor,
		 ds->med / lazy_floor);
	ufpb_verdict(b, "fault", "random_populated_per_touched_default",
		     "random 10%: pages populated per page touched", dr->pop_pt,
		     POP_TARGET, 1);
	if (mn->err) {
		ufpb_say(b,
			 "  target: sequential fill=MINOR x memfd: not "
			 "measured (%s)\n",
			 ufp_strerror(mn->err));
		return;
	}
	snprintf(what, sizeof(what),
		 "sequential, fill=MINOR%s, x private memfd",
		 mn->fill == UFP_FILL_MINOR ? "" : " (ran COPY)");
	ufpb_verdict(b, "fault", "sequential_minor_vs_memfd", what,
		     mn->med / cx->memfd_ns, MEMFD_TARGET, 1);
}

/* ---- the scenario -------------------------------------------------------- */

static int parse(struct ufpb *b, int argc, char **argv, uint64_t *mib,
		 uint64_t *seed)
{
	for (int i = 0; i < argc; i++) {
		if (ufpb_common_arg(b, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "--mib") && i + 1 < argc &&
		    !parse_u64(argv[i + 1], mib) && *mib >= 4 && *mib <= 4096 &&
		    *mib % 2 == 0) {
			i++;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc &&
			   !parse_u64(argv[i + 1], seed)) {
			i++;
		} else {
			fprintf(stderr,
				"usage: ufp-bench fault [--json] [--quick] "
				"[--reps N] [--mib N (even, 4..4096)] "
				"[--seed S]\n");
			return 2;
		}
	}
	return 0;
}

static int work_init(struct work *w, struct ufpb *b, uint64_t mib,
		     uint64_t seed)
{
	w->b = b;
	w->memfd = -1;
	w->page = ufpi_page_size();
	w->reps = b->quick && b->reps > 3 ? 3 : b->reps;
	w->seed = seed;
	w->bytes = (size_t)mib << 20;
	w->npages = w->bytes / w->page;
	w->nsub = w->npages * SUBSET_PERCENT / 100;
	w->seq = malloc(w->npages * sizeof(uint32_t));
	w->perm = malloc(w->npages * sizeof(uint32_t));
	w->sub = malloc(w->npages * sizeof(uint32_t));
	w->ns = calloc((size_t)w->reps, sizeof(double));
	w->memfd_ns = calloc((size_t)w->reps, sizeof(double));
	if (ufpi_os_map_anon(w->bytes, (void **)&w->src))
		w->src = NULL;
	if (!w->src || !w->seq || !w->perm || !w->sub || !w->ns || !w->memfd_ns)
		return -ENOMEM;
	for (size_t p = 0; p < w->npages; p++) {
		memset(w->src + p * w->page, page_byte(p), w->page);
		w->byte_sum += page_byte(p);
		w->seq[p] = (uint32_t)p;
	}
	ufpb_shuffle(w->perm, w->npages, seed);
	return 0;
}

static void work_fini(struct work *w)
{
	if (w->src)
		ufpi_os_unmap(w->src, w->bytes);
	free(w->seq);
	free(w->perm);
	free(w->sub);
	free(w->ns);
	free(w->memfd_ns);
	if (w->memfd >= 0)
		ufpi_os_close(w->memfd);
}

static int measure_rows(struct work *w, struct row rows[2][NSETTINGS])
{
	for (size_t k = 0; k < NSETTINGS; k++) {
		int err = measure_setting(w, &settings[k], &rows[0][k],
					  &rows[1][k], k == MINOR_ROW);
		rows[0][k].err = rows[1][k].err = 0;
		if (err == -ENOTSUP && settings[k].fill != UFP_FILL_AUTO) {
			/* the kernel lacks this fill mode: a row, not a
			 * failure */
			rows[0][k] = rows[1][k] = (struct row){.err = err};
			rows[0][k].order = "sequential";
			rows[1][k].order = "random";
			continue;
		}
		if (err) {
			char a[32];
			fprintf(stderr, "ufp-bench fault: window %s: %s%s\n",
				settings[k].win
					? human(settings[k].win, a, sizeof(a))
					: "default",
				err == -EALREADY ? "a rep was not cold"
						 : ufp_strerror(err),
				err == -EIO ? " (wrong byte read)" : "");
			return err;
		}
	}
	return 0;
}

int ufpb_fault(struct ufpb *b, int argc, char **argv)
{
	uint64_t mib = 0, seed = 1;
	struct work w = {0};
	struct row rows[2][NSETTINGS];
	struct context cx = {0};
	int rc = 0;

	if (parse(b, argc, argv, &mib, &seed))
		return 2;
	cx.mib = mib ? mib : b->quick ? 16 : 64;
	cx.seed = seed;
	if (work_init(&w, b, cx.mib, seed)) {
		fprintf(stderr, "ufp-bench fault: out of memory\n");
		rc = 1;
		goto out;
	}
	double stall0 = cpu_stall_us();
	uint64_t run0 = ufpb_now_ns();
	double rtt0 = wake_rtt_ns(1000);
	cx.fl = ufpb_floor(b);
	if (!cx.fl) {
		rc = 1;
		goto out;
	}
	int err = memfd_open(&w);
	if (!err)
		err = memfd_once(&w, NULL); /* warm-up */
	if (err) {
		fprintf(stderr, "ufp-bench fault: memfd: %s\n",
			ufp_strerror(err));
		rc = 1;
		goto out;
	}
	if (measure_rows(&w, rows)) {
		rc = 1;
		goto out;
	}
	/* without a MINOR row to pair with, the baseline alone */
	for (int r = 0; w.nmemfd == 0 && r < w.reps && !err; r++)
		err = memfd_once(&w, w.memfd_ns);
	cx.memfd_ns = ufpb_median(w.memfd_ns, (size_t)w.nmemfd);
	double rtt1 = wake_rtt_ns(1000);
	cx.rtt = rtt0 < 0 || rtt1 < 0 ? -1 : (rtt0 + rtt1) / 2;
	double stall1 = cpu_stall_us();
	cx.run_s = (double)(ufpb_now_ns() - run0) / 1e9;
	cx.stall_pct = stall0 < 0 || stall1 < 0
			       ? -1
			       : (stall1 - stall0) / (cx.run_s * 1e6) * 100;

	print_intro(b, &w, &cx);
	print_rows(b, &w, &cx, rows);
	print_targets(b, &cx, rows);
out:
	work_fini(&w);
	return rc;
}
