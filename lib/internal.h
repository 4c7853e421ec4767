/* SPDX-License-Identifier: MIT */
/*
 * internal.h - every internal header at once, for the tests and the
 * benchmark (which reach into the pool). The library's files include the
 * headers of their own layer and of the layers below (docs/design.md,
 * "Architecture"):
 *   5  pool.h       pool.c, module.c, hooks.c
 *   4  handler.h    uffd/handler.c      reclaim.h  reclaim.c
 *   3  slot.h       slot.c (and slot_impl.h, its fields: slot.c alone)
 *                                       fill.h     uffd/fill.c, prefetch.c
 *   2  image.h      image.c             uffd.h     uffd/uffd.c, dirty.c
 *      probe.h      probe.c             uffdpool/index.h  index.c
 *   1  os.h         os.c                base.h     stats.c, errors.c
 */
#ifndef UFP_INTERNAL_H
#define UFP_INTERNAL_H

#include "pool.h"
#include "slot_impl.h" /* the fields of a slot: white-box tests */

#endif /* UFP_INTERNAL_H */
