/* SPDX-License-Identifier: MIT */
/*
 * uffd.c - userfaultfd: open the fd, API handshake, feature probe,
 * registration, and the fill ioctls. The only place besides lib/os.c that
 * talks to the kernel.
 *
 * Opening: the userfaultfd(2) syscall first, then /dev/userfaultfd
 * (USERFAULTFD_IOC_NEW, Linux 6.1), whose access is governed by the file's
 * permissions instead of vm.unprivileged_userfaultfd. Never
 * UFFD_USER_MODE_ONLY: runtimes hand linear memory to syscalls (read(2)
 * into wasm memory) and those kernel-mode faults must be served too.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"
#include "uffd.h"
#include "kernel_uapi.h"

static int uffd_new(int *via_dev)
{
	const int flags = O_CLOEXEC | O_NONBLOCK;
	int err = ufpi_fi_hit(UFPI_FI_USERFAULTFD);
	if (err)
		return err;

	int fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd >= 0) {
		*via_dev = 0;
		return fd;
	}
	int sys_err = -errno;
	/* EPERM: vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE; the
	 * device node may still be accessible. ENOSYS: seccomp or old kernel. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return sys_err;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	err = -errno;
	close(dev);
	if (fd < 0)
		return sys_err == -EPERM ? sys_err : err;
	*via_dev = 1;
	return fd;
}

int ufpi_uffd_open(uint64_t want_features, int *fd_out, uint64_t *features_out,
		   int *via_dev)
{
	int saved = errno;
	int fd = uffd_new(via_dev);
	if (fd < 0) {
		errno = saved;
		return fd;
	}
	struct uffdio_api api = {.api = UFFD_API, .features = want_features};
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;
		close(fd);
		errno = saved;
		return err;
	}
	*fd_out = fd;
	if (features_out)
		*features_out = api.features;
	errno = saved;
	return 0;
}

/* A handshake with no feature requested reports everything the kernel
 * offers; the fd is then useless (UFFDIO_API works once per fd). */
int ufpi_uffd_probe(uint64_t *features, int *via_dev)
{
	int fd = -1, err = ufpi_uffd_open(0, &fd, features, via_dev);
	if (err)
		return err;
	ufpi_os_close(fd);
	return 0;
}

/* Every ioctl on a userfaultfd: 0 or -errno, errno kept. */
static int uffd_ioctl(int fd, unsigned long req, void *arg)
{
	int saved = errno;
	int r = ioctl(fd, req, arg) < 0 ? -errno : 0;
	errno = saved;
	return r;
}

static struct uffdio_range range(void *addr, size_t len)
{
	return (struct uffdio_range){.start = (uint64_t)(uintptr_t)addr,
				     .len = len};
}

int ufpi_uffd_register(int fd, void *addr, size_t len, unsigned mode,
		       uint64_t *ioctls)
{
	int err = ufpi_fi_hit(UFPI_FI_UFFDIO_REGISTER);
	if (err)
		return err;
	struct uffdio_register reg = {
		.range = range(addr, len),
		.mode = ((mode & UFPI_REG_MISSING)
				 ? UFFDIO_REGISTER_MODE_MISSING
				 : 0) |
			((mode & UFPI_REG_WP) ? UFFDIO_REGISTER_MODE_WP : 0) |
			((mode & UFPI_REG_MINOR) ? UFFDIO_REGISTER_MODE_MINOR
						 : 0),
	};
	err = uffd_ioctl(fd, UFFDIO_REGISTER, &reg);
	if (!err && ioctls)
		*ioctls = reg.ioctls;
	return err;
}

/* COPY, CONTINUE and ZEROPAGE: a partial run fails with EAGAIN and
 * reports the bytes done in the struct's own field (`count`); a failure
 * on the first page reports -errno there. */
static int fill_ioctl(int fd, unsigned long req, void *arg, const __s64 *count,
		      size_t len, size_t *done)
{
	int err = uffd_ioctl(fd, req, arg);
	*done = !err ? len : *count > 0 ? (size_t)*count : 0;
	return err;
}

int ufpi_uffd_copy(int fd, void *dst, const void *src, size_t len, bool wp,
		   size_t *done)
{
	int err = ufpi_fi_hit(UFPI_FI_UFFDIO_COPY);
	*done = 0;
	if (err)
		return err;
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
		.mode = UFFDIO_COPY_MODE_DONTWAKE |
			(wp ? UFFDIO_COPY_MODE_WP : 0),
	};
	return fill_ioctl(fd, UFFDIO_COPY, &c, &c.copy, len, done);
}

int ufpi_uffd_continue(int fd, void *dst, size_t len, size_t *done)
{
	int err = ufpi_fi_hit(UFPI_FI_UFFDIO_CONTINUE);
	*done = 0;
	if (err)
		return err;
	struct uffdio_continue c = {
		.range = range(dst, len),
		.mode = UFFDIO_CONTINUE_MODE_DONTWAKE,
	};
	return fill_ioctl(fd, UFFDIO_CONTINUE, &c, &c.mapped, len, done);
}

int ufpi_uffd_zeropage(int fd, void *dst, size_t len, size_t *done)
{
	struct uffdio_zeropage z = {
		.range = range(dst, len),
		.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};
	return fill_ioctl(fd, UFFDIO_ZEROPAGE, &z, &z.zeropage, len, done);
}

int ufpi_uffd_poison(int fd, void *dst, size_t len)
{
	struct uffdio_poison p = {.range = range(dst, len)};
	return uffd_ioctl(fd, UFFDIO_POISON, &p);
}

int ufpi_uffd_wake(int fd, void *addr, size_t len)
{
	struct uffdio_range r = range(addr, len);
	return uffd_ioctl(fd, UFFDIO_WAKE, &r);
}

int ufpi_uffd_writeprotect(int fd, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = range(addr, len),
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	return uffd_ioctl(fd, UFFDIO_WRITEPROTECT, &w);
}
