/* SPDX-License-Identifier: MIT */
/*
 * errors.c - ufp_strerror, a leaf: every layer that logs an error calls it,
 * and it calls nothing.
 */
#include <errno.h>

#include "base.h"

UFP_API const char *ufp_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument (EINVAL)";
	case -E2BIG:
		return "too big: beyond max_memory_bytes, the address space or "
		       "a system limit (E2BIG)";
	case -ERANGE:
		return "a data segment or size is out of range (ERANGE)";
	case -EAGAIN:
		return "every slot is in use right now (EAGAIN)";
	case -ETIMEDOUT:
		return "timed out waiting for a free slot (ETIMEDOUT)";
	case -EBUSY:
		return "memories are still live (EBUSY)";
	case -EALREADY:
		return "already dropped (EALREADY)";
	case -ENOENT:
		return "not found (ENOENT)";
	case -ENOMEM:
		return "out of memory or address space (ENOMEM)";
	case -EPERM:
		return "not permitted: userfaultfd needs "
		       "vm.unprivileged_userfaultfd=1, access to "
		       "/dev/userfaultfd, or CAP_SYS_PTRACE (EPERM)";
	case -ENOSYS:
		return "the kernel lacks the system call (ENOSYS)";
	case -ENOTSUP:
		return "the kernel lacks the feature this setting forces "
		       "(ENOTSUP)";
	case -EUCLEAN:
		return "internal invariant violated (EUCLEAN)";
	case -EEXIST:
		return "page already present (EEXIST)";
	case -EFAULT:
		return "bad address (EFAULT)";
	case -EBADF:
		return "bad file descriptor (EBADF)";
	case -EMFILE:
		return "too many open files (EMFILE)";
	case -EOVERFLOW:
		return "a reference count would overflow (EOVERFLOW)";
	default:
		return err < 0 ? "system error (see errno.h)"
			       : "not an error code";
	}
}
