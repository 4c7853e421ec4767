/* SPDX-License-Identifier: MIT */
/*
 * floor.c - the bulk-copy floor: what it costs the kernel to install `len`
 * bytes with one UFFDIO_COPY into a registered, untouched range. No fault
 * path can beat it, so cold figures are reported as ratios to it.
 */
#include <errno.h>
#include <sys/mman.h>

#include "bench.h"
#include "internal.h"

int ufpb_copy_floor(const void *src, size_t len, double *ns_out)
{
	void *dst;
	int fd, err;
	size_t done;

	err = ufpi_uffd_open(0, &fd, NULL, &(int){0});
	if (err)
		return err;
	err = ufpi_os_reserve(len, &dst);
	if (err)
		goto out_fd;
	err = ufpi_os_protect(dst, len, PROT_READ | PROT_WRITE);
	if (!err)
		err = ufpi_uffd_register(fd, dst, len, false, NULL);
	if (!err) {
		uint64_t t0 = ufpb_now_ns();
		err = ufpi_uffd_copy(fd, dst, src, len, false, &done);
		*ns_out = (double)(ufpb_now_ns() - t0);
	}
	ufpi_os_unmap(dst, len);
out_fd:
	ufpi_os_close(fd);
	return err;
}
