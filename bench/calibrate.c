/* SPDX-License-Identifier: MIT */
/*
 * calibrate.c - `ufp-bench calibrate`: what the page-table events the
 * library's choices trade against cost on this machine.
 *
 *   ufp-bench calibrate [--mib N]
 *
 * Not a target: the figures that explain the others. On bare metal a
 * write-protect fault costs about a microsecond and a TLB flush a few; on
 * a VM that virtualizes page tables in software each is a VM exit, and the
 * ranking of "restore by memcpy" against "track writes" flips. Every row
 * is the median over `reps` rounds, each over N MiB (default 16; 4 with
 * --quick) or 1 MiB where the row says so:
 *
 *   syscall              getppid(), the cheapest round trip to the kernel
 *   anon first write     first write to each page of a fresh anonymous
 *                        mapping (a page fault that allocates a page)
 *   first read, copied   first read of each page a pool's handler
 *                        installed, after the fault that installed it
 *                        (read twice: the second pass costs nothing, the
 *                        difference is the first access)
 *   wp_async write       first write to each page installed
 *                        write-protected (dirty tracking on), minus a
 *                        second write to the same pages
 *   UFFDIO_WRITEPROTECT  re-protect 1 MiB of written pages (one ioctl,
 *                        one TLB flush)
 *   MADV_DONTNEED        release 1 MiB of populated anonymous memory
 *   PAGEMAP_SCAN         one walk over 1 MiB of present pages (median
 *                        of 8 after a first one)
 *   memcpy               copy 1 MiB, cache-warm (median of 8 after a
 *                        first one)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

#define MIB ((size_t)1 << 20)

struct samples {
	double *v;
	size_t n;
};

static double per(uint64_t t0, uint64_t t1, size_t n)
{
	return (double)(t1 - t0) / (double)n;
}

/* ---- rows without a pool ---------------------------------------------- */

static double syscall_ns(void)
{
	const int n = 20000;
	uint64_t t0 = ufpb_now_ns();
	for (int k = 0; k < n; k++)
		(void)getppid();
	return per(t0, ufpb_now_ns(), (size_t)n);
}

static double anon_write_ns(size_t bytes, size_t page)
{
	unsigned char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	uint64_t t0 = ufpb_now_ns();
	for (size_t o = 0; o < bytes; o += page)
		((volatile unsigned char *)m)[o] = 1;
	double ns = per(t0, ufpb_now_ns(), bytes / page);
	munmap(m, bytes);
	return ns;
}

