/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared pieces of ufp-bench: scenario entry points, timing,
 * statistics, output (table or JSON lines), verdicts, the settings compared
 * like with like and their pool setup, residency, and the one floor.
 *
 * Each scenario lives in its own bench/<name>.c and defines
 *   int ufpb_<name>(struct ufpb *b, int argc, char **argv);
 * main.c dispatches by name; scenarios are weak symbols there so the
 * harness links while a scenario is being written.
 */
#ifndef UFP_BENCH_H
#define UFP_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "uffdpool.h"

/* The bulk-copy floor (floor.c): what it costs the kernel to install
 * `bytes` with UFFDIO_COPY into a registered, untouched range, timing the
 * ioctl only; no fault path can beat it. Per page, medians. */
struct ufpb_floor {
	double copy_ns, copy_cpu;  /* the ioctl: wall and process CPU time */
	double read_seq, read_rnd; /* first read of each page it installed,
				      sequential and shuffled order: every
				      cold touch pays this too */
	size_t bytes;		   /* measured over this many bytes */
	size_t samples;
	int err; /* 0, or why there is no floor (-errno) */
};

struct ufpb {
	int json;  /* --json: one JSON object per line */
	int quick; /* --quick: fewer repetitions (smoke runs, CI) */
	int reps;  /* --reps N: repetitions for medians (default 5) */
	FILE *out; /* stdout */
	char kernel[128];
	int have_floor; /* floor measured (once per run: ufpb_floor) */
	struct ufpb_floor floor;
};

