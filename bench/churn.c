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
 * Beside the pool's own bytes, the process's residency after each round
 * (resid.c: Pss, RssAnon, RssShmem, ...) as deltas against the process
 * before the mode's pool was created.
 *
 *   ufp-bench [--json] [--quick] [--reps N] churn [--rounds N] [--slots N]
 *             [--csv FILE]
 *
 * --csv writes "round,resident_on,resident_off" (bytes) for bench/plot.sh.
 * --reps N counts for the break-even that follows (breakeven.c).
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
	uint64_t resident;	/* ufp_pool_resident_bytes after drop+quiesce */
	uint64_t rss;		/* the process's resident set (images too) */
	uint32_t images_held;	/* distinct images referenced by unused slots */
	struct ufpb_resid proc; /* the process's, against before the pool */
};

struct churn_run {
	struct churn_round *r;
	int n;
	uint64_t baseline;
	ufp_stats st;
	int err;
};

struct churn_args {
	int rounds;
	uint32_t slots;
	const char *csv;
};

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

/* A module of a CHURN_IMAGE image, non-zero on every page; the seed makes
 * the image (each round's module is a new one). */
static int make_module(ufp_pool *pool, uint64_t seed, ufp_module **m)
{
	unsigned char *img = ufpb_image_bytes(CHURN_IMAGE, seed);
	if (!img)
		return -ENOMEM;
	int err = ufpb_module(pool, img, CHURN_IMAGE, CHURN_IMAGE, m);
	free(img);
	return err;
}

/* An instance of a wave reads every page and writes one byte per page. */
static void touch_all(unsigned char *base, uint32_t i, const void *arg)
{
	(void)arg;
	ufpb_touch(base, CHURN_IMAGE / ufpi_page_size(), 1000,
		   (unsigned char)i);
}

static int wave(ufp_pool *pool, ufp_module *m, uint32_t k)
{
	ufp_memory *mem[KMAX];
	return ufpb_wave(pool, m, k, mem, touch_all, NULL);
}

static int open_pool(uint32_t slots, ufp_pool **pool)
{
	ufp_config c;
	ufpb_affine_config(slots, CHURN_IMAGE, &c);
	return ufp_pool_create(&c, pool);
}

/* One round: a new module serves WAVES waves of seeded-random size, the
 * host one wave; the module is dropped and the pool quiesced. */
static int round_of(ufp_pool *pool, ufp_module *host, int r, uint64_t *rng)
{
	ufp_module *m;
	int err = make_module(pool, 1000 + (uint64_t)r, &m);
	if (err)
		return err;
	for (int w = 0; w < WAVES && !err; w++)
		err = wave(pool, m,
			   KMIN + (uint32_t)(ufpb_splitmix(rng) %
					     (KMAX - KMIN + 1)));
	if (!err)
		err = wave(pool, host, KMIN);
	int e = ufp_module_drop(m);
	if (!err)
		err = e;
	if (!err)
		err = ufp_pool_quiesce(pool);
	return err;
}

/* What the pool and the process hold after a round (the pool quiet). */
static int record(ufp_pool *pool, const struct ufpb_resid *base,
		  struct churn_round *cr)
{
	struct ufpb_resid now;
	int err = ufp_pool_resident_bytes(pool, &cr->resident);
	if (!err)
		err = ufpb_resid_read(pool, &now);
	if (err)
		return err;
	ufpb_resid_sub(&cr->proc, &now, base);
	cr->rss = process_rss();
	cr->images_held = images_held(pool);
	return 0;
}

static void run_mode(const struct churn_mode *md, uint32_t slots, int rounds,
		     struct churn_run *out)
{
	ufp_pool *pool = NULL;
	ufp_module *host = NULL;
	struct ufpb_resid base;
	uint64_t rng = 0xc4a7;

