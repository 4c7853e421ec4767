/* SPDX-License-Identifier: MIT */
/*
 * ufp-bench - benchmark harness of uffdpool.
 *
 *   ufp-bench [--json] [--quick] [--reps N] [SCENARIO [ARGS...]]
 *
 * With no scenario, runs the tour. Every figure is a ratio against a
 * baseline measured in the same run; see docs/benchmarks.md.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "bench.h"

static const struct {
	const char *name;
	int (*fn)(struct ufpb *, int, char **);
	const char *what;
} scenarios[] = {
	{"index", ufpb_index,
	 "slot index allocator: alloc+free pairs per strategy"},
	{"fault", ufpb_fault,
	 "cold first touch: handler vs bulk-copy floor and private memfd"},
	{"cycle", ufpb_cycle,
	 "alloc -> touch -> free, warm and cold, per fill mode and backend"},
	{"density", ufpb_density,
	 "N live memories of one module: Pss live and after free"},
	{"small", ufpb_small,
	 "128 KiB memories, one image and one zero page written; vs malloc"},
	{"large", ufpb_large,
	 "a 256 MiB memory written everywhere vs anonymous mmap"},
	{"prefetch", ufpb_prefetch,
	 "cold starts with a learned working set prefetched vs not, vs COW"},
	{"threads", ufpb_threads,
	 "N threads instantiating and touching concurrently"},
	{"purge", ufpb_purge,
	 "module drop: blocked time and full reclaim per engine"},
	{"churn", ufpb_churn,
	 "modules created, used, dropped: resident bytes over time"},
	{"wasm", ufpb_wasm,
	 "real .wasm modules: instantiate + touch image pages + free"},
	{"soak", ufpb_soak,
	 "randomized model run for --seconds N (not a benchmark)"},
	{"calibrate", ufpb_calibrate,
	 "what page-table events cost here (the costs behind the ratios)"},
	{"check", ufpb_check,
	 "probed kernel features, permissions, AUTO choices"},
	{"tour", ufpb_tour, "the default: a short tour of everything above"},
};

static int usage(FILE *f)
{
	fprintf(f, "usage: ufp-bench [--json] [--quick] [--reps N] [SCENARIO "
		   "[ARGS...]]\n"
		   "       ufp-bench --check\nscenarios:\n");
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		fprintf(f, "  %-10s %s%s\n", scenarios[i].name,
			scenarios[i].what,
			scenarios[i].fn ? "" : " (not built)");
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	struct ufpb b = {.reps = 5, .out = stdout};
	struct utsname u;
	int i = 1;

	if (uname(&u) == 0)
		snprintf(b.kernel, sizeof(b.kernel), "%s", u.release);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--json"))
			b.json = 1;
		else if (!strcmp(argv[i], "--quick"))
			b.quick = 1;
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			b.reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--check"))
			return ufpb_check ? ufpb_check(&b, 0, NULL) : 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return usage(stdout);
		else
			return usage(stderr);
	}
	if (b.reps < 1)
		b.reps = 1;
	const char *name = i < argc ? argv[i++] : "tour";
	for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
		if (strcmp(scenarios[k].name, name))
			continue;
		if (!scenarios[k].fn) {
			fprintf(stderr,
				"ufp-bench: scenario %s is not built yet\n",
				name);
			return 2;
		}
		return scenarios[k].fn(&b, argc - i, argv + i);
	}
	fprintf(stderr, "ufp-bench: unknown scenario '%s'\n", name);
	return usage(stderr);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double ufpb_percentile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t k = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[k < n ? k : n - 1];
}

double ufpb_median(double *v, size_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void ufpb_vec_push(struct ufpb_vec *s, double x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			abort();
	}
	s->v[s->n++] = x;
}

double ufpb_vec_median(struct ufpb_vec *s)
{
	return ufpb_median(s->v, s->n);
}

void ufpb_emit(struct ufpb *b, const char *scenario, const char *fmt, ...)
{
	va_list ap;
	if (!b->json)
		return;
	va_start(ap, fmt);
	fprintf(b->out, "{\"scenario\": \"%s\", ", scenario);
	vfprintf(b->out, fmt, ap);
	fprintf(b->out, ", \"kernel\": \"%s\", \"version\": \"%s\"}\n",
		b->kernel, ufp_version());
	va_end(ap);
}

void ufpb_say(struct ufpb *b, const char *fmt, ...)
{
	va_list ap;
	if (b->json)
		return;
	va_start(ap, fmt);
	vfprintf(b->out, fmt, ap);
	va_end(ap);
}

int ufpb_common_arg(struct ufpb *b, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (!strcmp(a, "--json"))
		b->json = 1;
	else if (!strcmp(a, "--quick"))
		b->quick = 1;
	else if (!strcmp(a, "--reps") && *i + 1 < argc &&
		 atoi(argv[*i + 1]) > 0)
		b->reps = atoi(argv[++*i]);
	else
		return 0;
	return 1;
}

int ufpb_int_arg(int argc, char **argv, int *i, const char *name, int min,
		 int *v)
{
	if (strcmp(argv[*i], name) || *i + 1 >= argc ||
	    atoi(argv[*i + 1]) < min)
		return 0;
	*v = atoi(argv[++*i]);
	return 1;
}

int ufpb_verdict(struct ufpb *b, const char *scenario, const char *target,
		 const char *what, double value, double limit, int at_most)
{
	int met = at_most ? value <= limit : value >= limit;
	ufpb_say(b, "  target: %-52s %7.2f (%s %.2f)  %s\n", what, value,
		 at_most ? "at most" : "at least", limit,
		 met ? "met" : "MISSED");
	ufpb_emit(b, scenario,
		  "\"target\": \"%s\", \"what\": \"%s\", \"value\": %.4f, "
		  "\"limit\": %.4f, \"at_most\": %s, \"pass\": %s",
		  target, what, value, limit, at_most ? "true" : "false",
		  met ? "true" : "false");
	return met;
}
