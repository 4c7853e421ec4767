/* SPDX-License-Identifier: MIT */
/*
 * churn.c - `ufp-bench churn`: modules are created, instantiated across the
 * pool and dropped, round after round; the pool's resident bytes are
 * recorded after every round, with purge on and with purge disabled
 * (ufpi_hook_purge_off: a benchmark-only hook that restores the
 * behaviour before purge existed, so the difference is what purge saves).
 *
 * One round: a new module (256 KiB image, non-zero on every page) serves
 * WAVES waves of k concurrent instances (k seeded-random in [4, 16]); each
 * instance reads every page and writes one byte per page; then the module
 * is dropped and the pool quiesced. A long-lived host module serves one
 * wave per round as well: its affine slots are a resident floor that purge
 * must leave alone. Pool: 64 slots, REUSE_AFFINITY, keep_resident_bytes =
 * 256 KiB, defaults otherwise. Both modes replay the same seeded sequence.
 *
 * Without purge, a dropped module's pages stay in every slot it used until
 * another module happens to take that slot, and each such slot keeps the
 * dropped image alive too: resident bytes climb to the whole pool. With
 * purge they return to the host's floor after every drop.
 *
 *   ufp-bench [--json] [--quick] churn [--rounds N] [--slots N] [--csv FILE]
 *
 * --csv writes "round,resident_on,resident_off" (bytes) for bench/plot.sh.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define CHURN_IMAGE (256 * KIB)
#define WAVES 3
#define KMIN 4
#define KMAX 16

/*
 * The compared configurations. Issue 6 extends this scenario with the
 * affinity-hit-rate break-even against the COW backend: that belongs here
 * as more modes (a backend field, a target hit rate steering which module
 * each wave instantiates) and one more summary line; the per-round JSON
 * fields (mode, round, resident_bytes) and the CSV columns stay as they
 * are so docs/benchmarks.md and bench/plot.sh keep working.
 */
struct churn_mode {
	const char *name;
	bool purge;
};