static double dontneed_ns(size_t page)
{
	unsigned char *m = mmap(NULL, MIB, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	for (size_t o = 0; o < MIB; o += page)
		m[o] = 1;
	uint64_t t0 = ufpb_now_ns();
	int rc = madvise(m, MIB, MADV_DONTNEED);
	double ns = rc ? -1 : (double)(ufpb_now_ns() - t0);
	munmap(m, MIB);
	return ns;
}

static double memcpy_ns(void)
{
	unsigned char *a = malloc(MIB), *c = malloc(MIB);
	double best = -1;
	if (!a || !c)
		goto out;
	memset(a, 1, MIB);
	memset(c, 2, MIB);
	double t[9];
	for (int k = 0; k < 9; k++) {
		uint64_t t0 = ufpb_now_ns();
		memcpy(c, a, MIB);
		__asm__ volatile("" ::"r"(c) : "memory");
		t[k] = (double)(ufpb_now_ns() - t0);
	}
	best = ufpb_median(t + 1, 8); /* the first copy warms up */
out:
	free(a);
	free(c);
	return best;
}

/* ---- rows through a pool ------------------------------------------------ */

struct pooled {
	double first_read, wp_write, writeprotect, scan;
	int dirty; /* dirty tracking on */
};

static int no_op(void *arg, void *addr, size_t len, unsigned flags)
{
	(void)arg;
	(void)addr;
	(void)len;
	(void)flags;
	return 0;
}

/* A one-slot copy-mode pool of `bytes` with a module whose image covers
 * it, and one memory of it. 0 or -errno (what was made is in *p, *m). */
static int open_round(size_t bytes, const unsigned char *img, ufp_pool **p,
		      ufp_module **m, ufp_memory **mem)
{
	ufp_config c;
	ufp_config_init(&c);
	c.slots = 1;
	c.max_memory_bytes = bytes;
	c.guard_bytes = 64 << 10;
	c.backend = UFP_BACKEND_UFFD;
	/* the rows are copy mode's: a handler-copied page, a WP_ASYNC write */
	c.fill_mode = UFP_FILL_COPY;
	c.fault_around_bytes = c.fault_around_max_bytes =
		c.fault_around_min_bytes = MIB;
	int err = ufp_pool_create(&c, p);
	if (err)
		return err;
	ufp_segment seg = {0, img, bytes};
	err = ufp_module_create(*p, &seg, 1, bytes, m);
	if (!err)
		err = ufp_memory_alloc(*p, *m, 0, mem);
	return err;
}

/* The first read of each installed page and the first write to each
 * (WP_ASYNC-protected) page, each less a second pass over the same pages. */
static void time_touches(volatile unsigned char *v, size_t bytes, size_t page,
			 struct pooled *r)
{
	unsigned sum = 0;
	/* installs every page: the faults themselves are `fault`'s row */
	for (size_t o = 0; o < bytes; o += MIB)
		sum += v[o];
	uint64_t t0 = ufpb_now_ns();
	for (size_t o = 0; o < bytes; o += page)
		sum += v[o + 1];
	uint64_t t1 = ufpb_now_ns();
	for (size_t o = 0; o < bytes; o += page)
		sum += v[o + 2];
	uint64_t t2 = ufpb_now_ns();
	r->first_read = per(t0, t1, bytes / page) - per(t1, t2, bytes / page);

	t0 = ufpb_now_ns();
	for (size_t o = 0; o < bytes; o += page)
		v[o + 3] = (unsigned char)sum;
	t1 = ufpb_now_ns();
	for (size_t o = 0; o < bytes; o += page)
		v[o + 4] = (unsigned char)sum;
	t2 = ufpb_now_ns();
	r->wp_write = per(t0, t1, bytes / page) - per(t1, t2, bytes / page);
}

/* Re-protecting 1 MiB written (dirty tracking only) and scanning it; -1
 * where the pool has no such thing. 0 or -errno. */
static int time_protect_scan(ufp_pool *p, volatile unsigned char *v,
			     struct pooled *r)
{
	int err = 0;
	r->writeprotect = -1;
	if (r->dirty) {
		uint64_t t0 = ufpb_now_ns();
		err = ufpi_uffd_writeprotect(p->uffd[0], (void *)v, MIB, true);
		uint64_t t1 = ufpb_now_ns();
		if (err)
			return err;
		r->writeprotect = (double)(t1 - t0);
	}
	r->scan = -1;
	if (p->pagemap_fd >= 0) {
		double t[9];
		for (int k = 0; k < 9 && !err; k++) {
			uint64_t t0 = ufpb_now_ns();
			err = ufpi_dirty_scan(p->pagemap_fd, (void *)v, MIB,
					      false, no_op, NULL);
			t[k] = (double)(ufpb_now_ns() - t0);
		}
		if (err)
			return err;
		r->scan = ufpb_median(t + 1, 8); /* the first walk warms up */
	}
	return 0;
}

/* One round: a fresh pool, a module whose image covers `bytes`, one
 * memory; reads, writes, re-protection and a scan, each timed apart. */
static int pooled_round(size_t bytes, size_t page, const unsigned char *img,
			struct pooled *r)
{
	ufp_pool *p = NULL;
	ufp_module *m = NULL;
	ufp_memory *mem = NULL;
	int err = open_round(bytes, img, &p, &m, &mem);
	if (!err)
		err = ufp_pool_info(p, NULL, NULL, &r->dirty);
	if (!err) {
		volatile unsigned char *v = ufp_memory_base(mem);
		time_touches(v, bytes, page, r);
		err = time_protect_scan(p, v, r);
	}
	if (mem)
		UFPI_IGNORE(ufp_memory_free(mem));
	ufpb_pool_close(p, &m, 1);
	return err;
}

/* ---- the scenario --------------------------------------------------------- */

enum {
	SYSCALL,
	ANON,
	FIRST_READ,
	WP_WRITE,
	WRITEPROTECT,
	DONTNEED,
	SCAN,
	MEMCPY,
	NROWS
};

static const struct {
	const char *name, *unit, *json;
} rows[NROWS] = {
	{"syscall (getppid)", "ns", "syscall_ns"},
	{"anon first write, per page", "ns", "anon_first_write_ns_per_page"},
	{"first read of a page the handler copied", "ns",
	 "first_read_copied_ns_per_page"},
	{"write to a WP_ASYNC-protected page", "ns",
	 "wp_async_write_ns_per_page"},
	{"UFFDIO_WRITEPROTECT of 1 MiB written", "ns", "writeprotect_1mib_ns"},
	{"MADV_DONTNEED of 1 MiB populated", "ns", "dontneed_1mib_ns"},
	{"PAGEMAP_SCAN of 1 MiB present", "ns", "pagemap_scan_1mib_ns"},
	{"memcpy of 1 MiB, cache-warm", "ns", "memcpy_1mib_ns"},
};

static int parse(struct ufpb *b, int argc, char **argv, size_t *mib)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			b->json = 1;
		else if (!strcmp(argv[i], "--quick")) {
			b->quick = 1;
			*mib = 4;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			*mib = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr,
				"usage: ufp-bench calibrate [--mib N]\n");
			return 2;
		}
	}
	if (!*mib)
		*mib = 1;
	return 0;
}

