/* SPDX-License-Identifier: MIT */
/*
 * floor.c - the bulk-copy floor, measured once per run and shared by every
 * scenario that reports cold figures against it: one UFFDIO_COPY of
 * UFPB_FLOOR_BYTES (every page non-zero) into a freshly registered
 * anonymous range, timing the ioctl only: the copies a cold touch needs,
 * with no fault round trips. Two costs it leaves out are measured apart,
 * since every cold touch pays them and on a virtual machine they can
 * dominate: the first user access to each page it installed, in
 * sequential and in shuffled order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "internal.h"

#define FLOOR_MAX_SAMPLES 8 /* per order */

struct fsrc {
	const unsigned char *src;
	size_t bytes, npages, page;
	uint64_t byte_sum; /* first byte of every page */
};

/* One bulk copy of the whole source into a fresh registered range, timed
 * alone; then one byte read per page in `order`, timed apart. */
static int floor_once(const struct fsrc *w, int fd, const uint32_t *order,
		      double *ns, double *cpu, double *read_ns)
{
	void *dst;
	int err = ufpi_os_reserve(w->bytes, &dst);
	if (err)
		return err;
	err = ufpi_os_protect(dst, w->bytes, PROT_READ | PROT_WRITE);
	if (!err)
		err = ufpi_uffd_register(fd, dst, w->bytes, UFPI_REG_MISSING,
					 NULL);
	if (!err) {
		size_t off = 0;
		uint64_t c0 = ufpb_cpu_ns(), t0 = ufpb_now_ns();
		while (off < w->bytes) {
			size_t done = 0;
			err = ufpi_uffd_copy(fd, (unsigned char *)dst + off,
					     w->src + off, w->bytes - off,
					     false, &done);
			off += done;
			/* a partial copy is EAGAIN with progress: go on */
			if (err == -EAGAIN && done)
				err = 0;
			if (err)
				break;
		}
		*ns = (double)(ufpb_now_ns() - t0) / (double)w->npages;
		*cpu = (double)(ufpb_cpu_ns() - c0) / (double)w->npages;
	}
	if (!err) {
		const volatile unsigned char *base = dst;
		uint64_t sum = 0;
		uint64_t t0 = ufpb_now_ns();
		for (size_t i = 0; i < w->npages; i++)
			sum += base[(size_t)order[i] * w->page];
		*read_ns = (double)(ufpb_now_ns() - t0) / (double)w->npages;
		/* every page present and right, or no floor at all */
		if (sum != w->byte_sum)
			err = -EIO;
	}
	/* unmapping also unregisters the range */
	int e2 = ufpi_os_unmap(dst, w->bytes);
	return err ? err : e2;
}

static int measure(struct fsrc *w, int reps, struct ufpb_floor *f)
{
	uint32_t *seq = malloc(w->npages * sizeof(uint32_t));
	uint32_t *perm = malloc(w->npages * sizeof(uint32_t));
	double copy[2 * FLOOR_MAX_SAMPLES], cpu[2 * FLOOR_MAX_SAMPLES];
	double rseq[FLOOR_MAX_SAMPLES], rrnd[FLOOR_MAX_SAMPLES], warm[3];
	int fd = -1, via_dev, n = 0;
	int err =
		seq && perm ? ufpi_uffd_open(0, &fd, NULL, &via_dev) : -ENOMEM;

	if (!err) {
		for (size_t p = 0; p < w->npages; p++)
			seq[p] = (uint32_t)p;
		ufpb_shuffle(perm, w->npages, 1);
		/* warm-up: page tables, the source, the code paths */
		err = floor_once(w, fd, seq, &warm[0], &warm[1], &warm[2]);
	}
	for (; n < reps && !err; n++) {
		err = floor_once(w, fd, seq, &copy[2 * n], &cpu[2 * n],
				 &rseq[n]);
		if (!err)
			err = floor_once(w, fd, perm, &copy[2 * n + 1],
					 &cpu[2 * n + 1], &rrnd[n]);
	}
	if (fd >= 0)
		ufpi_os_close(fd);
	if (!err) {
		f->copy_ns = ufpb_median(copy, 2 * (size_t)n);
		f->copy_cpu = ufpb_median(cpu, 2 * (size_t)n);
		f->read_seq = ufpb_median(rseq, (size_t)n);
		f->read_rnd = ufpb_median(rrnd, (size_t)n);
		f->samples = 2 * (size_t)n;
	}
	free(seq);
	free(perm);
	return err;
}

const struct ufpb_floor *ufpb_floor(struct ufpb *b)
{
	struct fsrc w = {.bytes = UFPB_FLOOR_BYTES, .page = ufpi_page_size()};
	unsigned char *src = NULL;

	if (b->have_floor)
		return b->floor.err ? NULL : &b->floor;
	b->have_floor = 1;
	b->floor.bytes = w.bytes;
	w.npages = w.bytes / w.page;
	b->floor.err = ufpi_os_map_anon(w.bytes, (void **)&src);
	if (!b->floor.err) {
		for (size_t p = 0; p < w.npages; p++) {
			unsigned char v = (unsigned char)(1 + p % 251);
			memset(src + p * w.page, v, w.page);
			w.byte_sum += v;
		}
		w.src = src;
		int reps = b->reps < FLOOR_MAX_SAMPLES ? b->reps
						       : FLOOR_MAX_SAMPLES;
		b->floor.err = measure(&w, reps < 3 ? 3 : reps, &b->floor);
		ufpi_os_unmap(src, w.bytes);
	}
	if (b->floor.err) {
		fprintf(stderr, "ufp-bench: no bulk-copy floor: %s\n",
			ufp_strerror(b->floor.err));
		return NULL;
	}
	ufpb_emit(b, "floor",
		  "\"copy_ns_per_page\": %.1f, \"copy_cpu_ns_per_page\": %.1f, "
		  "\"first_read_seq_ns_per_page\": %.1f, "
		  "\"first_read_random_ns_per_page\": %.1f, \"bytes\": %zu, "
		  "\"samples\": %zu",
		  b->floor.copy_ns, b->floor.copy_cpu, b->floor.read_seq,
		  b->floor.read_rnd, b->floor.bytes, b->floor.samples);
	return &b->floor;
}
