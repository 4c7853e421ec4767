/* SPDX-License-Identifier: MIT */
/*
 * probe.h - floor 2: the kernel features, probed once per process (probe.c).
 */
#ifndef UFPI_PROBE_H
#define UFPI_PROBE_H

#include "base.h"

/* ---- floor 2: kernel features (probe.c via uffd/uffd.c, os.c) ---------- */

struct ufpi_features {
	int uffd_err;	  /* 0 if a userfaultfd could be opened, else -errno */
	int uffd_via_dev; /* opened through /dev/userfaultfd */
	uint64_t uffd_features; /* UFFD_FEATURE_* offered by the kernel */
	bool poison;		/* UFFDIO_POISON (6.6) */
	bool wp_async;		/* UFFD_FEATURE_WP_ASYNC (6.7) */
	bool pagemap_scan;	/* PAGEMAP_SCAN ioctl (6.7) */
	bool minor_shmem;	/* UFFD_FEATURE_MINOR_SHMEM (5.14) */
	int uring_madvise;	/* 1 yes, 0 no, <0 io_uring unusable (-errno) */
	int process_madvise;	/* 1 if process_madvise accepts MADV_DONTNEED on
				  ourselves, 0 no, <0 -errno */
};

/* Probe once per process (cached, thread-safe). */
const struct ufpi_features *ufpi_features_probe(void);
/* Copy the cached probe (probing first if needed) under its lock: a
 * concurrent re-probe may rewrite it. */
void ufpi_features_copy(struct ufpi_features *out);
/* Forget the cached probe (tests with fault injection). */
void ufpi_features_reset(void);

#endif /* UFPI_PROBE_H */