static inline uint64_t ufpb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (every thread: the toucher and the
 * library's handler), in ns. Unlike wall time it does not count the waits
 * for a CPU that other work on the machine causes. */
static inline uint64_t ufpb_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sort v[0..n) in place and return the median / the p-th percentile. */
double ufpb_median(double *v, size_t n);
double ufpb_percentile(double *v, size_t n, double p);

/* Samples that grow as a run goes: zero-initialised is empty; free(v). */
struct ufpb_vec {
	double *v;
	size_t n, cap;
};
/* Append x (aborts when out of memory: a benchmark has no way on). */
void ufpb_vec_push(struct ufpb_vec *s, double x);
/* The median of the samples (sorts them). */
double ufpb_vec_median(struct ufpb_vec *s);

/*
 * Emit one measurement in JSON mode (nothing in table mode): one object per
 * line with "scenario", the given pairs (a printf-style string of
 * `"key": value` pairs, without braces), "kernel" and "version".
 * Scenarios print their own table rows with ufpb_say.
 */
void ufpb_emit(struct ufpb *b, const char *scenario, const char *fields_fmt,
	       ...) __attribute__((format(printf, 3, 4)));
/* Print a line in table mode only (headings, explanations). */
void ufpb_say(struct ufpb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Options every scenario takes after its name: --json, --quick, --reps N.
 * Returns 1 and advances *i past a value if argv[*i] is one, else 0. */
int ufpb_common_arg(struct ufpb *b, int argc, char **argv, int *i);
/* A scenario's "NAME N" with N an integer >= min: 1 with *v = N and *i
 * advanced past N when argv[*i] is that, else 0 (nothing changed). */
int ufpb_int_arg(int argc, char **argv, int *i, const char *name, int min,
		 int *v);

/*
 * One verdict per target, computed in the run that prints it: a line
 * "  target: <what>  <value> (<at most|at least> <limit>)  met|MISSED" and a
 * JSON object {"target": ..., "value": ..., "limit": ..., "pass": ...}.
 * Returns whether it was met.
 */
int ufpb_verdict(struct ufpb *b, const char *scenario, const char *target,
		 const char *what, double value, double limit, int at_most);

/* ---- the floor (floor.c) ------------------------------------------------ */

/* The floor of this run: measured at the first call (UFPB_FLOOR_BYTES, 2 *
 * reps samples, half read back in each order), the same figure for every
 * scenario after that. NULL, with the reason on stderr, if userfaultfd
 * cannot be used. */
#define UFPB_FLOOR_BYTES (16u << 20)
const struct ufpb_floor *ufpb_floor(struct ufpb *b);

/* ---- residency (resid.c) ------------------------------------------------ */

/* The process's resident bytes by kind, and the pool's own split. Signed:
 * ufpb_resid_sub makes deltas against a baseline. */
struct ufpb_resid {
	int64_t pss, pss_anon, pss_shmem; /* /proc/self/smaps_rollup */
	int64_t rss_anon, rss_shmem;	  /* /proc/self/status */
	int64_t priv, shared;		  /* ufp_pool_resident_split */
};

/* Read now; pool may be NULL (priv and shared then 0). 0 or -errno. */
int ufpb_resid_read(ufp_pool *pool, struct ufpb_resid *out);
/* What a scenario does to a live memory, for ufpb_resid_cycle. */
typedef void (*ufpb_touch_fn)(unsigned char *base, const void *arg);
/* One more cycle after a scenario's timed ones, untimed: allocate a memory
 * of m, touch(base, arg), read the residency (*live), free the memory,
 * read it again (*idle); both as deltas against *base. 0 or -errno. */
int ufpb_resid_cycle(ufp_pool *pool, ufp_module *m, ufpb_touch_fn touch,
		     const void *arg, const struct ufpb_resid *base,
		     struct ufpb_resid *live, struct ufpb_resid *idle);
/* *d = *a - *base for the process's figures; the pool's are kept as read
 * (a pool's baseline is empty). */
void ufpb_resid_sub(struct ufpb_resid *d, const struct ufpb_resid *a,
		    const struct ufpb_resid *base);
/* Field-wise median of v[0..n) (v is not modified). */
void ufpb_resid_median(const struct ufpb_resid *v, size_t n,
		       struct ufpb_resid *out);
/* Table columns, in KiB: header (matching widths) and one row. */
const char *ufpb_resid_head(void);
const char *ufpb_resid_cols(const struct ufpb_resid *r, char *buf, size_t cap);
/* JSON pairs "<prefix>_pss": ..., "<prefix>_pool_private": ... (bytes). */
const char *ufpb_resid_json(const struct ufpb_resid *r, const char *prefix,
			    char *buf, size_t cap);
/* What the columns mean, for a scenario's explanation. */
void ufpb_resid_explain(struct ufpb *b);

/* ---- settings compared like with like (setup.c) ------------------------- */

struct ufpb_setting {
	const char *name;
	ufp_backend backend;
	ufp_fill_mode fill;	  /* UFFD only */
	ufp_dirty_tracking dirty; /* UFFD only */
	int keep_all;		  /* keep_resident_bytes = the whole memory */
	int keep_default;	  /* keep_resident_bytes left at its default
				     (UFP_KEEP_AUTO), else 0 or all */
	ufp_prefetch prefetch;	  /* UFP_PREFETCH_AUTO (0) unless forced */
};

/* The rows every comparing scenario shows (DESIGN.md §11): UFFD at the
 * defaults, UFFD fill=MINOR, UFFD fill=COPY, COW keep 0 (Wasmtime's
 * default), COW keep-all. Index with the UFPB_SET_* names. */
enum {
	UFPB_SET_UFFD_DEFAULT,
	UFPB_SET_UFFD_MINOR,
	UFPB_SET_UFFD_COPY,
	UFPB_SET_COW_KEEP0,
	UFPB_SET_COW_KEEPALL,
	UFPB_NSET
};
extern const struct ufpb_setting ufpb_settings[UFPB_NSET];

/* ufp_config_init, then the setting, `slots` slots of max_bytes, 64 KiB
 * guards, SYNC reclaim (no purge runs during a measurement). */
void ufpb_config(const struct ufpb_setting *st, uint32_t slots,
		 uint64_t max_bytes, ufp_config *c);
/* ufp_config_init, `slots` slots of max_bytes, 64 KiB guards,
 * REUSE_AFFINITY and keep_resident_bytes = max_bytes: affine slots that
 * keep what a module's memories populated (churn, purge); the rest at the
 * defaults. */
void ufpb_affine_config(uint32_t slots, uint64_t max_bytes, ufp_config *c);
/* Create the pool of ufpb_config; *fill gets the fill mode it resolved to
 * (ufp_pool_fill_mode; AUTO for COW and COPY). 0 or -errno. */
int ufpb_pool_open(const struct ufpb_setting *st, uint32_t slots,
		   uint64_t max_bytes, ufp_pool **pool, ufp_fill_mode *fill);
/* Drop the modules of m[0..n) that were created (NULL ones are skipped),
 * then destroy the pool if there is one: the end of every run. */
void ufpb_pool_close(ufp_pool *pool, ufp_module *const *m, size_t n);
/* "" when the pool runs what the setting asked for, else a note such as
 * " (ran COPY: MINOR not available)". */
const char *ufpb_fill_note(const struct ufpb_setting *st, ufp_fill_mode got);
const char *ufpb_backend_name(ufp_backend b);
const char *ufpb_fill_name(ufp_fill_mode f);
const char *ufpb_reclaim_name(ufp_reclaim r);

/* len bytes of deterministic image data, non-zero in every page (malloc'd,
 * NULL on failure); different seeds give different images. */
unsigned char *ufpb_image_bytes(size_t len, uint64_t seed);
/* A module whose image is data[0..len) at offset 0, initial memory
 * mem_bytes (0: len rounded up to 64 KiB). */
int ufpb_module(ufp_pool *pool, const unsigned char *data, size_t len,
		uint64_t mem_bytes, ufp_module **m);
/* Read one byte of each of `pages` pages and write one byte to
 * `permille`/1000 of them (a fixed, spread-out choice). */
void ufpb_touch(unsigned char *base, uint64_t pages, unsigned permille,
		unsigned char stamp);
/* The next number of the splitmix64 sequence of state *s. */
uint64_t ufpb_splitmix(uint64_t *s);
/* What a wave does to its i-th memory as it is allocated. */
typedef void (*ufpb_fill_fn)(unsigned char *base, uint32_t i, const void *arg);
/* k memories of m live at once: allocated one after another into
 * mem[0..k), fill(base, i, arg) each as it comes, then all freed. The
 * first error (allocating stops there); every memory allocated is freed. */
int ufpb_wave(ufp_pool *pool, ufp_module *m, uint32_t k, ufp_memory **mem,
	      ufpb_fill_fn fill, const void *arg);
/* v[0..n) = a seeded shuffle of 0..n-1. */
void ufpb_shuffle(uint32_t *v, size_t n, uint64_t seed);
/* How many pages ufpb_touch writes. */
uint64_t ufpb_written_pages(uint64_t pages, unsigned permille);

/* The affinity-hit-rate break-even against COW (part of churn). */
int ufpb_churn_breakeven(struct ufpb *b);

/* Scenarios: weak, so the harness links while one is being written and
 * the tour skips what is not built. */
#define UFPB_WEAK __attribute__((weak))
UFPB_WEAK int ufpb_index(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_fault(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_cycle(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_threads(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_purge(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_churn(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_soak(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_wasm(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_check(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_calibrate(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_density(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_small(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_prefetch(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_large(struct ufpb *b, int argc, char **argv);
UFPB_WEAK int ufpb_tour(struct ufpb *b, int argc, char **argv);

#endif