static const struct churn_mode modes[] = {
	{"purge_on", true},
	{"purge_off", false},
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

struct churn_round {
	uint64_t resident;    /* ufp_pool_resident_bytes after drop+quiesce */
	uint64_t rss;	      /* the process's resident set (images too) */
	uint32_t images_held; /* distinct images referenced by unused slots */
};

struct churn_run {
	struct churn_round *r;
	int n;
	uint64_t baseline;
	ufp_stats st;
	int err;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t process_rss(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Images still referenced by slots: a dropped module's image lives as long
 * as one slot holds a page of it. Read while the pool is quiet. */
static uint32_t images_held(ufp_pool *pool)
{
	const struct ufpi_image *seen[256];
	uint32_t n = 0, extra = 0;
	for (uint32_t i = 0; i < pool->slots.n; i++) {
		const struct ufpi_image *img = pool->slots.slot[i].image;
		uint32_t k = 0;
		if (!img)
			continue;
		while (k < n && seen[k] != img)
			k++;
		if (k < n)
			continue;
		if (n < sizeof(seen) / sizeof(seen[0]))
			seen[n++] = img;
		else
			extra++;
	}
	return n + extra;
}

static int make_module(ufp_pool *pool, uint64_t seed, ufp_module **m)
{
	unsigned char *img = malloc(CHURN_IMAGE);
	if (!img)
		return -ENOMEM;
	for (uint64_t o = 0; o < CHURN_IMAGE; o++) {
		if (o % 8 == 0)
			splitmix(&seed);
		img[o] = (unsigned char)((seed >> (o % 8 * 8)) | 1);
	}
	ufp_segment seg = {0, img, CHURN_IMAGE};
	int err = ufp_module_create(pool, &seg, 1, CHURN_IMAGE, m);
	free(img);
	return err;
}

/* k instances of m live at once, every page read, one byte per page
 * written, all freed. */
static int wave(ufp_pool *pool, ufp_module *m, uint32_t k)
{
	const size_t page = ufpi_page_size();
	ufp_memory *mem[KMAX];
	uint32_t n = 0;
	int err = 0;

	for (; n < k; n++) {
		err = ufp_memory_alloc(pool, m, 0, &mem[n]);
		if (err)
			break;
		volatile unsigned char *b = ufp_memory_base(mem[n]);
		unsigned char sink = 0;
		for (uint64_t o = 0; o < CHURN_IMAGE; o += page) {
			sink ^= b[o];
			b[o + 1] = (unsigned char)n;
		}
		(void)sink;
	}
	for (uint32_t i = 0; i < n; i++) {
		int e = ufp_memory_free(mem[i]);
		if (!err)
			err = e;
	}
	return err;
}

static void run_mode(const struct churn_mode *md, uint32_t slots, int rounds,
		     struct churn_run *out)
{
	ufp_config c;
	ufp_pool *pool;
	ufp_module *host = NULL;
	uint64_t rng = 0xc4a7;

	out->n = 0;
	ufp_config_init(&c);
	c.slots = slots;
	c.max_memory_bytes = CHURN_IMAGE;
	c.guard_bytes = 64 * KIB;
	c.strategy = UFP_STRATEGY_REUSE_AFFINITY;
	c.keep_resident_bytes = CHURN_IMAGE;
	out->err = ufp_pool_create(&c, &pool);
	if (out->err)
		return;
	ufpi_hook_purge_off(md->purge ? NULL : pool);
	out->err = ufp_pool_resident_bytes(pool, &out->baseline);
	if (!out->err)
		out->err = make_module(pool, 1, &host);

	for (int r = 0; r < rounds && !out->err; r++) {
		ufp_module *m;
		out->err = make_module(pool, 1000 + (uint64_t)r, &m);
		if (out->err)
			break;
		for (int w = 0; w < WAVES && !out->err; w++)
			out->err = wave(pool, m,
					KMIN + (uint32_t)(splitmix(&rng) %
							  (KMAX - KMIN + 1)));
		if (!out->err)
			out->err = wave(pool, host, KMIN);
		int e = ufp_module_drop(m);
		if (!out->err)
			out->err = e;
		if (!out->err)
			out->err = ufp_pool_quiesce(pool);
		struct churn_round *cr = &out->r[out->n];
		if (!out->err)
			out->err = ufp_pool_resident_bytes(pool, &cr->resident);
		if (out->err)
			break;
		cr->rss = process_rss();
		cr->images_held = images_held(pool);
		out->n++;
	}
	out->st.size = sizeof(out->st);
	UFPI_IGNORE(ufp_pool_stats(pool, &out->st));
	if (host)
		UFPI_IGNORE(ufp_module_drop(host));
	UFPI_IGNORE(ufp_pool_destroy(pool));
	ufpi_hook_purge_off(NULL); /* the next pool may get this address */
}

int ufpb_churn(struct ufpb *b, int argc, char **argv)
{
	int rounds = 40;
	uint32_t slots = 64;
	const char *csv = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			b->json = 1;
		else if (!strcmp(argv[i], "--quick"))
			b->quick = 1;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
			slots = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			csv = argv[++i];
		else {
			fprintf(stderr, "usage: ufp-bench churn [--quick] "
					"[--json] [--rounds N] [--slots N] "
					"[--csv FILE]\n");
			return 2;
		}
	}
	if (b->quick && rounds > 20)
		rounds = 20;
	if (rounds < 1 || slots < KMAX + KMIN) {
		fprintf(stderr,
			"ufp-bench churn: need --rounds >= 1 and "
			"--slots >= %d\n",
			KMAX + KMIN);
		return 2;
	}

	struct churn_run run[NMODES];
	memset(run, 0, sizeof(run));
	for (size_t k = 0; k < NMODES; k++) {
		run[k].r = calloc((size_t)rounds, sizeof(*run[k].r));
		if (!run[k].r)
			return 1;
		run_mode(&modes[k], slots, rounds, &run[k]);
	}

	ufpb_say(
		b,
		"churn: %d rounds; each creates a module (256 KiB image), runs "
		"%d waves of %d-%d concurrent instances\n"
		"  across a %u-slot REUSE_AFFINITY pool (keep_resident_bytes "
		"256 KiB), drops it and quiesces;\n"
		"  a long-lived host module serves %d instances per round. "
		"Resident = ufp_pool_resident_bytes after each round.\n\n",
		rounds, WAVES, KMIN, KMAX, slots, KMIN);
	for (size_t k = 0; k < NMODES; k++)
		for (int r = 0; r < run[k].n; r++)
			ufpb_emit(b, "churn",
				  "\"mode\": \"%s\", \"round\": %d, "
				  "\"resident_bytes\": %llu, \"rss_bytes\": "
				  "%llu, "
				  "\"images_held\": %u, \"baseline\": %llu",
				  modes[k].name, r + 1,
				  (unsigned long long)run[k].r[r].resident,
				  (unsigned long long)run[k].r[r].rss,
				  run[k].r[r].images_held,
				  (unsigned long long)run[k].baseline);

	ufpb_say(b, "  %-10s %12s %12s %12s %10s %8s %12s\n", "mode",
		 "final MiB", "max MiB", "mean MiB", "images", "purges",
		 "slots purged");
	double final_mib[NMODES] = {0};
	for (size_t k = 0; k < NMODES; k++) {
		struct churn_run *cr = &run[k];
		if (cr->err || !cr->n) {
			ufpb_say(b, "  %-10s failed: %s\n", modes[k].name,
				 ufp_strerror(cr->err));
			continue;
		}
		uint64_t max = 0;
		double sum = 0;
		for (int r = 0; r < cr->n; r++) {
			if (cr->r[r].resident > max)
				max = cr->r[r].resident;
			sum += (double)cr->r[r].resident;
		}
		final_mib[k] = (double)cr->r[cr->n - 1].resident / (double)MIB;
		ufpb_say(b, "  %-10s %12.2f %12.2f %12.2f %10u %8llu %12llu\n",
			 modes[k].name, final_mib[k], (double)max / (double)MIB,
			 sum / cr->n / (double)MIB,
			 cr->r[cr->n - 1].images_held,
			 (unsigned long long)cr->st.purges,
			 (unsigned long long)cr->st.slots_purged);
		ufpb_emit(b, "churn_summary",
			  "\"mode\": \"%s\", \"rounds\": %d, "
			  "\"final_resident_bytes\": %llu, "
			  "\"max_resident_bytes\": %llu, "
			  "\"mean_resident_bytes\": %.0f, "
			  "\"final_images_held\": %u, \"purges\": %llu, "
			  "\"slots_purged\": %llu",
			  modes[k].name, cr->n,
			  (unsigned long long)cr->r[cr->n - 1].resident,
			  (unsigned long long)max, sum / cr->n,
			  cr->r[cr->n - 1].images_held,
			  (unsigned long long)cr->st.purges,
			  (unsigned long long)cr->st.slots_purged);
	}
	if (final_mib[0] > 0 && final_mib[1] > 0)
		ufpb_say(b,
			 "  => after %d rounds purge keeps %.1fx less "
			 "resident (%.2f vs %.2f MiB; the host's floor is "
			 "what remains with purge on)\n",
			 rounds, final_mib[1] / final_mib[0], final_mib[0],
			 final_mib[1]);
	ufpb_say(b, "  images = dropped or live images still referenced by "
		    "unused slots (kept alive by their pages).\n");

	int rc = 0;
	if (csv) {
		FILE *f = fopen(csv, "w");
		if (!f) {
			fprintf(stderr, "ufp-bench churn: cannot write %s\n",
				csv);
			rc = 1;
		} else {
			fprintf(f, "round,resident_on,resident_off\n");
			int n = run[0].n < run[1].n ? run[0].n : run[1].n;
			for (int r = 0; r < n; r++)
				fprintf(f, "%d,%llu,%llu\n", r + 1,
					(unsigned long long)run[0]
						.r[r]
						.resident,
					(unsigned long long)run[1]
						.r[r]
						.resident);
			fclose(f);
		}
	}
	for (size_t k = 0; k < NMODES; k++) {
		if (run[k].err)
			rc = 1;
		free(run[k].r);
	}
	if (!csv && ufpb_churn_breakeven(b))
		rc = 1;
	return rc;
}