	out->n = 0;
	out->err = ufpb_resid_read(NULL, &base);
	if (!out->err)
		out->err = open_pool(slots, &pool);
	if (out->err)
		return;
	ufpi_hook_purge_off(md->purge ? NULL : pool);
	out->err = ufp_pool_resident_bytes(pool, &out->baseline);
	if (!out->err)
		out->err = make_module(pool, 1, &host);
	for (int r = 0; r < rounds && !out->err; r++) {
		out->err = round_of(pool, host, r, &rng);
		if (!out->err)
			out->err = record(pool, &base, &out->r[out->n]);
		if (!out->err)
			out->n++;
	}
	out->st.size = sizeof(out->st);
	UFPI_IGNORE(ufp_pool_stats(pool, &out->st));
	ufpb_pool_close(pool, &host, 1);
	ufpi_hook_purge_off(NULL); /* the next pool may get this address */
}

static int parse(struct ufpb *b, int argc, char **argv, struct churn_args *a)
{
	for (int i = 0; i < argc; i++) {
		if (ufpb_common_arg(b, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			a->rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
			a->slots = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
			a->csv = argv[++i];
		else {
			fprintf(stderr, "usage: ufp-bench churn [--quick] "
					"[--json] [--reps N] [--rounds N] "
					"[--slots N] [--csv FILE]\n");
			return 2;
		}
	}
	if (b->quick && a->rounds > 20)
		a->rounds = 20;
	if (a->rounds < 1 || a->slots < KMAX + KMIN) {
		fprintf(stderr,
			"ufp-bench churn: need --rounds >= 1 and "
			"--slots >= %d\n",
			KMAX + KMIN);
		return 2;
	}
	return 0;
}

static void emit_rounds(struct ufpb *b, const struct churn_run *run)
{
	char js[512];
	for (size_t k = 0; k < NMODES; k++)
		for (int r = 0; r < run[k].n; r++) {
			const struct churn_round *cr = &run[k].r[r];
			ufpb_emit(b, "churn",
				  "\"mode\": \"%s\", \"round\": %d, "
				  "\"resident_bytes\": %llu, \"rss_bytes\": "
				  "%llu, "
				  "\"images_held\": %u, \"baseline\": %llu, %s",
				  modes[k].name, r + 1,
				  (unsigned long long)cr->resident,
				  (unsigned long long)cr->rss, cr->images_held,
				  (unsigned long long)run[k].baseline,
				  ufpb_resid_json(&cr->proc, "idle", js,
						  sizeof(js)));
		}
}

/* One mode's summary row; its final resident MiB (0 if it failed). */
static double summary_row(struct ufpb *b, size_t k, const struct churn_run *cr)
{
	char js[512];
	if (cr->err || !cr->n) {
		ufpb_say(b, "  %-10s failed: %s\n", modes[k].name,
			 ufp_strerror(cr->err));
		return 0;
	}
	const struct churn_round *last = &cr->r[cr->n - 1];
	uint64_t max = 0;
	double sum = 0;
	for (int r = 0; r < cr->n; r++) {
		if (cr->r[r].resident > max)
			max = cr->r[r].resident;
		sum += (double)cr->r[r].resident;
	}
	double final_mib = (double)last->resident / (double)MIB;
	ufpb_say(b, "  %-10s %12.2f %12.2f %12.2f %10u %8llu %12llu\n",
		 modes[k].name, final_mib, (double)max / (double)MIB,
		 sum / cr->n / (double)MIB, last->images_held,
		 (unsigned long long)cr->st.purges,
		 (unsigned long long)cr->st.slots_purged);
	ufpb_emit(b, "churn_summary",
		  "\"mode\": \"%s\", \"rounds\": %d, "
		  "\"final_resident_bytes\": %llu, "
		  "\"max_resident_bytes\": %llu, "
		  "\"mean_resident_bytes\": %.0f, "
		  "\"final_images_held\": %u, \"purges\": %llu, "
		  "\"slots_purged\": %llu, %s",
		  modes[k].name, cr->n, (unsigned long long)last->resident,
		  (unsigned long long)max, sum / cr->n, last->images_held,
		  (unsigned long long)cr->st.purges,
		  (unsigned long long)cr->st.slots_purged,
		  ufpb_resid_json(&last->proc, "final", js, sizeof(js)));
	return final_mib;
}

static void print_summary(struct ufpb *b, const struct churn_args *a,
			  const struct churn_run *run)
{
	char cols[160];
	ufpb_say(b, "  %-10s %12s %12s %12s %10s %8s %12s\n", "mode",
		 "final MiB", "max MiB", "mean MiB", "images", "purges",
		 "slots purged");
	double final_mib[NMODES] = {0};
	for (size_t k = 0; k < NMODES; k++)
		final_mib[k] = summary_row(b, k, &run[k]);
	if (final_mib[0] > 0 && final_mib[1] > 0)
		ufpb_say(b,
			 "  => after %d rounds purge keeps %.1fx less "
			 "resident (%.2f vs %.2f MiB; the host's floor is "
			 "what remains with purge on)\n",
			 a->rounds, final_mib[1] / final_mib[0], final_mib[0],
			 final_mib[1]);
	ufpb_say(b, "  images = dropped or live images still referenced by "
		    "unused slots (kept alive by their pages).\n");
	ufpb_say(b, "\n  after the last round (drop + quiesce):\n");
	ufpb_resid_explain(b);
	ufpb_say(b, "  %-10s%s\n", "mode", ufpb_resid_head());
	for (size_t k = 0; k < NMODES; k++)
		if (!run[k].err && run[k].n)
			ufpb_say(b, "  %-10s%s\n", modes[k].name,
				 ufpb_resid_cols(&run[k].r[run[k].n - 1].proc,
						 cols, sizeof(cols)));
}

/* bench/plot.sh's input: resident bytes per round, purge on and off. */
static int write_csv(const char *csv, const struct churn_run *run)
{
	FILE *f = fopen(csv, "w");
	if (!f) {
		fprintf(stderr, "ufp-bench churn: cannot write %s\n", csv);
		return 1;
	}
	fprintf(f, "round,resident_on,resident_off\n");
	int n = run[0].n < run[1].n ? run[0].n : run[1].n;
	for (int r = 0; r < n; r++)
		fprintf(f, "%d,%llu,%llu\n", r + 1,
			(unsigned long long)run[0].r[r].resident,
			(unsigned long long)run[1].r[r].resident);
	fclose(f);
	return 0;
}

int ufpb_churn(struct ufpb *b, int argc, char **argv)
{
	struct churn_args a = {.rounds = 40, .slots = 64};
	int rc = parse(b, argc, argv, &a);
	if (rc)
		return rc;

	struct churn_run run[NMODES];
	memset(run, 0, sizeof(run));
	for (size_t k = 0; k < NMODES; k++) {
		run[k].r = calloc((size_t)a.rounds, sizeof(*run[k].r));
		if (!run[k].r)
			return 1;
		run_mode(&modes[k], a.slots, a.rounds, &run[k]);
	}

	ufpb_say(
		b,
		"churn: %d rounds; each creates a module (256 KiB image), runs "
		"%d waves of %d-%d concurrent instances\n"
		"  across a %u-slot REUSE_AFFINITY pool (keep_resident_bytes "
		"256 KiB), drops it and quiesces;\n"
		"  a long-lived host module serves %d instances per round. "
		"Resident = ufp_pool_resident_bytes after each round.\n\n",
		a.rounds, WAVES, KMIN, KMAX, a.slots, KMIN);
	emit_rounds(b, run);
	print_summary(b, &a, run);

	if (a.csv)
		rc = write_csv(a.csv, run);
	for (size_t k = 0; k < NMODES; k++) {
		if (run[k].err)
			rc = 1;
		free(run[k].r);
	}
	if (!a.csv && ufpb_churn_breakeven(b))
		rc = 1;
	return rc;
}
