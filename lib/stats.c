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

#include "base.h"

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

static _Thread_local bool log_deferred;

void ufpi_log_defer_thread(void)
{
	log_deferred = true;
}

static void enqueue(struct ufpi_log_queue *q, ufp_log_level level,
		    const char *msg)
{
	pthread_mutex_lock(&q->lock);
	unsigned n = atomic_load_explicit(&q->n, memory_order_relaxed);
	if (n < UFPI_LOG_QUEUE) {
		q->line[n].level = level;
		size_t len = strnlen(msg, sizeof(q->line[n].msg) - 1);
		memcpy(q->line[n].msg, msg, len);
		q->line[n].msg[len] = 0;
		atomic_store_explicit(&q->n, n + 1, memory_order_release);
	} else {
		q->dropped++;
	}
	pthread_mutex_unlock(&q->lock);
}

void ufpi_log_flush(const struct ufpi_log *log)
{
	struct ufpi_log_queue *q = log ? log->queue : NULL;
	if (!q || log_deferred ||
	    !atomic_load_explicit(&q->n, memory_order_acquire))
		return;
	struct ufpi_log_queue out;
	pthread_mutex_lock(&q->lock);
	out.n = atomic_load_explicit(&q->n, memory_order_relaxed);
	out.dropped = q->dropped;
	memcpy(out.line, q->line, sizeof(out.line[0]) * out.n);
	atomic_store_explicit(&q->n, 0, memory_order_relaxed);
	q->dropped = 0;
	pthread_mutex_unlock(&q->lock);
	for (unsigned k = 0; k < out.n; k++)
		log->fn(log->arg, out.line[k].level, out.line[k].msg);
	if (out.dropped)
		ufpi_logf(log, UFP_LOG_WARN,
			  "log: %u lines of the handler thread lost (queue "
			  "full)",
			  out.dropped);
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
	if (log_deferred && log->queue) {
		enqueue(log->queue, level, msg);
	} else {
		ufpi_log_flush(log); /* in order */
		log->fn(log->arg, level, msg);
	}
	errno = saved;
}
