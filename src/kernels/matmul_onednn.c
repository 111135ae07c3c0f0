/* The oneDNN backend: y = x * W^T for F32 weights (dnnl_sgemm) and for
 * BF16 weights with reduced-precision activations (oneDNN's bf16 matmul
 * primitive, bf16 x bf16 with f32 accumulation, weights read in place as a
 * [k][m] matrix with strides (1, k)). Activations are rounded to bf16 here,
 * with um_f32_to_bf16 as our own kernel rounds them, so both compute the
 * same arithmetic. Everything else stays on our kernels (mm_onednn_handles).
 *
 * Threads: Debian's libdnnl runs on OpenMP. Each call sets the calling
 * thread's OpenMP thread count to the pool's (the model's -t), so oneDNN
 * uses as many threads as our kernels would; our pool's workers meanwhile
 * sleep on a condition variable (base/pool.c), so the two never spin
 * against each other. Compiled to stubs without UM_HAVE_ONEDNN (the
 * Makefile defines it when oneDNN's header is installed). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/matmul_impl.h"

#ifdef UM_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>

bool um_onednn_available(void) { return true; }

/* BF16 only on AVX-512: there oneDNN's bf16 matmul (vdpbf16ps, or its exact
 * emulation on AVX-512 without BF16) is our MM_BF16 arithmetic; oneDNN 2.6 on
 * AVX2 computes something coarser (0.4% off on a 64-wide dot product). */
bool mm_onednn_handles(um_dtype t, bool reduced) {
    return t == UM_F32 || (t == UM_BF16 && reduced && um_cpu_features_get()->avx512);
}

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

/* oneDNN's ISA ceiling: the features we see (as UNMASK_CPU masks them), so
 * that a masked run dispatches oneDNN as the smaller CPU would. Never AMX:
 * its bf16 tiles flush subnormals and sum in another order, so on a
 * Sapphire Rapids oneDNN's bf16 logits left ours by 2e-3 (not the MM_BF16
 * arithmetic), where capped at AVX-512 BF16 they equal ours to the bit. */
static dnnl_cpu_isa_t isa_ceiling(void) {
    const um_cpu_features *f = um_cpu_features_get();
    if (f->avx512)
        return f->avx512_bf16 ? dnnl_cpu_isa_avx512_core_bf16
               : f->avx512_vnni ? dnnl_cpu_isa_avx512_core_vnni
                                : dnnl_cpu_isa_avx512_core;
    if (f->avx2)
        return f->avx_vnni ? dnnl_cpu_isa_avx2_vnni : dnnl_cpu_isa_avx2;
    return dnnl_cpu_isa_sse41; /* oneDNN's least */
}

static void engine_init(void) {
    if (dnnl_set_max_cpu_isa(isa_ceiling()) != dnnl_success)
        fprintf(stderr, "unmask: oneDNN refused the ISA ceiling of CPU class %s\n", um_cpu_class());
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
}

/* Output features per task: each of our pool's threads runs oneDNN
 * single-threaded on a slice of W's rows. */
enum { SLICE = 1024 };

/* bf16 matmul primitives by shape (n tokens, mc features of a slice, k,
 * output row stride m), created once and kept for the process (a model has a
 * handful of shapes per canvas size); past the cache's size a primitive is
 * made for the call and destroyed after it. Scratchpads are ours (per
 * thread), so concurrent executions share nothing inside oneDNN. */
typedef struct {
    int64_t n, mc, k, m;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src, wei, dst, scratch;
    size_t scratch_bytes;
} bf16_prim;

enum { CACHE_SIZE = 128 };
static bf16_prim cache[CACHE_SIZE];
static int cache_used;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool bf16_create(bf16_prim *e) {
    dnnl_dims_t sdims = {e->n, e->k}, sstr = {e->k, 1};
    dnnl_dims_t wdims = {e->k, e->mc}, wstr = {1, e->k};
    dnnl_dims_t ddims = {e->n, e->mc}, dstr = {e->m, 1};
    if (dnnl_memory_desc_init_by_strides(&e->src, 2, sdims, dnnl_bf16, sstr) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&e->wei, 2, wdims, dnnl_bf16, wstr) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&e->dst, 2, ddims, dnnl_f32, dstr) != dnnl_success)
        return false;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr;
    if (dnnl_matmul_desc_init(&md, &e->src, &e->wei, NULL, &e->dst) != dnnl_success ||
        dnnl_primitive_attr_create(&attr) != dnnl_success)
        return false;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success)
        s = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return false;
    const dnnl_memory_desc_t *sm = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch = *sm;
    e->scratch_bytes = dnnl_memory_desc_get_size(sm);
    s = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return s == dnnl_success;
}

/* The primitive for its shape (fields n, mc, k, m of *e set): *owned says
 * the caller destroys it. */
static bool bf16_get(bf16_prim *e, bool *owned) {
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_used; i++)
        if (cache[i].n == e->n && cache[i].mc == e->mc && cache[i].k == e->k && cache[i].m == e->m) {
            *e = cache[i];
            *owned = false;
            pthread_mutex_unlock(&cache_lock);
            return true;
        }
    bool ok = bf16_create(e);
    *owned = true;
    if (ok && cache_used < CACHE_SIZE) {
        cache[cache_used++] = *e;
        *owned = false;
    }
    pthread_mutex_unlock(&cache_lock);
    return ok;
}

typedef struct {
    const float *x;
    uint16_t *xb;
    int64_t total;
} round_job;

