/* SPDX-License-Identifier: MIT */
/*
 * resid.c - resident bytes beside every time (DESIGN.md §11: compare at
 * equal private residency). What the kernel says the process holds, by
 * kind, and what the pool holds of its own reservation:
 *
 *   Pss, Pss_Anon, Pss_Shmem   /proc/self/smaps_rollup: a page mapped by k
 *                              mappings counts 1/k in each, so N slots
 *                              sharing one page-cache image add one image
 *   RssAnon, RssShmem          /proc/self/status: every mapped page in full
 *   priv, shared               ufp_pool_resident_split over the pool's
 *                              reservation: anonymous pages, page-cache pages
 *
 * Scenarios read them at a defined point (memories live, after free) and
 * print deltas against a reading taken before the pool was created.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Add the "<key> <n> kB" lines of path into the matching fields. */
static int read_kib(const char *path, const char *const *keys,
		    int64_t *const *fields, size_t n)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < n; k++) {
			size_t kl = strlen(keys[k]);
			long long v;
			if (strncmp(line, keys[k], kl) ||
			    sscanf(line + kl, " %lld kB", &v) != 1)
				continue;
			*fields[k] = (int64_t)v * 1024;
			found++;
		}
	}
	fclose(f);
	return found == n ? 0 : -ENODATA;
}

int ufpb_resid_read(ufp_pool *pool, struct ufpb_resid *out)
{
	static const char *const rollup[] = {"Pss:", "Pss_Anon:", "Pss_Shmem:"};
	static const char *const status[] = {"RssAnon:", "RssShmem:"};
	int err;

	memset(out, 0, sizeof(*out));
	err = read_kib(
		"/proc/self/smaps_rollup", rollup,
		(int64_t *const[]){&out->pss, &out->pss_anon, &out->pss_shmem},
		3);
	if (!err)
		err = read_kib(
			"/proc/self/status", status,
			(int64_t *const[]){&out->rss_anon, &out->rss_shmem}, 2);
	if (!err && pool) {
		uint64_t priv, shared;
		err = ufp_pool_resident_split(pool, &priv, &shared);
		out->priv = (int64_t)priv;
		out->shared = (int64_t)shared;
	}
	return err;
}

void ufpb_resid_sub(struct ufpb_resid *d, const struct ufpb_resid *a,
		    const struct ufpb_resid *base)
{
	d->pss = a->pss - base->pss;
	d->pss_anon = a->pss_anon - base->pss_anon;
	d->pss_shmem = a->pss_shmem - base->pss_shmem;
	d->rss_anon = a->rss_anon - base->rss_anon;
	d->rss_shmem = a->rss_shmem - base->rss_shmem;
	d->priv = a->priv;
	d->shared = a->shared;
}

int ufpb_resid_cycle(ufp_pool *pool, ufp_module *m, ufpb_touch_fn touch,
		     const void *arg, const struct ufpb_resid *base,
		     struct ufpb_resid *live, struct ufpb_resid *idle)
{
	struct ufpb_resid now;
	ufp_memory *mem;
	int err = ufp_memory_alloc(pool, m, 0, &mem);
	if (err)
		return err;
	touch(ufp_memory_base(mem), arg);
	err = ufpb_resid_read(pool, &now);
	ufpb_resid_sub(live, &now, base);
	int e2 = ufp_memory_free(mem);
	if (!err && !e2)
		err = ufpb_resid_read(pool, &now);
	ufpb_resid_sub(idle, &now, base);
	return err ? err : e2;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t median_field(const struct ufpb_resid *v, size_t n, size_t off,
			    int64_t *tmp)
{
	for (size_t k = 0; k < n; k++)
		memcpy(&tmp[k], (const char *)&v[k] + off, sizeof(int64_t));
	qsort(tmp, n, sizeof(*tmp), cmp_i64);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

void ufpb_resid_median(const struct ufpb_resid *v, size_t n,
		       struct ufpb_resid *out)
{
	int64_t *tmp = n ? malloc(n * sizeof(*tmp)) : NULL;
	memset(out, 0, sizeof(*out));
	if (!tmp)
		return;
	for (size_t off = 0; off < sizeof(*out); off += sizeof(int64_t)) {
		int64_t m = median_field(v, n, off, tmp);
		memcpy((char *)out + off, &m, sizeof(m));
	}
	free(tmp);
}

const char *ufpb_resid_head(void)
{
	return "   Pss KiB  anon KiB shmem KiB RssAnon K RssShm K  priv KiB "
	       "shared KiB";
}

const char *ufpb_resid_cols(const struct ufpb_resid *r, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "%10" PRId64 "%10" PRId64 "%10" PRId64 "%10" PRId64 "%9" PRId64
		 "%10" PRId64 "%11" PRId64,
		 r->pss / 1024, r->pss_anon / 1024, r->pss_shmem / 1024,
		 r->rss_anon / 1024, r->rss_shmem / 1024, r->priv / 1024,
		 r->shared / 1024);
	return buf;
}

const char *ufpb_resid_json(const struct ufpb_resid *r, const char *prefix,
			    char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "\"%s_pss\": %" PRId64 ", \"%s_pss_anon\": %" PRId64
		 ", \"%s_pss_shmem\": %" PRId64 ", \"%s_rss_anon\": %" PRId64
		 ", \"%s_rss_shmem\": %" PRId64
		 ", \"%s_pool_private\": %" PRId64
		 ", \"%s_pool_shared\": %" PRId64,
		 prefix, r->pss, prefix, r->pss_anon, prefix, r->pss_shmem,
		 prefix, r->rss_anon, prefix, r->rss_shmem, prefix, r->priv,
		 prefix, r->shared);
	return buf;
}

void ufpb_resid_explain(struct ufpb *b)
{
	ufpb_say(
		b,
		"  residency, KiB: Pss / Pss_Anon / Pss_Shmem "
		"(/proc/self/smaps_rollup) and RssAnon / RssShmem\n"
		"  (/proc/self/status) as deltas against the process before "
		"the pool was created; priv /\n"
		"  shared = the pool's own anonymous and page-cache bytes "
		"(ufp_pool_resident_split). The process's\n"
		"  figures include the modules' own copies of their images and "
		"the C library's heap: tens of\n"
		"  KiB between rows are noise there, not the pool.\n");
}
