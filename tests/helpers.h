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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

#define t_skip(...)                                                        \
	do {                                                               \
		if (t_require_features())                                  \
			cr_assert_fail(                                    \
				"required feature missing: " __VA_ARGS__); \
		cr_skip_test(__VA_ARGS__);                                 \
	} while (0)

/* Path of ../shared/wasm/NAME, or NULL when the folder is absent. */
static inline const char *t_shared_wasm(const char *name, char *buf, size_t cap)
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

/* Open fds, from /proc/self/fd (t_count_fds probes 65536 numbers, which
 * is slow under ASan). */
static inline int t_count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return t_count_fds();
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own fd */
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
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
			found = 1;
	fclose(f);
	return found;
}

/* Append msg and a newline to the NUL-terminated log in buf (cap bytes,
 * *len of them used); a line that does not fit is left out. */
static inline void t_log_append(char *buf, size_t cap, size_t *len,
				const char *msg)
{
	size_t n = strlen(msg);
	if (*len + n + 2 < cap) {
		memcpy(buf + *len, msg, n);
		*len += n;
		buf[(*len)++] = '\n';
		buf[*len] = 0;
	}
}

/* splitmix64: a seeded, reproducible PRNG for tests. */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Shuffle v[0..n) (Fisher-Yates, drawing from *rng). */
static inline void t_shuffle_u64(uint64_t *v, size_t n, uint64_t *rng)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = t_rand(rng) % i;
		uint64_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* v[0..n) = 0, 1, ..., n - 1 in an order drawn from *rng. */
static inline void t_permutation(uint64_t *v, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	t_shuffle_u64(v, n, rng);
}

/*
 * Backends and reclaim engines that pool suites run over. Loop with
 *   for (size_t k = 0; k < T_NBACKENDS; k++) { ufp_backend b = t_backends[k]; ... }
 */
static const ufp_backend t_backends[] = {UFP_BACKEND_UFFD, UFP_BACKEND_COW,
					 UFP_BACKEND_COPY};
#define T_NBACKENDS (sizeof(t_backends) / sizeof(t_backends[0]))
static const ufp_reclaim t_reclaims[] = {UFP_RECLAIM_URING, UFP_RECLAIM_SYNC,
					 UFP_RECLAIM_PROCESS_MADVISE};
#define T_NRECLAIMS (sizeof(t_reclaims) / sizeof(t_reclaims[0]))
static const ufp_strategy t_strategies[] = {
	UFP_STRATEGY_NEXT_AVAILABLE, UFP_STRATEGY_RANDOM,
	UFP_STRATEGY_REUSE_AFFINITY, UFP_STRATEGY_WARM_LRU};
#define T_NSTRATEGIES (sizeof(t_strategies) / sizeof(t_strategies[0]))

/*
 * Behaviour only the UFFD backend has: touching a freed memory traps
 * (SIGBUS: the handler poisons it), the handler's counters (faults,
 * windows, pages_zeroed) move, dirty tracking exists. COW and COPY have no
 * handler: a freed memory reads as zero or as its kept image bytes.
 */
static inline int t_backend_has_handler(ufp_backend b)
{
	return b == UFP_BACKEND_UFFD || b == UFP_BACKEND_AUTO;
}

static inline const char *t_backend_name(ufp_backend b)
{
	static const char *n[] = {"auto", "uffd", "cow", "copy"};
	return (unsigned)b < 4 ? n[b] : "?";
}
static inline const char *t_reclaim_name(ufp_reclaim r)
{
	static const char *n[] = {"auto", "uring", "sync", "process_madvise"};
	return (unsigned)r < 4 ? n[r] : "?";
}
static inline const char *t_strategy_name(ufp_strategy s)
{
	static const char *n[] = {"next_available", "random", "reuse_affinity",
				  "warm_lru"};
	return (unsigned)s < 4 ? n[s] : "?";
}

/*
 * The UFFD fill mode suites run in: AUTO (minor faults on these machines)
 * unless UFP_TEST_FILL says "copy" or "minor"; ctest runs the pool suites
 * once more with UFP_TEST_FILL=copy (tests/CMakeLists.txt).
 */
