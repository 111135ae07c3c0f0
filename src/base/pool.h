/* One pool of worker threads per model, created once and reused by every
 * operation of the forward pass: um_pool_run() hands out task indices until
 * all are done, with the calling thread working too. */
#ifndef UM_BASE_POOL_H
#define UM_BASE_POOL_H

typedef struct um_pool um_pool;

/* fn(ctx, task, thread): task in [0, n_tasks), thread in [0, n_threads). */
typedef void (*um_task_fn)(void *ctx, int task, int thread);

um_pool *um_pool_create(int n_threads); /* NULL on failure */
void um_pool_destroy(um_pool *pool);
int um_pool_threads(const um_pool *pool);
/* Runs every task and returns when all are finished. Not re-entrant. */
void um_pool_run(um_pool *pool, int n_tasks, um_task_fn fn, void *ctx);

/* Online CPU count (at least 1). */
int um_cpu_count(void);

#endif
