/* SPDX-License-Identifier: MIT */
/* ufp-test: timeout=120 fill=copy */
/*
 * test_minor.c - the UFFD backend's minor-fault (zero-copy) fill mode and
 * the copy-on-write reset it shares with the COW backend (lib/slot.c,
 * uffd/handler.c): clean image pages are page-cache pages shared by every
 * memory of a module, written pages are the anonymous ones, a drop leaves
 * no mapping of the module's memfd, and the mode falls back to copies
 * where the kernel lacks UFFD_FEATURE_MINOR_SHMEM.
 *
 * The pool suites (test_pool, test_purge, test_faults, test_model,
 * test_handler) run in minor mode by default and once more in copy mode;
 * this file checks what only minor mode promises.
 */
#include <criterion/criterion.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "helpers.h"
#include "internal.h"
#include "kernel_uapi.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)

/* A dense image of `bytes` (every page stored) and its bytes. */
struct mod {
	ufp_module *m;
	unsigned char *ref;
	uint64_t bytes;
};

static void mod_make(ufp_pool *p, struct mod *md, uint64_t bytes, uint64_t seed)
{
	md->bytes = bytes;
	md->ref = malloc(bytes);
	cr_assert_not_null(md->ref);
	t_fill(md->ref, bytes, seed);
	for (uint64_t off = 0; off < bytes; off += t_page())
		md->ref[off] |= 1; /* every page holds a non-zero byte */
	ufp_segment seg = {0, md->ref, bytes};
	int err = ufp_module_create(p, &seg, 1, bytes, &md->m);
	cr_assert_eq(err, 0, "ufp_module_create: %s", ufp_strerror(err));
}

static void mod_drop(struct mod *md)
{
	cr_assert_eq(ufp_module_drop(md->m), 0);
	free(md->ref);
	md->ref = NULL;
}

/* A UFFD config asking for minor mode. */
static void minor_config(ufp_config *c, uint32_t slots, uint64_t max)
{
	t_config(c, slots, max);
	c->backend = UFP_BACKEND_UFFD;
	c->fill_mode = UFP_FILL_MINOR;
}

static ufp_pool *minor_pool(uint32_t slots, uint64_t max, uint64_t keep)
{
	ufp_config c;
	minor_config(&c, slots, max);
	c.keep_resident_bytes = keep;
	ufp_pool *p = t_pool(&c);
	ufp_fill_mode mode = UFP_FILL_AUTO;
	cr_assert_eq(ufp_pool_fill_mode(p, &mode), 0);
	cr_assert_eq(mode, UFP_FILL_MINOR);
	if (p->pagemap_fd < 0)
		t_skip("no PAGEMAP_SCAN (Linux 6.7)");
	return p;
}

static ufp_memory *alloc_sized(ufp_pool *p, const struct mod *md,
			       uint64_t bytes)
{
	ufp_memory *mem = NULL;
	int err = ufp_memory_alloc(p, md ? md->m : NULL, bytes, &mem);
	cr_assert_eq(err, 0, "ufp_memory_alloc: %s", ufp_strerror(err));
	return mem;
}

static ufp_memory *alloc_ok(ufp_pool *p, const struct mod *md)
{
	return alloc_sized(p, md, 0);
}

/* A memory of md, freed untouched. */
static void alloc_free(ufp_pool *p, const struct mod *md)
{
	ufp_memory *mem = alloc_ok(p, md);
	cr_assert_eq(ufp_memory_free(mem), 0);
}

/* Both modules dropped, then the pool destroyed. */
static void drop_both_destroy(ufp_pool *p, struct mod *a, struct mod *b)
{
	mod_drop(a);
	mod_drop(b);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

static void read_all(const ufp_memory *mem)
{
	const volatile unsigned char *b = ufp_memory_base(mem);
	for (uint64_t off = 0; off < ufp_memory_size(mem); off += t_page())
		(void)b[off];
}

/* Pages of [addr, addr+len) in each category, from PAGEMAP_SCAN. */
struct cats {
	uint64_t file, anon, zero;
};

static int count_cats(void *arg, uint64_t start, uint64_t end, uint64_t cats)
{
	struct cats *c = arg;
	uint64_t pages = (end - start) / t_page();
	if (cats & PAGE_IS_FILE)
		c->file += pages;
	else if (cats & PAGE_IS_PFNZERO)
		c->zero += pages;
	else
		c->anon += pages;
	return 0;
}

static struct cats categories(ufp_pool *p, const void *addr, uint64_t len)
{
	const struct ufpi_pm_query q = {.mask = PAGE_IS_PRESENT,
					.ret = PAGE_IS_FILE | PAGE_IS_PFNZERO};
	struct cats c = {0};
	int err = ufpi_os_pagemap_scan(p->pagemap_fd, (void *)addr, len, &q,
				       count_cats, &c);
	cr_assert_eq(err, 0, "PAGEMAP_SCAN: %s", ufp_strerror(err));
	return c;
}

/* A kB field of /proc/self/status, in bytes. */
static uint64_t status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;
	size_t n = strlen(field);
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			sscanf(line + n + 1, "%llu", &kb);
	fclose(f);
	return kb * 1024;
}

