#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/sys.h"

struct um_pool {
    int n_threads; /* including the caller */
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    pthread_cond_t work_done;
    /* the job in flight, published under lock with a new generation number */
    um_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
    atomic_int busy_workers;
    atomic_ulong generation;
    int quit;
    void *scratch[UM_POOL_SCRATCH_SLOTS];
    size_t scratch_bytes[UM_POOL_SCRATCH_SLOTS];
};

typedef struct {
    um_pool *pool;
    int thread;
} worker_arg;

/* How long a thread polls for the next job, or for the workers to finish,
 * before it sleeps on a condition variable: 1,024 pauses, some tens of
 * microseconds on x86 (a pause takes 40 to 140 cycles). A forward
 * pass of a small model runs hundreds of jobs of tens of microseconds each;
 * a sleep and a wake-up (two futex calls and a context switch) cost as much
 * as the job, and used to be a quarter of unmask serve's time. */
enum { SPIN_POLLS = 1 << 10 };

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Polls until *v differs from old (true) or the polls run out (false). */
static bool spin_while_equal_ulong(atomic_ulong *v, unsigned long old) {
    for (int i = 0; i < SPIN_POLLS; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old)
            return true;
        cpu_relax();
    }
    return false;
}

static bool spin_until_zero(atomic_int *v) {
    for (int i = 0; i < SPIN_POLLS; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) == 0)
            return true;
        cpu_relax();
    }
    return false;
}

static void drain_tasks(um_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks)
            return;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    um_pool *p = wa->pool;
    int thread = wa->thread;
    free(wa);
    /* Asynchronous signals (Ctrl-C, SIGTERM, ...) go to the caller's thread,
       never to a worker inside a kernel: oneDNN's JIT code keeps data below
       the stack pointer, where a signal frame would land. The faults stay
       unblocked, as a blocked fault loses its handler (the sanitizers'). */
    sigset_t async;
    sigfillset(&async);
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&async, faults[i]);
    pthread_sigmask(SIG_BLOCK, &async, NULL);
    unsigned long seen = 0;
    for (;;) {
        /* a job published while polling needs no lock: its fields were
           written before the generation moved (release/acquire) */
        if (!spin_while_equal_ulong(&p->generation, seen)) {
            pthread_mutex_lock(&p->lock);
            while (!p->quit && atomic_load(&p->generation) == seen)
                pthread_cond_wait(&p->work_ready, &p->lock);
            int quit = p->quit;
            pthread_mutex_unlock(&p->lock);
            if (quit)
                break;
        }
        seen = atomic_load(&p->generation);
        drain_tasks(p, thread);
        if (atomic_fetch_sub(&p->busy_workers, 1) == 1) {
            pthread_mutex_lock(&p->lock); /* the caller may be between its check and its wait */
            pthread_cond_signal(&p->work_done);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

int um_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int um_physical_core_count(void) {
    enum { MAX_CORES = 4096 };
    long *seen = malloc(MAX_CORES * sizeof *seen); /* (package << 20) | core of each core found */
    int n_cpus = um_cpu_count(), n = 0;
    if (!seen)
        return n_cpus;
    for (int cpu = 0; cpu < MAX_CORES && n < MAX_CORES; cpu++) {
        char path[128];
        long ids[2];
        const char *names[2] = {"physical_package_id", "core_id"};
        int ok = 1;
        for (int i = 0; i < 2 && ok; i++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, names[i]);
            FILE *f = fopen(path, "r");
            ok = f && fscanf(f, "%ld", &ids[i]) == 1;
            if (f)
                fclose(f);
        }
        if (!ok) {
            if (cpu >= n_cpus)
                break; /* past the last CPU (offline ones in the middle are skipped) */
            continue;
        }
        long key = (ids[0] << 20) | (ids[1] & 0xfffff);
        int dup = 0;
        for (int i = 0; i < n && !dup; i++)
            dup = seen[i] == key;
        if (!dup)
            seen[n++] = key;
    }
    free(seen);
    return n > 0 && n <= n_cpus ? n : n_cpus;
}

void *um_pool_scratch(um_pool *p, int slot, size_t bytes) {
    if (slot < 0 || slot >= UM_POOL_SCRATCH_SLOTS)
        return NULL;
    if (bytes <= p->scratch_bytes[slot])
        return p->scratch[slot];
    bytes += bytes / 4; /* grow with some room: canvas sizes vary between calls */
    void *b = um_aligned_alloc(bytes);
    if (!b)
        return NULL;
    free(p->scratch[slot]);
    p->scratch[slot] = b;
    p->scratch_bytes[slot] = bytes;
    return b;
}

um_pool *um_pool_create(int n_threads) {
    if (n_threads < 1)
        n_threads = 1;
    um_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->work_done, NULL);
    atomic_init(&p->next_task, 0);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->pool = p, wa->thread = i, pthread_create(&p->workers[i], NULL, worker_main, wa)) != 0) {
            free(wa);
            p->n_threads = i; /* keep the workers that started */
            break;
        }
    }
    return p;
}

void um_pool_destroy(um_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->work_done);
    pthread_mutex_destroy(&p->lock);
    for (int i = 0; i < UM_POOL_SCRATCH_SLOTS; i++)
        free(p->scratch[i]);
    free(p->workers);
    free(p);
}

int um_pool_threads(const um_pool *p) { return p->n_threads; }

void um_pool_run(um_pool *p, int n_tasks, um_task_fn fn, void *ctx) {
    if (n_tasks <= 0)
        return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->busy_workers, p->n_threads - 1);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);

    drain_tasks(p, 0);

    if (spin_until_zero(&p->busy_workers))
        return;
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->busy_workers) > 0)
        pthread_cond_wait(&p->work_done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