/* `reps` rounds of every row into v[row][round]; *dirty whether the pool
 * tracked dirty pages. 0 or -errno of a pool round. */
static int measure(size_t bytes, size_t page, const unsigned char *img,
		   int reps, double *v[NROWS], int *dirty)
{
	for (int r = 0; r < reps; r++) {
		struct pooled pr;
		int err = pooled_round(bytes, page, img, &pr);
		if (err)
			return err;
		*dirty = pr.dirty;
		v[SYSCALL][r] = syscall_ns();
		v[ANON][r] = anon_write_ns(bytes, page);
		v[FIRST_READ][r] = pr.first_read;
		v[WP_WRITE][r] = pr.wp_write;
		v[WRITEPROTECT][r] = pr.writeprotect;
		v[DONTNEED][r] = dontneed_ns(page);
		v[SCAN][r] = pr.scan;
		v[MEMCPY][r] = memcpy_ns();
	}
	return 0;
}

static void print_rows(struct ufpb *b, double *v[NROWS], int reps, size_t mib,
		       int dirty)
{
	ufpb_say(b,
		 "calibrate: what page-table events cost on this machine "
		 "(medians of %d rounds;\n"
		 "  per-page rows over %zu MiB). Not targets: the costs "
		 "behind them.\n\n",
		 reps, mib);
	ufpb_say(b, "%-42s %12s\n", "event", "ns");
	for (int k = 0; k < NROWS; k++) {
		bool na = (k == WP_WRITE || k == WRITEPROTECT) && !dirty;
		double med = ufpb_median(v[k], (size_t)reps);
		if (na || med < 0) {
			ufpb_say(b, "%-42s %12s\n", rows[k].name,
				 na ? "n/a (no dirty tracking)" : "failed");
			continue;
		}
		ufpb_say(b, "%-42s %12.0f\n", rows[k].name, med);
		ufpb_emit(b, "calibrate", "\"%s\": %.1f, \"reps\": %d",
			  rows[k].json, med, reps);
	}
}

int ufpb_calibrate(struct ufpb *b, int argc, char **argv)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t mib = b->quick ? 4 : 16;
	int reps = b->reps < 3 ? 3 : b->reps;
	double *v[NROWS] = {0};
	int rc = parse(b, argc, argv, &mib), dirty = 0;
	unsigned char *img = NULL;

	if (rc)
		return rc;
	const size_t bytes = mib * MIB;
	bool oom = !(img = malloc(bytes));
	for (int k = 0; k < NROWS; k++)
		oom |= !(v[k] = calloc((size_t)reps, sizeof(double)));
	if (oom) {
		fprintf(stderr, "ufp-bench calibrate: out of memory\n");
		rc = 1;
		goto out;
	}
	for (size_t o = 0; o < bytes; o++)
		img[o] = (unsigned char)(o * 131 + 7) | 1;
	int err = measure(bytes, page, img, reps, v, &dirty);
	if (err) {
		fprintf(stderr, "ufp-bench calibrate: pool round: %s\n",
			ufp_strerror(err));
		rc = 1;
		goto out;
	}
	print_rows(b, v, reps, mib, dirty);
out:
	for (int k = 0; k < NROWS; k++)
		free(v[k]);
	free(img);
	return rc;
}
