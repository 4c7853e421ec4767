/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared pieces of ufp-bench: scenario entry points, timing,
 * statistics and output (table or JSON lines).
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

struct ufpb {
	int json;  /* --json: one JSON object per line */
	int quick; /* --quick: fewer repetitions (smoke runs, CI) */
	int reps;  /* --reps N: repetitions for medians (default 5) */
	FILE *out; /* stdout */
	char kernel[128];
};

static inline uint64_t ufpb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sort v[0..n) in place and return the median / the p-th percentile. */
double ufpb_median(double *v, size_t n);
double ufpb_percentile(double *v, size_t n, double p);

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

/* The bulk-copy floor: ns for one UFFDIO_COPY of len bytes from src into
 * a fresh registered range (bench/floor.c). 0 or -errno. */
int ufpb_copy_floor(const void *src, size_t len, double *ns_out);

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
UFPB_WEAK int ufpb_tour(struct ufpb *b, int argc, char **argv);

#endif
