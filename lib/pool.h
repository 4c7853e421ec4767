/* SPDX-License-Identifier: MIT */
/*
 * pool.h - floor 5: pools, modules, memories (pool.c, module.c, hooks.c).
 */
#ifndef UFPI_POOL_H
#define UFPI_POOL_H

#include "fill.h"
#include "handler.h"
#include "os.h"
#include "probe.h"
#include "reclaim.h"
#include "slot.h"
#include "uffd.h"

/* ---- floor 5: pool, modules, memories (pool.c, module.c) -------------- */

#define UFPI_MAGIC_POOL 0x75667020706f6f6cULL	/* "ufp pool" */
#define UFPI_MAGIC_MODULE 0x7566706d6f64756cULL /* "ufpmodul" */
#define UFPI_MAGIC_MEMORY 0x7566706d656d6f72ULL /* "ufpmemor" */
#define UFPI_MAGIC_DEAD 0x6465616464656164ULL	/* "deaddead" */

/* Dead handles are recycled FIFO only after this many more died, so a
 * double free or double drop is detected in the meantime. */
#define UFPI_QUARANTINE 1024
/* Buckets of a pool's table of shared modules (ufp_module_acquire). */
#define UFPI_IDENTITY_BUCKETS 256

struct ufp_module {
	_Atomic uint64_t magic;
	ufp_pool *pool;
	uint64_t key;		  /* never reused within a pool */
	struct ufpi_image *image; /* the module's own reference */
	uint64_t initial_bytes;
	uint32_t live;		 /* live memories (pool->mod_lock) */
	bool dropped;		 /* (pool->mod_lock) */
	struct ufp_module *next; /* all-modules list / quarantine FIFO */
	struct ufp_module *all_next;
	/* identity (pool->mod_lock): references held by the embedder; a
	 * module from ufp_module_acquire sits in pool->identity under the
	 * hash of its image until its last reference goes */
	uint32_t refs;
	bool shared;
	uint64_t hash;
	struct ufp_module *id_next;
};

struct ufp_memory {
	_Atomic uint64_t magic;
	ufp_pool *pool;
	ufp_module *module;
	uint32_t slot;
	_Atomic uint64_t size;	     /* exact, in bytes */
	uint64_t max_bytes;	     /* its own maximum */
	struct ufp_memory *next;     /* quarantine FIFO */
	struct ufp_memory *all_next; /* every handle ever allocated */
};

struct ufpi_quarantine {
	void *head, *tail;
	size_t n;
};

struct ufp_pool {
	uint64_t magic;
	ufp_config cfg;
	struct ufpi_log log;
	struct ufpi_log_queue log_queue;
	struct ufpi_counters ctr;
	struct ufpi_features feat; /* copy of the process-wide probe */
	ufp_backend backend;	   /* resolved */
	bool dirty_tracking;	   /* resolved */
	ufp_fill_mode fill_mode;   /* resolved: MINOR or COPY (UFFD), AUTO */

	unsigned char *reservation; /* pre_guard + slots * slot_bytes */
	size_t reservation_len;
	struct ufpi_slots slots;
	ufp_index *index;

	int uffd[UFPI_MAX_HANDLERS];
	unsigned nuffd;
	struct ufpi_handler *handler;
	struct ufpi_reclaim *reclaim;
	int pagemap_fd;
	int pidfd;

	pthread_mutex_t mod_lock; /* modules, handles, quarantines */
	uint64_t next_key;
	struct ufp_module *modules; /* every module struct (all_next) */
	struct ufpi_quarantine dead_modules;
	struct ufp_memory *memories; /* every memory struct (all_next) */
	struct ufpi_quarantine dead_memories;
	uint64_t live_memories;
	/* modules of ufp_module_acquire by image hash (mod_lock); embedded so
	 * that it needs no teardown */
	struct ufp_module *identity[UFPI_IDENTITY_BUCKETS];

	/* slots freed: wakes ufp_memory_alloc_wait and ufp_pool_quiesce */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	uint32_t waiters;
	_Atomic uint64_t purge_pending; /* slots being purged */
	_Atomic uint32_t purgers;	/* purge/evict loops taking slots */
};

/* module.c (pool->mod_lock held for the handle functions) */
ufp_memory *ufpi_memory_handle_new(ufp_pool *pool);
void ufpi_memory_handle_retire(ufp_pool *pool, ufp_memory *mem);
void ufpi_module_purge(ufp_pool *pool, uint64_t key);
/* true while a module with this key exists and is not dropped */
bool ufpi_module_key_live(ufp_pool *pool, uint64_t key);
/* A memory is gone (freed, or its allocation failed after the handle was
 * made): its handle is retired and its module (m, NULL for none) loses a
 * live memory, under one mod_lock; the last one of a dropped module
 * purges it. */
void ufpi_module_memory_gone(ufp_pool *pool, ufp_memory *mem, ufp_module *m);
void ufpi_pool_evict_idle(ufp_pool *pool);
void ufpi_pool_reclaim_done(void *arg, uint64_t tag, size_t len, int err);
void ufpi_pool_slot_freed(ufp_pool *pool);
void ufpi_pool_reap(void *arg);
/* Tests: make every image hash alike, so that only the byte comparison
 * tells modules apart in ufp_module_acquire. */
void ufpi_module_hash_collide(bool on);

/* Benchmark hook (lib/hooks.c), outside the production structs: with
 * purge off for one pool a dropped module's affine slots keep their pages
 * (the behaviour before purge existed), to measure what purge saves.
 * NULL turns it off again. Never for production. */
void ufpi_hook_purge_off(const ufp_pool *pool);
bool ufpi_hook_purge_is_off(const ufp_pool *pool);

/* Walk the pool and check invariants (tests). 0 or -EUCLEAN. */
int ufpi_pool_check(ufp_pool *pool);

#endif /* UFPI_POOL_H */
