/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - shared test helpers: feature skips, small utilities.
 *
 * A skip is never a pass: t_skip() calls cr_skip_test() with the reason,
 * unless UFP_REQUIRE_FEATURES=1 (CI sets it: our machines have every
 * feature), in which case the test fails with that reason instead.
 */
#ifndef UFP_TEST_HELPERS_H
#define UFP_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uffdpool.h"

static inline int t_require_features(void)
{
	const char *v = getenv("UFP_REQUIRE_FEATURES");
	return v && *v && strcmp(v, "0") != 0;
}

#define t_skip(...)                                                           \
	do {                                                                  \
		if (t_require_features())                                     \
			cr_fatal("required feature missing: " __VA_ARGS__);   \
		cr_skip_test(__VA_ARGS__);                                    \
	} while (0)

/* Path of ../shared/wasm/NAME, or NULL when the folder is absent. */
static inline const char *t_shared_wasm(const char *name, char *buf,
					size_t cap)
{
	const char *dir = getenv("UFP_SHARED_WASM");
	if (!dir)
		return NULL;
	snprintf(buf, cap, "%s/%s", dir, name);
	return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Number of open fds of this process. */
static inline int t_count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n++;
	return n;
}

/* Number of lines of /proc/self/maps. */
static inline int t_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* 1 if addr lies in any mapping of /proc/self/maps. */
static inline int t_is_mapped(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi, a = (unsigned long)addr;
	char line[512];
	int found = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo &&
		    a < hi)
			found = 1;
	fclose(f);
	return found;
}

/* splitmix64: a seeded, reproducible PRNG for tests. */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#endif
