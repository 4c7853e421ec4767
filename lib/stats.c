/* SPDX-License-Identifier: MIT */
/*
 * stats.c - counters and logging. The counter list is UFP_STATS_LIST in
 * the public header: it generates the public struct, the internal atomic
 * counters, and both text and JSON dumps here, so they cannot drift.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void ufpi_counters_snapshot(const struct ufpi_counters *c, ufp_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->size = sizeof(*out);
#define SNAP(name, doc) \
	out->name = atomic_load_explicit(&c->name, memory_order_relaxed);
	UFP_STATS_LIST(SNAP)
#undef SNAP
}

/* snprintf that accumulates the needed length past the end of buf */
static size_t append(char *buf, size_t cap, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t cap, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(len < cap ? buf + len : NULL,
			  len < cap ? cap - len : 0, fmt, ap);
	va_end(ap);
	return len + (n > 0 ? (size_t)n : 0);
}

UFP_API size_t ufp_stats_format(const ufp_stats *st, int json, char *buf,
				size_t cap)
{
	size_t len = 0;
	const char *sep = "";

	if (buf && cap)
		buf[0] = '\0';
	if (!st)
		return 0;
	if (!buf)
		cap = 0;
	if (json)
		len = append(buf, cap, len, "{");
#define FMT(name, doc)                                                    \
	if (json)                                                         \
		len = append(buf, cap, len, "%s\"%s\": %llu", sep, #name, \
			     (unsigned long long)st->name);               \
	else                                                              \
		len = append(buf, cap, len, "%-20s %llu\n", #name,        \
			     (unsigned long long)st->name);               \
	sep = ", ";
	UFP_STATS_LIST(FMT)
#undef FMT
	if (json)
		len = append(buf, cap, len, "}");
	return len;
}

void ufpi_logf(const struct ufpi_log *log, ufp_log_level level, const char *fmt,
	       ...)
{
	char msg[512];
	va_list ap;
	int saved = errno;

	if (!log || !log->fn || level > log->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->arg, level, msg);
	errno = saved;
}