static inline ufp_fill_mode t_fill_mode(void)
{
	const char *v = getenv("UFP_TEST_FILL");
	if (v && !strcmp(v, "copy"))
		return UFP_FILL_COPY;
	if (v && !strcmp(v, "minor"))
		return UFP_FILL_MINOR;
	return UFP_FILL_AUTO;
}

/* A small pool config: `slots` slots of `max_bytes`, 64 KiB guards. */
static inline void t_config(ufp_config *c, uint32_t slots, uint64_t max_bytes)
{
	ufp_config_init(c);
	c->slots = slots;
	c->max_memory_bytes = max_bytes;
	c->guard_bytes = 64 << 10;
	c->fill_mode = t_fill_mode();
}

/*
 * Create a pool; a kernel feature missing (-EPERM/-ENOSYS/-ENOTSUP from
 * userfaultfd, io_uring or process_madvise) skips the test with the reason
 * (fails under UFP_REQUIRE_FEATURES=1). Anything else fails.
 */
static inline ufp_pool *t_pool(const ufp_config *c)
{
	ufp_pool *p = NULL;
	int err = ufp_pool_create(c, &p);
	if (err == -EPERM || err == -ENOSYS || err == -ENOTSUP)
		t_skip("pool backend %d reclaim %d: %s", (int)c->backend,
		       (int)c->reclaim, ufp_strerror(err));
	cr_assert_eq(err, 0, "ufp_pool_create: %s", ufp_strerror(err));
	return p;
}

/* Image pages the handler installed, copied (copy mode) or mapped from
 * the page cache (minor mode). */
static inline uint64_t t_installed(const ufp_stats *st)
{
	return st->pages_copied + st->pages_continued;
}

/* Fill buf with a reproducible non-zero-heavy pattern. */
static inline void t_fill(unsigned char *buf, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			seed = t_rand(&seed);
		buf[i] = (unsigned char)(seed >> (8 * (i % 8)));
	}
}

/* A synthetic image: a name, its initial size and its segments. */
struct t_case {
	const char *name;
	uint64_t initial;
	size_t nsegs;
	ufp_segment segs[6];
};

/*
 * The synthetic cases test_image and test_pool both run, over the pattern
 * bytes pat (90000 at least) and zeros (4096 at least): writes c[0..3] and
 * returns 4.
 */
static inline size_t t_common_cases(struct t_case *c, const unsigned char *pat,
				    const unsigned char *zeros)
{
	const uint64_t kib = 1024;
	/* a few bytes far apart in 1 MiB */
	c[0] = (struct t_case){"sparse",
			       1024 * kib,
			       3,
			       {{0, pat, 10},
				{300000, pat + 100, 50},
				{15 * 64 * kib + 7, pat + 1000, 3}}};
	/* segments straddling page boundaries, unaligned at both ends */
	c[1] = (struct t_case){"unaligned",
			       256 * kib,
			       3,
			       {{4095, pat + 1, 2},
				{65535, pat + 7, 70000},
				{3 * 4096 + 1, pat + 9, 4094}}};
	/* later segments overwrite earlier ones; a zero segment turns a page
	 * that had data back into a zero page */
	c[2] = (struct t_case){"overlapping",
			       128 * kib,
			       5,
			       {{1000, pat, 9000},
				{5000, pat + 50000, 1000},
				{8192, zeros, 4096},
				{100, pat + 7777, 1},
				{4000, pat + 3, 200}}};
	/* segments whose last byte is the last byte of initial memory */
	c[3] = (struct t_case){"ends_at_initial",
			       128 * kib,
			       3,
			       {{128 * kib - 100, pat + 11, 100},
				{64 * kib - 1, pat + 5, 1},
				{64 * kib, pat + 20000, 64 * kib}}};
	return 4;
}

/* First differing offset of a and b over len bytes, or -1. */
static inline int64_t t_first_diff(const unsigned char *a,
				   const unsigned char *b, size_t len)
{
	if (len == 0 || memcmp(a, b, len) == 0)
		return -1;
	size_t i = 0;
	while (a[i] == b[i])
		i++;
	return (int64_t)i;
}

/* got[0, len) equals want, else fail naming the first byte that differs
 * (at offset base_off + i), prefixed "[ctx] " when ctx is not NULL. */