/* Lines of /proc/self/maps naming the image memfds. */
static int image_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:ufp-image") != NULL;
	fclose(f);
	return n;
}

/* Reading maps page-cache pages, shared: no private copy per memory. */
Test(minor, memories_of_a_module_share_its_clean_pages)
{
	enum { N = 8 };
	const uint64_t len = 1 * MIB;
	ufp_pool *p = minor_pool(N, 2 * MIB, 0);
	struct mod md;
	mod_make(p, &md, len, 1);
	ufp_memory *mem[N];
	for (int k = 0; k < N; k++) {
		mem[k] = alloc_ok(p, &md);
		read_all(mem[k]);
		cr_assert_eq(memcmp(ufp_memory_base(mem[k]), md.ref, len), 0);
	}
	uint64_t priv = 0, shared = 0;
	cr_assert_eq(ufp_pool_resident_split(p, &priv, &shared), 0);
	/* one copy in the page cache, mapped N times */
	cr_assert_eq(priv, 0, "%llu private bytes after reads only",
		     (unsigned long long)priv);
	cr_assert_eq(shared, N * len, "shared %llu, want %llu",
		     (unsigned long long)shared, (unsigned long long)(N * len));
	ufp_stats st = t_stats(p);
	cr_assert_eq(st.pages_copied, 0);
	cr_assert_geq(st.pages_continued, N * len / t_page());
	for (int k = 0; k < N; k++)
		cr_assert_eq(ufp_memory_free(mem[k]), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* A write copies the page for that memory alone; the memfd and the other
 * memories keep the image. */
Test(minor, a_write_stays_in_its_memory)
{
	ufp_pool *p = minor_pool(2, 1 * MIB, 0);
	struct mod md;
	mod_make(p, &md, 256 * KIB, 2);
	ufp_memory *a = alloc_ok(p, &md), *b = alloc_ok(p, &md);
	unsigned char *pa = ufp_memory_base(a);
	read_all(a);
	memset(pa + 8 * t_page(), 0xee, t_page());
	read_all(b);
	cr_assert_eq(memcmp(ufp_memory_base(b), md.ref, md.bytes), 0);
	struct cats c = categories(p, pa, md.bytes);
	cr_assert_eq(c.anon, 1, "private pages %llu after one write",
		     (unsigned long long)c.anon);
	cr_assert_eq(ufp_memory_free(a), 0);
	cr_assert_eq(ufp_memory_free(b), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* Warm reuse: clean pages stay page-cache pages (no fault, no private
 * byte); written pages are dropped (keep 0) and the page-cache page is
 * mapped back in their place, so the next memory takes no handler fault
 * at all, and its writes are the kernel's copy-on-write faults. */
Test(minor, warm_reuse_keeps_clean_pages_in_the_page_cache)
{
	const size_t page = t_page();
	ufp_pool *p = minor_pool(1, 1 * MIB, 0);
	struct mod md;
	mod_make(p, &md, 512 * KIB, 3);
	ufp_memory *mem = alloc_ok(p, &md);
	unsigned char *base = ufp_memory_base(mem);
	read_all(mem);
	for (uint64_t off = 0; off < md.bytes; off += 16 * page)
		base[off] ^= 0x5a; /* 8 written pages */
	cr_assert_eq(categories(p, base, 1 * MIB).anon, 8);
	cr_assert_eq(ufp_memory_free(mem), 0);

	struct cats c = categories(p, base, 1 * MIB);
	cr_assert_eq(c.anon, 0, "%llu private pages kept with keep 0",
		     (unsigned long long)c.anon);
	cr_assert_eq(c.file, md.bytes / page,
		     "page-cache pages mapped: %llu, want %llu",
		     (unsigned long long)c.file,
		     (unsigned long long)(md.bytes / page));
	uint64_t priv = 1, shared = 0;
	cr_assert_eq(ufp_pool_resident_split(p, &priv, &shared), 0);
	cr_assert_eq(priv, 0);
	cr_assert_eq(shared, md.bytes);
	cr_assert_eq(t_stats(p).idle_resident_bytes, 0,
		     "idle bytes count private bytes only");

	ufp_stats s0 = t_stats(p);
	mem = alloc_ok(p, &md);
	cr_assert_eq((void *)ufp_memory_base(mem), (void *)base);
	cr_assert_eq(memcmp(base, md.ref, md.bytes), 0);
	for (uint64_t off = 0; off < md.bytes; off += 16 * page)
		base[off] ^= 0x5a;
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(s1.faults - s0.faults, 0, "%llu handler faults",
		     (unsigned long long)(s1.faults - s0.faults));
	cr_assert_eq(s1.pages_copied, 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* keep_resident_bytes counts private bytes: the written pages below it
 * are restored and kept (and reported idle), clean pages cost nothing. */
Test(minor, keep_counts_private_bytes)
{
	const size_t page = t_page();
	ufp_pool *p = minor_pool(1, 1 * MIB, 64 * KIB);
	struct mod md;
	mod_make(p, &md, 512 * KIB, 4);
	ufp_memory *mem = alloc_sized(p, &md, 1 * MIB);
	unsigned char *base = ufp_memory_base(mem);
	read_all(mem);
	for (int k = 0; k < 4; k++)
		base[k * 2 * page] = 0xab;     /* below keep: restored */
	base[300 * KIB] = 0xcd;		       /* beyond keep: dropped */
	memset(base + 600 * KIB, 7, 2 * page); /* zero part, beyond */
	cr_assert_eq(ufp_memory_free(mem), 0);

	cr_assert_eq(t_stats(p).idle_resident_bytes, 4 * page,
		     "idle %llu, want the 4 restored pages",
		     (unsigned long long)t_stats(p).idle_resident_bytes);
	struct cats c = categories(p, base, 1 * MIB);
	cr_assert_eq(c.anon, 4);
	mem = alloc_sized(p, &md, 1 * MIB);
	cr_assert_eq(memcmp(base, md.ref, md.bytes), 0);
	for (uint64_t off = md.bytes; off < ufp_memory_size(mem); off++)
		cr_assert_eq(base[off], 0, "zero part byte %llu",
			     (unsigned long long)off);
	cr_assert_eq(ufp_memory_free(mem), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* Drop + quiesce: no mapping of the memfd, no shared page, the fd closed;
 * a stale pointer into the purged slot still traps. */
Test(minor, drop_releases_the_memfd_and_its_page_cache)
{
	ufp_pool *p = minor_pool(4, 4 * MIB, 64 * KIB);
	const int maps0 = image_maps(), fds0 = t_count_fds();
	const uint64_t shmem0 = status_bytes("RssShmem");
	struct mod md;
	mod_make(p, &md, 2 * MIB, 5);
	ufp_memory *mem[4];
	for (int k = 0; k < 4; k++) {
		mem[k] = alloc_ok(p, &md);
		read_all(mem[k]);
		((unsigned char *)ufp_memory_base(mem[k]))[k * 4096] = 1;
	}
	cr_assert_gt(image_maps(), maps0);
	cr_assert_geq(status_bytes("RssShmem"), shmem0 + md.bytes);
	volatile unsigned char *stale = ufp_memory_base(mem[0]);
	for (int k = 0; k < 4; k++)
		cr_assert_eq(ufp_memory_free(mem[k]), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_quiesce(p), 0);

	cr_assert_eq(image_maps(), maps0, "a mapping of the memfd survived");
	cr_assert_eq(t_count_fds(), fds0, "the memfd is still open");
	uint64_t priv = 1, shared = 1;
	cr_assert_eq(ufp_pool_resident_split(p, &priv, &shared), 0);
	cr_assert_eq(priv, 0);
	cr_assert_eq(shared, 0);
	cr_assert_leq(status_bytes("RssShmem"), shmem0,
		      "RssShmem %llu after drop, %llu before",
		      (unsigned long long)status_bytes("RssShmem"),
		      (unsigned long long)shmem0);

	int sig = t_read_trapping(stale, NULL);
	cr_assert_neq(sig, 0, "a read through a stale pointer did not trap");
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* Memories of another module in a slot that mapped this one's memfd see
 * only their own image, and no module's page survives in between. */
Test(minor, image_switch_in_one_slot)
{
	ufp_pool *p = minor_pool(1, 1 * MIB, 1 * MIB);
	struct mod a, b;
	mod_make(p, &a, 512 * KIB, 6);
	mod_make(p, &b, 256 * KIB, 7);
	for (int round = 0; round < 3; round++) {
		struct mod *md = round % 2 ? &b : &a;
		ufp_memory *mem = alloc_ok(p, md);
		unsigned char *base = ufp_memory_base(mem);
		cr_assert_eq(memcmp(base, md->ref, md->bytes), 0,
			     "round %d: not the module's image", round);
		for (uint64_t off = md->bytes; off < ufp_memory_size(mem);
		     off++)
			cr_assert_eq(base[off], 0, "round %d byte %llu", round,
				     (unsigned long long)off);
		memset(base, 0x99, ufp_memory_size(mem));
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	drop_both_destroy(p, &a, &b);
}

/* ---- fallback: no UFFD_FEATURE_MINOR_SHMEM ------------------------------- */

static char info_msg[512];
static void info_cb(void *arg, ufp_log_level level, const char *msg)
{
	(void)arg;
	if (level <= UFP_LOG_INFO && strstr(msg, "fill mode"))
		snprintf(info_msg, sizeof(info_msg), "%s", msg);
}

/* The kernel here has the feature: the cached probe is edited (Criterion
 * runs each test in its own process), then AUTO must pick copy mode, say
 * why, and work; MINOR forced must be refused. */
Test(minor_fallback, auto_without_minor_shmem_copies_and_says_why)
{
	struct ufpi_features *f = (struct ufpi_features *)ufpi_features_probe();
	if (f->uffd_err)
		t_skip("userfaultfd: %s", ufp_strerror(f->uffd_err));
	f->minor_shmem = false;

	ufp_config c;
	minor_config(&c, 2, 1 * MIB);
	ufp_pool *p = NULL;
	cr_assert_eq(ufp_pool_create(&c, &p), -ENOTSUP);
	cr_assert_null(p);

	c.fill_mode = UFP_FILL_AUTO;
	c.log = info_cb;
	c.log_level = UFP_LOG_INFO;
	p = t_pool(&c);
	ufp_fill_mode mode = UFP_FILL_AUTO;
	cr_assert_eq(ufp_pool_fill_mode(p, &mode), 0);
	cr_assert_eq(mode, UFP_FILL_COPY);
	cr_assert(strstr(info_msg, "MINOR_SHMEM"), "log: \"%s\"", info_msg);

	struct mod md;
	mod_make(p, &md, 256 * KIB, 8);
	for (int k = 0; k < 3; k++) {
		ufp_memory *mem = alloc_ok(p, &md);
		cr_assert_eq(memcmp(ufp_memory_base(mem), md.ref, md.bytes), 0);
		memset(ufp_memory_base(mem), 0x42, 64 * KIB);
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	ufp_stats st = t_stats(p);
	cr_assert_gt(st.pages_copied, 0);
	cr_assert_eq(st.pages_continued, 0);
	cr_assert_eq(image_maps(), 0, "copy mode maps no memfd");
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
	ufpi_features_reset();
}

Test(minor_api, bad_arguments)
{
	ufp_fill_mode mode;
	uint64_t a, b;
	cr_assert_eq(ufp_pool_fill_mode(NULL, &mode), -EINVAL);
	cr_assert_eq(ufp_pool_resident_split(NULL, &a, &b), -EINVAL);
	ufp_config c;
	t_config(&c, 1, 1 * MIB);
	c.fill_mode = (ufp_fill_mode)7;
	ufp_pool *p = NULL;
	cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL);
	c.fill_mode = UFP_FILL_AUTO;
	c.backend = UFP_BACKEND_COW;
	p = t_pool(&c);
	cr_assert_eq(ufp_pool_fill_mode(p, NULL), -EINVAL);
	cr_assert_eq(ufp_pool_resident_split(p, &a, NULL), -EINVAL);
	cr_assert_eq(ufp_pool_resident_split(p, NULL, &b), -EINVAL);
	cr_assert_eq(ufp_pool_fill_mode(p, &mode), 0);
	cr_assert_eq(mode, UFP_FILL_AUTO, "COW has no handler");
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* ---- working-set prefetch ------------------------------------------------ */

/* A cold start after a learning one gets its set mapped ahead; every page
 * still holds exactly the image's bytes. */
Test(prefetch, prefetched_pages_hold_the_image)
{
	const size_t page = t_page();
	ufp_pool *p = minor_pool(1, 2 * MIB, 0);
	struct mod a, b;
	mod_make(p, &a, 1 * MIB, 21);
	mod_make(p, &b, 1 * MIB, 22);
	for (int round = 0; round < 6; round++) {
		struct mod *md = round % 2 ? &b : &a;
		ufp_memory *mem = alloc_ok(p, md);
		const volatile unsigned char *v = ufp_memory_base(mem);
		uint64_t x = 7;
		for (int k = 0; k < 64; k++) /* a fixed scattered set */
			(void)v[(t_rand(&x) % (md->bytes / page)) * page];
		usleep(20000); /* let the prefetch run */
		cr_assert_eq(memcmp((const void *)v, md->ref, md->bytes), 0,
			     "round %d: not the image", round);
		/* writes to pages only the prefetch mapped (no handler
		 * fault) are reset like any other */
		memset(ufp_memory_base(mem), 0xee, md->bytes);
		cr_assert_eq(ufp_memory_free(mem), 0);
		mem = alloc_ok(p, md); /* warm: the same slot */
		cr_assert_eq(memcmp(ufp_memory_base(mem), md->ref, md->bytes),
			     0, "round %d: a write survived the reset", round);
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	ufp_stats st = t_stats(p);
	cr_assert_eq(st.prefetch_learns, 2);
	cr_assert_eq(st.prefetch_starts, 4);
	cr_assert_gt(st.pages_prefetched, 0);
	drop_both_destroy(p, &a, &b);
}

/* The default keep (UFP_KEEP_AUTO): a slot keeps, privately, exactly the
 * pages its last memory modified, restored to the image, so the next
 * memory writes them again without a fault; pages restored earlier and
 * left alone since go back to the page cache. */
Test(minor, default_keep_holds_what_the_last_memory_wrote)
{
	const size_t page = t_page();
	ufp_config c;
	minor_config(&c, 1, 1 * MIB);
	cr_assert_eq(c.keep_resident_bytes, UFP_KEEP_AUTO);
	ufp_pool *p = t_pool(&c);
	struct mod md;
	mod_make(p, &md, 512 * KIB, 31);
	ufp_memory *mem = alloc_ok(p, &md);
	unsigned char *base = ufp_memory_base(mem);
	read_all(mem);
	for (int k = 0; k < 8; k++)
		base[k * 4 * page] ^= 0x33;
	cr_assert_eq(ufp_memory_free(mem), 0);
	cr_assert_eq(categories(p, base, 1 * MIB).anon, 8);
	cr_assert_eq(t_stats(p).idle_resident_bytes, 8 * page);

	/* the same pages again: no fault at all, not even copy-on-write */
	ufp_stats s0 = t_stats(p);
	mem = alloc_ok(p, &md);
	cr_assert_eq(memcmp(base, md.ref, md.bytes), 0);
	for (int k = 0; k < 4; k++)
		base[k * 4 * page] ^= 0x44;
	for (int k = 0; k < 2; k++)
		base[(100 + k) * page] ^= 0x55; /* two new ones */
	ufp_stats s1 = t_stats(p);
	cr_assert_eq(s1.faults - s0.faults, 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	/* kept: the 4 + 2 it modified; the 4 it left alone were dropped */
	struct cats cs = categories(p, base, 1 * MIB);
	cr_assert_eq(cs.anon, 6, "%llu private pages",
		     (unsigned long long)cs.anon);
	cr_assert_eq(cs.file, md.bytes / page - 6);
	cr_assert_eq(t_stats(p).idle_resident_bytes, 6 * page);
	mem = alloc_ok(p, &md);
	cr_assert_eq(memcmp(base, md.ref, md.bytes), 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* Wait until slot i has no prefetch work left (the handler thread maps
 * it in steps); bounded. */
static void prefetch_settle(ufp_pool *p, uint32_t i)
{
	for (int k = 0; k < 2000 && ufpi_prefetch_pending(&p->slots, i); k++)
		usleep(1000);
	cr_assert_not(ufpi_prefetch_pending(&p->slots, i),
		      "prefetch of slot %u never finished", i);
}

/* Learn a's set (read every page) with a cold start, then leave the slot
 * to b, so that a's next memory is a prefetched cold start. */
static void learn_then_switch(ufp_pool *p, struct mod *a, struct mod *b)
{
	ufp_memory *mem = alloc_ok(p, a);
	read_all(mem);
	cr_assert_eq(ufp_memory_free(mem), 0);
	alloc_free(p, b);
}

/* A page the memory wrote before the prefetch reached it keeps the
 * written bytes: UFFDIO_CONTINUE never replaces a present page. Whether a
 * write beats the handler thread is up to the scheduler, so after the
 * writes the test sends the prefetch over the whole set once more (white
 * box: the slot's prefetch position back to 0, the doorbell rung): every
 * written page is then reached after its write. */
Test(prefetch, never_overwrites_what_the_memory_wrote_first)
{
	const size_t page = t_page();
	ufp_pool *p = minor_pool(1, 4 * MIB, 0);
	struct mod a, b;
	mod_make(p, &a, 4 * MIB, 41);
	mod_make(p, &b, 4 * MIB, 42);
	learn_then_switch(p, &a, &b);
	for (int round = 0; round < 4; round++) {
		ufp_memory *mem = alloc_ok(p, &a);
		uint32_t i = ufp_memory_slot(mem);
		unsigned char *base = ufp_memory_base(mem);
		for (uint64_t k = 0; k < 64; k += 2)
			base[(a.bytes / page - 1 - k) * page] = 0xe1;
		prefetch_settle(p, i);
		ufp_stats s0 = t_stats(p);
		struct ufpi_slot *slot = &p->slots.slot[i];
		pthread_mutex_lock(&slot->lock);
		cr_assert(ufpi_prefetch_rewind_locked(&p->slots, i, slot->gen));
		pthread_mutex_unlock(&slot->lock);
		cr_assert_eq(ufpi_os_eventfd_signal(p->slots.wake_efd[0]), 0);
		prefetch_settle(p, i);
		ufp_stats s1 = t_stats(p);
		cr_assert_geq(s1.prefetch_raced - s0.prefetch_raced, 32,
			      "the prefetch did not go over the written pages");
		for (uint64_t k = 0; k < 64; k += 2) {
			uint64_t pg = a.bytes / page - 1 - k;
			cr_assert_eq(base[pg * page], 0xe1,
				     "round %d: page %llu lost its write",
				     round, (unsigned long long)pg);
			base[pg * page] = a.ref[pg * page];
		}
		cr_assert_eq(memcmp(base, a.ref, a.bytes), 0);
		cr_assert_eq(ufp_memory_free(mem), 0);
		alloc_free(p, &b); /* the next a is cold again */
	}
	drop_both_destroy(p, &a, &b);
}

/* Prefetch of a memory freed (and of a module dropped) right away stops:
 * the next memory in the slot, of another module, holds only its own
 * image, byte for byte, after any prefetch work has settled. */
Test(prefetch, stops_when_the_slot_changes_hands)
{
	ufp_pool *p = minor_pool(1, 4 * MIB, 0);
	struct mod a, b;
	mod_make(p, &a, 4 * MIB, 43);
	mod_make(p, &b, 2 * MIB, 44);
	learn_then_switch(p, &a, &b);
	learn_then_switch(p, &b, &a);
	for (int round = 0; round < 20; round++) {
		struct mod *x = round % 2 ? &b : &a, *y = round % 2 ? &a : &b;
		ufp_memory *mem = alloc_ok(p, x); /* prefetch starts */
		cr_assert_eq(ufp_memory_free(mem), 0);
		mem = alloc_ok(p, y); /* another module, mid-prefetch */
		prefetch_settle(p, ufp_memory_slot(mem));
		cr_assert_eq(memcmp(ufp_memory_base(mem), y->ref, y->bytes), 0,
			     "round %d: not the new module's image", round);
		const unsigned char *rest =
			(unsigned char *)ufp_memory_base(mem) + y->bytes;
		for (uint64_t o = 0; o < ufp_memory_size(mem) - y->bytes; o++)
			cr_assert_eq(rest[o], 0, "round %d: byte %llu", round,
				     (unsigned long long)(y->bytes + o));
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	/* a drop mid-prefetch: the purge, then another module */
	alloc_free(p, &a);
	mod_drop(&a);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	ufp_memory *mem = alloc_ok(p, &b);
	prefetch_settle(p, ufp_memory_slot(mem));
	cr_assert_eq(memcmp(ufp_memory_base(mem), b.ref, b.bytes), 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	mod_drop(&b);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* A recorded set goes with its module: after drop + quiesce the image
 * (its view of the memfd, its set) is gone; LeakSanitizer checks the set's
 * array in the debug build. */
Test(prefetch, the_set_goes_with_the_module)
{
	ufp_pool *p = minor_pool(1, 2 * MIB, 0);
	struct mod a, b;
	mod_make(p, &a, 1 * MIB, 45);
	mod_make(p, &b, 1 * MIB, 46);
	learn_then_switch(p, &a, &b);
	pthread_mutex_lock(&a.m->image->wset_lock);
	uint32_t runs = a.m->image->nwset;
	pthread_mutex_unlock(&a.m->image->wset_lock);
	cr_assert_gt(runs, 0, "nothing was learned");
	const void *view = a.m->image->data;
	mod_drop(&a);
	cr_assert_eq(ufp_pool_quiesce(p), 0);
	cr_assert_eq(t_is_mapped(view), 0, "the dropped image is still there");
	mod_drop(&b);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* prefetch = OFF is the behaviour without prefetch: no learning (windows
 * shrink to fault_around_min_bytes, not to one page), nothing mapped
 * ahead, every cold start faults its pages in. */
static ufp_stats scattered_cold_starts(ufp_prefetch pf, uint64_t max_bytes)
{
	const size_t page = t_page();
	ufp_config c;
	minor_config(&c, 1, 2 * MIB);
	c.prefetch = pf;
	if (max_bytes != UINT64_MAX)
		c.prefetch_max_bytes = max_bytes;
	ufp_pool *p = t_pool(&c);
	struct mod a, b;
	mod_make(p, &a, 2 * MIB, 47);
	mod_make(p, &b, 2 * MIB, 48);
	for (int round = 0; round < 6; round++) {
		ufp_memory *mem = alloc_ok(p, round % 2 ? &b : &a);
		const volatile unsigned char *v = ufp_memory_base(mem);
		for (uint64_t pg = 3; pg < 2 * MIB / page; pg += 37)
			(void)v[pg * page]; /* isolated faults */
		cr_assert_eq(ufp_memory_free(mem), 0);
	}
	ufp_stats st = t_stats(p);
	drop_both_destroy(p, &a, &b);
	return st;
}

Test(prefetch, off_is_the_behaviour_without_it)
{
	ufp_stats off = scattered_cold_starts(UFP_PREFETCH_OFF, UINT64_MAX);
	ufp_stats on = scattered_cold_starts(UFP_PREFETCH_AUTO, UINT64_MAX);
	cr_assert_eq(off.prefetch_learns + off.prefetch_starts +
			     off.pages_prefetched + off.prefetch_faults,
		     0);
	cr_assert_eq(on.prefetch_learns, 2);
	cr_assert_eq(on.prefetch_starts, 4);
	cr_assert_gt(on.pages_prefetched, 0);
	/* without prefetch every cold start faults; with it only the two
	 * learning ones do (the set covers what they touched) */
	cr_assert_gt(off.faults, 2 * on.faults, "faults: off %llu, on %llu",
		     (unsigned long long)off.faults,
		     (unsigned long long)on.faults);
}

/* prefetch_max_bytes bounds the set recorded per module (and so what a
 * cold start maps ahead); 0 turns prefetch off; it must be a page
 * multiple, and prefetch a known value. */
Test(prefetch, max_bytes_bounds_the_set_and_0_is_off)
{
	const size_t page = t_page();
	ufp_stats zero = scattered_cold_starts(UFP_PREFETCH_AUTO, 0);
	cr_assert_eq(zero.prefetch_learns + zero.prefetch_starts +
			     zero.pages_prefetched,
		     0);
	ufp_stats four = scattered_cold_starts(UFP_PREFETCH_AUTO, 4 * page);
	cr_assert_eq(four.prefetch_starts, 4);
	cr_assert_gt(four.pages_prefetched, 0);
	cr_assert_leq(four.pages_prefetched, 4 * four.prefetch_starts,
		      "%llu pages prefetched by %llu starts of a 4-page set",
		      (unsigned long long)four.pages_prefetched,
		      (unsigned long long)four.prefetch_starts);
	ufp_config c;
	ufp_pool *p = NULL;
	minor_config(&c, 1, 2 * MIB);
	c.prefetch_max_bytes = page + 1;
	cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL);
	minor_config(&c, 1, 2 * MIB);
	c.prefetch = (ufp_prefetch)7;
	cr_assert_eq(ufp_pool_create(&c, &p), -EINVAL);
	cr_assert_null(p);
}

/* UFP_KEEP_AUTO keeps at most 1 MiB per slot: a memory written everywhere
 * is dropped beyond it (not copied back whole at every free), and the zero
 * part it wrote is not mapped again page by page. */
Test(minor, default_keep_is_bounded)
{
	const size_t page = t_page();
	ufp_config c;
	minor_config(&c, 1, 8 * MIB);
	ufp_pool *p = t_pool(&c);
	if (p->pagemap_fd < 0)
		t_skip("no PAGEMAP_SCAN (Linux 6.7)");
	struct mod md;
	mod_make(p, &md, 2 * MIB, 51);
	ufp_memory *mem = alloc_sized(p, &md, 8 * MIB);
	unsigned char *base = ufp_memory_base(mem);
	memset(base, 0x6b, 8 * MIB); /* image and zero part, every page */
	cr_assert_eq(ufp_memory_free(mem), 0);
	cr_assert_eq(t_stats(p).idle_resident_bytes, 1 * MIB);
	struct cats cs = categories(p, base, 8 * MIB);
	cr_assert_eq(cs.anon, 1 * MIB / page, "%llu private pages",
		     (unsigned long long)cs.anon);
	/* the image's dropped pages are page-cache pages again, the zero
	 * part is left unmapped */
	cr_assert_eq(cs.file, (2 * MIB - 1 * MIB) / page);
	cr_assert_eq(cs.zero, 0);
	mem = alloc_sized(p, &md, 8 * MIB);
	cr_assert_eq(memcmp(base, md.ref, md.bytes), 0);
	for (uint64_t o = md.bytes; o < 8 * MIB; o += 4096)
		cr_assert_eq(base[o], 0);
	cr_assert_eq(ufp_memory_free(mem), 0);
	mod_drop(&md);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}

/* A write fault in the zero part (no image data) gets private pages of
 * zeros at once for its run of the window: the write does not fault a
 * second time to copy the zero page (issue 14: a memory written
 * everywhere took two faults per page). Counted with the thread's own
 * minor faults. */
static long thread_minflt(void)
{
	struct rusage ru;
	cr_assert_eq(getrusage(RUSAGE_THREAD, &ru), 0);
	return ru.ru_minflt;
}

Test(handler_write, a_write_to_the_zero_part_faults_once)
{
	const size_t page = t_page();
	ufp_config c;
	t_config(&c, 1, 4 * MIB);
	c.backend = UFP_BACKEND_UFFD;
	c.fault_around_bytes = c.fault_around_max_bytes = 64 * KIB;
	ufp_pool *p = t_pool(&c);
	ufp_memory *mem = alloc_sized(p, NULL, 4 * MIB);
	volatile unsigned char *b = ufp_memory_base(mem);
	(void)b[0]; /* warm up the code paths */
	ufp_stats s0 = t_stats(p);
	long f0 = thread_minflt();
	for (uint64_t pg = 0; pg < 64 * KIB / page; pg++)
		b[1 * MIB + pg * page] = 0x5c; /* one fresh window */
	long f1 = thread_minflt();
	ufp_stats s1 = t_stats(p);
	/* the window halves (a jump) then doubles (sequential): two
	 * handler faults fill the 16 pages, writable; before, each of the
	 * 16 writes then faulted again to copy the zero page */
	cr_assert_leq(s1.faults - s0.faults, 2, "handler faults %llu",
		      (unsigned long long)(s1.faults - s0.faults));
	cr_assert_leq(f1 - f0, 8, "%ld page faults for %zu written pages",
		      f1 - f0, (size_t)(64 * KIB / page));
	/* a read still maps the shared zero page: nothing private */
	(void)b[2 * MIB];
	ufp_stats s2 = t_stats(p);
	cr_assert_eq(s2.faults - s1.faults, 1);
	uint64_t priv = 0, shared = 0;
	cr_assert_eq(ufp_pool_resident_split(p, &priv, &shared), 0);
	cr_assert_eq(priv, (s1.pages_zeroed - s0.pages_zeroed) * page,
		     "private %llu: more than the pages a write filled",
		     (unsigned long long)priv);
	cr_assert_eq(ufp_memory_free(mem), 0);
	cr_assert_eq(ufp_pool_destroy(p), 0);
}
