/* SPDX-License-Identifier: MIT */
/*
 * probe.c - kernel features, probed once per process at the first pool
 * creation. Decisions are made from what the running kernel does, never
 * from its version: userfaultfd features from the API handshake, the
 * PAGEMAP_SCAN ioctl by calling it, io_uring opcodes from
 * io_uring_get_probe(), process_madvise(MADV_DONTNEED) by trying it on a
 * page of our own.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>

#include "os.h"
#include "probe.h"
#include "uffd.h"
#include "kernel_uapi.h"

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static bool probed;
static struct ufpi_features feat;

static int no_region(void *arg, uint64_t start, uint64_t end, uint64_t cats)
{
	(void)arg;
	(void)start;
	(void)end;
	(void)cats;
	return 0;
}

static bool probe_pagemap_scan(void)
{
	int fd = ufpi_os_pagemap_open();
	void *p;
	bool ok = false;

	if (fd < 0)
		return false;
	if (ufpi_os_map_anon(ufpi_page_size(), &p) == 0) {
		const struct ufpi_pm_query q = {.mask = PAGE_IS_PRESENT,
						.ret = PAGE_IS_PRESENT};
		ok = ufpi_os_pagemap_scan(fd, p, ufpi_page_size(), &q,
					  no_region, NULL) == 0;
		ufpi_os_unmap(p, ufpi_page_size());
	}
	ufpi_os_close(fd);
	return ok;
}

/* process_madvise(2) accepts MADV_DONTNEED from Linux 6.13; EINVAL before. */
static int probe_process_madvise(void)
{
	int pidfd, err = ufpi_os_pidfd_self(&pidfd);
	void *p;
	if (err)
		return err;
	err = ufpi_os_map_anon(ufpi_page_size(), &p);
	if (err) {
		ufpi_os_close(pidfd);
		return err;
	}
	*(volatile char *)p = 1;
	struct iovec iov = {.iov_base = p, .iov_len = ufpi_page_size()};
	long r = ufpi_os_process_dontneed(pidfd, &iov, 1);
	int ok = r == (long)ufpi_page_size() && *(volatile char *)p == 0;
	ufpi_os_unmap(p, ufpi_page_size());
	ufpi_os_close(pidfd);
	if (r == -EINVAL || r == -ENOSYS)
		return 0;
	return r < 0 ? (int)r : ok;
}

static void probe_locked(void)
{
	if (!probed) {
		struct ufpi_features f = {0};
		f.uffd_err = ufpi_uffd_probe(&f.uffd_features, &f.uffd_via_dev);
		if (!f.uffd_err) {
			f.poison = f.uffd_features & UFFD_FEATURE_POISON;
			f.wp_async = f.uffd_features & UFFD_FEATURE_WP_ASYNC;
			f.minor_shmem =
				f.uffd_features & UFFD_FEATURE_MINOR_SHMEM;
		}
		f.pagemap_scan = probe_pagemap_scan();
		f.uring_madvise = ufpi_os_uring_has_madvise();
		f.process_madvise = probe_process_madvise();
		feat = f;
		/* EMFILE, ENOMEM and the like say nothing about the kernel:
		 * only a definite answer is kept for the next pool */
		probed = !f.uffd_err || f.uffd_err == -EPERM ||
			 f.uffd_err == -ENOSYS || f.uffd_err == -EACCES;
	}
}

/* The pointer stays valid, but a later probe (after ufpi_features_reset)
 * rewrites what it points to: readers that may race with one copy it
 * with ufpi_features_copy instead. */
const struct ufpi_features *ufpi_features_probe(void)
{
	pthread_mutex_lock(&probe_lock);
	probe_locked();
	pthread_mutex_unlock(&probe_lock);
	return &feat;
}

void ufpi_features_copy(struct ufpi_features *out)
{
	pthread_mutex_lock(&probe_lock);
	probe_locked();
	*out = feat;
	pthread_mutex_unlock(&probe_lock);
}

void ufpi_features_reset(void)
{
	pthread_mutex_lock(&probe_lock);
	probed = false;
	pthread_mutex_unlock(&probe_lock);
}
