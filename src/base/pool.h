/* One pool of worker threads per model, created once and reused by every
 * operation of the forward pass: um_pool_run() hands out task indices until
 * all are done, with the calling thread working too. */
#ifndef UM_BASE_POOL_H
#define UM_BASE_POOL_H

#include <stddef.h>

typedef struct um_pool um_pool;

/* fn(ctx, task, thread): task in [0, n_tasks), thread in [0, n_threads). */
typedef void (*um_task_fn)(void *ctx, int task, int thread);

um_pool *um_pool_create(int n_threads); /* NULL on failure */
void um_pool_destroy(um_pool *pool);
int um_pool_threads(const um_pool *pool);
/* Runs every task and returns when all are finished. Not re-entrant. */
void um_pool_run(um_pool *pool, int n_tasks, um_task_fn fn, void *ctx);

/* A 64-byte aligned buffer of at least `bytes`, owned by the pool: one per
 * slot (0 <= slot < UM_POOL_SCRATCH_SLOTS), kept and grown across calls so
 * that the operations of a forward pass allocate only on first use. For the
 * thread that calls um_pool_run, outside tasks. The contents are not kept
 * when it grows. NULL when out of memory (the old buffer stays). */
#define UM_POOL_SCRATCH_SLOTS 4
void *um_pool_scratch(um_pool *pool, int slot, size_t bytes);

/* Online CPU count (at least 1). */
int um_cpu_count(void);
/* Physical cores (SMT siblings counted once), from sysfs topology; the
 * online CPU count where that is unavailable. */
int um_physical_core_count(void);

#endif