enum { ROUND_CHUNK = 1 << 16 };

static void round_task(void *ctx, int task, int thread) {
    const round_job *j = ctx;
    int64_t i0 = (int64_t)task * ROUND_CHUNK, i1 = i0 + ROUND_CHUNK < j->total ? i0 + ROUND_CHUNK : j->total;
    for (int64_t i = i0; i < i1; i++)
        j->xb[i] = um_f32_to_bf16(j->x[i]);
}

/* The pool's scratch slots (matmul.c's, which only our blocked kernels use
 * otherwise): the rounded activations, and per thread oneDNN's scratchpad. */
enum { SLOT_ACTIVATIONS = 0, SLOT_PANELS = 1 };

typedef struct {
    const float *x;
    const uint16_t *xb;
    int n;
    const um_weight *w;
    float *y;
    const bf16_prim *full, *last; /* bf16: the primitives of whole slices and of the last one */
    uint8_t *scratch;
    size_t scratch_bytes; /* per thread */
    atomic_int failed;
} slice_job;

static void slice_task(void *ctx, int task, int thread) {
    slice_job *j = ctx;
    int64_t m = j->w->rows, k = j->w->cols, f0 = (int64_t)task * SLICE, mc = m - f0 < SLICE ? m - f0 : SLICE;
    if (omp_get_max_threads() != 1)
        omp_set_num_threads(1); /* this thread's count: oneDNN runs sequentially inside our task */
    if (j->w->type == UM_F32) {
        const float *wf = (const float *)j->w->data + f0 * k;
        if (dnnl_sgemm('N', 'T', j->n, mc, k, 1.0f, j->x, k, wf, k, 0.0f, j->y + f0, m) != dnnl_success)
            atomic_store(&j->failed, 1);
        return;
    }
    const bf16_prim *e = mc == SLICE ? j->full : j->last;
    const uint16_t *wb = (const uint16_t *)j->w->data + f0 * k;
    dnnl_memory_t src = NULL, wei = NULL, dst = NULL, scr = NULL;
    dnnl_stream_t stream = NULL;
    bool ok = dnnl_memory_create(&src, &e->src, engine, (void *)j->xb) == dnnl_success &&
              dnnl_memory_create(&wei, &e->wei, engine, (void *)wb) == dnnl_success &&
              dnnl_memory_create(&dst, &e->dst, engine, j->y + f0) == dnnl_success &&
              dnnl_memory_create(&scr, &e->scratch, engine, j->scratch + (size_t)thread * j->scratch_bytes) ==
                  dnnl_success &&
              dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[4] = {
            {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scr}};
        ok = dnnl_primitive_execute(e->prim, stream, 4, args) == dnnl_success &&
             dnnl_stream_wait(stream) == dnnl_success;
    }
    dnnl_stream_destroy(stream);
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(wei);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(scr);
    if (!ok)
        atomic_store(&j->failed, 1);
}

bool mm_onednn_run(um_pool *pool, const float *x, int n, const um_weight *w, const float *bias, float *y,
                   bool reduced) {
    if (!mm_onednn_handles(w->type, reduced))
        return false;
    if (n <= 0 || w->rows <= 0)
        return true;
    pthread_once(&engine_once, engine_init);
    if (!engine)
        return false;
    int64_t m = w->rows, k = w->cols;
    int nt = um_pool_threads(pool), tasks = (int)((m + SLICE - 1) / SLICE);
    slice_job job = {x, NULL, n, w, y, NULL, NULL, NULL, 0, 0};
    bf16_prim full = {n, SLICE, k, m, NULL, {0}, {0}, {0}, {0}, 0}, last = full;
    bool own_full = false, own_last = false, ok = true;
    if (w->type == UM_BF16) {
        uint16_t *xb = um_pool_scratch(pool, SLOT_ACTIVATIONS, (size_t)n * (size_t)k * sizeof(uint16_t) + 64);
        last.mc = m - (int64_t)(tasks - 1) * SLICE;
        ok = xb && (m < SLICE || bf16_get(&full, &own_full)) && bf16_get(&last, &own_last);
        if (ok) {
            job.full = &full;
            job.last = &last;
            size_t sb = full.scratch_bytes > last.scratch_bytes ? full.scratch_bytes : last.scratch_bytes;
            job.scratch_bytes = (sb + 63) & ~(size_t)63;
            job.scratch = um_pool_scratch(pool, SLOT_PANELS, job.scratch_bytes * (size_t)nt + 64);
            ok = job.scratch != NULL;
        }
        if (ok) {
            round_job rj = {x, xb, (int64_t)n * k};
            um_pool_run(pool, (int)((rj.total + ROUND_CHUNK - 1) / ROUND_CHUNK), round_task, &rj);
            job.xb = xb;
        }
    }
    if (ok) {
        um_pool_run(pool, tasks, slice_task, &job);
        ok = !atomic_load(&job.failed);
    }
    if (own_full)
        dnnl_primitive_destroy(full.prim);
    if (own_last)
        dnnl_primitive_destroy(last.prim);
    if (!ok)
        return false;
    if (bias)
        for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < m; r++)
                y[t * m + r] += bias[r];
    return true;
}

#else /* no oneDNN in this build */

bool um_onednn_available(void) { return false; }
bool mm_onednn_handles(um_dtype t, bool reduced) { return false; }
bool mm_onednn_run(um_pool *pool, const float *x, int n, const um_weight *w, const float *bias, float *y,
                   bool reduced) {
    return false;
}

#endif
