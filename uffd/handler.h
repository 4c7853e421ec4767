/* SPDX-License-Identifier: MIT */
/*
 * handler.h - floor 4: the userfaultfd handler threads (handler.c). The one
 * call up, the reap callback, crosses a thread boundary.
 */
#ifndef UFPI_HANDLER_H
#define UFPI_HANDLER_H

#include "slot.h"

/* ---- floor 4: handler (uffd/handler.c) --------------------------------- */

struct ufpi_handler;
/* Called by handler 0 when the reclaim eventfd is readable. */
typedef void (*ufpi_reap_fn)(void *arg);
int ufpi_handler_start(struct ufpi_slots *s, int reclaim_efd, ufpi_reap_fn reap,
		       void *reap_arg, struct ufpi_handler **out);
void ufpi_handler_stop(struct ufpi_handler *h);
/* Serve one fault at addr, raised by thread tid (0: unknown); exposed
 * for tests of the fill logic. */
void ufpi_handler_fault(struct ufpi_slots *s, int fd, uint64_t addr,
			uint32_t tid, bool write);

#endif /* UFPI_HANDLER_H */