static inline void t_assert_bytes_ctx(const char *ctx, const unsigned char *got,
				      const unsigned char *want, size_t len,
				      const char *what, uint64_t base_off)
{
	int64_t i = t_first_diff(got, want, len);
	if (i < 0)
		return;
	cr_assert_fail("%s%s%s%s: byte at offset %llu is 0x%02x, expected "
		       "0x%02x",
		       ctx ? "[" : "", ctx ? ctx : "", ctx ? "] " : "", what,
		       (unsigned long long)(base_off + (uint64_t)i), got[i],
		       want[i]);
}

static inline void t_assert_bytes(const unsigned char *got,
				  const unsigned char *want, size_t len,
				  const char *what, uint64_t base_off)
{
	t_assert_bytes_ctx(NULL, got, want, len, what, base_off);
}

/* ufp_memory_alloc that must succeed. */
static inline ufp_memory *t_alloc(ufp_pool *p, ufp_module *m, uint64_t bytes)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, m, bytes, &mem);
	cr_assert_eq(err, 0, "ufp_memory_alloc(%llu): %s",
		     (unsigned long long)bytes, ufp_strerror(err));
	return mem;
}

/* ufp_memory_free that must succeed. */
static inline void t_free(ufp_memory *mem)
{
	int err = ufp_memory_free(mem);
	cr_assert_eq(err, 0, "ufp_memory_free: %s", ufp_strerror(err));
}

/* ufp_pool_destroy that must succeed. */
static inline void t_destroy(ufp_pool *p)
{
	int err = ufp_pool_destroy(p);
	cr_assert_eq(err, 0, "ufp_pool_destroy: %s", ufp_strerror(err));
}

/* The system page size. */
static inline size_t t_page(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The pool's counters; the call must succeed. */
static inline ufp_stats t_stats(ufp_pool *p)
{
	ufp_stats st = {.size = sizeof(st)};
	int err = ufp_pool_stats(p, &st);
	cr_assert_eq(err, 0, "ufp_pool_stats: %s", ufp_strerror(err));
	return st;
}

/* What a fresh memory of `bytes` must read: zeros, then every segment
 * applied in order (WebAssembly's order: later ones overwrite). */
static inline unsigned char *t_apply_segments(const ufp_segment *segs, size_t n,
					      uint64_t bytes)
{
	unsigned char *e = calloc(1, bytes ? bytes : 1);
	cr_assert_not_null(e);
	for (size_t i = 0; i < n; i++) {
		cr_assert(segs[i].offset <= bytes &&
				  segs[i].len <= bytes - segs[i].offset,
			  "test bug: segment %zu out of range", i);
		if (segs[i].len)
			memcpy(e + segs[i].offset, segs[i].bytes, segs[i].len);
	}
	return e;
}

/*
 * One access with SIGBUS and SIGSEGV caught: 0 when it went through, else
 * the signal it raised. The handlers in place before are put back.
 */
static inline sigjmp_buf *t_trap_jb(void)
{
	static sigjmp_buf jb;
	return &jb;
}

static inline void t_trap_handler(int sig)
{
	siglongjmp(*t_trap_jb(), sig);
}

struct t_traps {
	struct sigaction bus, segv;
};

static inline void t_traps_on(struct t_traps *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = t_trap_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old->bus);
	sigaction(SIGSEGV, &sa, &old->segv);
}

static inline void t_traps_off(const struct t_traps *old)
{
	sigaction(SIGBUS, &old->bus, NULL);
	sigaction(SIGSEGV, &old->segv, NULL);
}

/* Read *p (the byte in *out unless out is NULL). */
static inline int t_read_trapping(const volatile unsigned char *p,
				  unsigned char *out)
{
	struct t_traps old;
	t_traps_on(&old);
	int sig = sigsetjmp(*t_trap_jb(), 1);
	if (!sig) {
		unsigned char v = *p;
		if (out)
			*out = v;
	}
	t_traps_off(&old);
	return sig;
}

/* Write v to *p. */
static inline int t_write_trapping(volatile unsigned char *p, unsigned char v)
{
	struct t_traps old;
	t_traps_on(&old);
	int sig = sigsetjmp(*t_trap_jb(), 1);
	if (!sig)
		*p = v;
	t_traps_off(&old);
	return sig;
}

#endif
