/* Our matmul against oneDNN, OpenBLAS and BLIS on the same shapes, in one
 * run: y[n][m] = x[n][k] * W^T with W [m][k] as a model file stores it.
 * F32: um_matmul (f32 weights), dnnl_sgemm, cblas_sgemm of OpenBLAS and of
 * BLIS. BF16: um_matmul on bf16 weights with f32 activations (the default,
 * reference-exact path) and with reduced-precision activations (vdpbf16ps),
 * and oneDNN's bf16 matmul primitive (bf16 x bf16 -> f32, activations
 * converted to bf16 inside the timing, as ours are).
 *
 * Built and run by bench/gemm_libs.sh. OpenBLAS and BLIS both export
 * cblas_sgemm, so they are opened with dlopen; oneDNN is linked. All use the
 * same number of threads (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS are set by
 * the script). Times are the best of R runs after a warm-up. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "base/pool.h"
#include "base/rng.h"
#include "base/sys.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/peak.h"

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static double best_of(int reps, void (*fn)(void *), void *ctx) {
    fn(ctx);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = um_now();
        fn(ctx);
        double dt = um_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

typedef struct {
    int n;
    int64_t m, k;
    const float *x, *wf;
    const uint16_t *wb;
    float *y;
    um_pool *pool;
    float *scratch;
    sgemm_fn sgemm;
    /* oneDNN bf16 */
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    dnnl_stream_t stream;
    uint16_t *xb;
} job;

static void run_ours_f32(void *p) {
    job *j = p;
    um_weight w = {UM_F32, j->m, j->k, j->wf, false};
    um_exec ex = um_exec_defaults(j->pool);
    um_matmul(&ex, j->x, j->n, &w, NULL, j->y, j->scratch);
}

static void run_ours_bf16(void *p) {
    job *j = p;
    um_weight w = {UM_BF16, j->m, j->k, j->wb, false};
    um_exec ex = um_exec_defaults(j->pool);
    um_matmul(&ex, j->x, j->n, &w, NULL, j->y, j->scratch);
}

static void run_cblas(void *p) {
    job *j = p;
    j->sgemm(ROW_MAJOR, NO_TRANS, TRANS, j->n, (int)j->m, (int)j->k, 1.0f, j->x, (int)j->k, j->wf, (int)j->k, 0.0f,
             j->y, (int)j->m);
}

static void run_dnnl_sgemm(void *p) {
    job *j = p;
    dnnl_sgemm('N', 'T', j->n, j->m, j->k, 1.0f, j->x, j->k, j->wf, j->k, 0.0f, j->y, j->m);
}

static void run_dnnl_bf16(void *p) {
    job *j = p;
    for (int64_t i = 0; i < (int64_t)j->n * j->k; i++)
        j->xb[i] = um_f32_to_bf16(j->x[i]);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, j->src}, {DNNL_ARG_WEIGHTS, j->wei}, {DNNL_ARG_DST, j->dst}};
    dnnl_primitive_execute(j->prim, j->stream, 3, args);
    dnnl_stream_wait(j->stream);
}

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        dnnl_status_t s_ = (call);                                                                                     \
        if (s_ != dnnl_success) {                                                                                      \
            fprintf(stderr, "%s: status %d\n", #call, (int)s_);                                                        \
            return false;                                                                                              \
        }                                                                                                              \
    } while (0)

/* oneDNN's bf16 matmul for this shape: src bf16 [n][k], weights bf16 [k][m]
 * read in place from W [m][k] (strides 1, k), dst f32 [n][m]. */
static bool dnnl_bf16_setup(job *j, dnnl_engine_t eng) {
    dnnl_memory_desc_t sd, wd, dd;
    dnnl_dims_t sdims = {j->n, j->k}, sstr = {j->k, 1};
    dnnl_dims_t wdims = {j->k, j->m}, wstr = {1, j->k};
    dnnl_dims_t ddims = {j->n, j->m}, dstr = {j->m, 1};
    CHECK(dnnl_memory_desc_init_by_strides(&sd, 2, sdims, dnnl_bf16, sstr));
    CHECK(dnnl_memory_desc_init_by_strides(&wd, 2, wdims, dnnl_bf16, wstr));
    CHECK(dnnl_memory_desc_init_by_strides(&dd, 2, ddims, dnnl_f32, dstr));
    dnnl_matmul_desc_t md;
    CHECK(dnnl_matmul_desc_init(&md, &sd, &wd, NULL, &dd));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    static int printed;
    if (!printed++)
        printf("oneDNN bf16 matmul implementation: %s\n", impl ? impl : "?");
    CHECK(dnnl_primitive_create(&j->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    CHECK(dnnl_memory_create(&j->src, &sd, eng, j->xb));
    CHECK(dnnl_memory_create(&j->wei, &wd, eng, (void *)j->wb));
    CHECK(dnnl_memory_create(&j->dst, &dd, eng, j->y));
    return true;
}

static void dnnl_bf16_free(job *j) {
    dnnl_primitive_destroy(j->prim);
    dnnl_memory_destroy(j->src);
    dnnl_memory_destroy(j->wei);
    dnnl_memory_destroy(j->dst);
}

static sgemm_fn open_sgemm(const char *lib) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "%s: %s\n", lib, dlerror());
        return NULL;
    }
    return (sgemm_fn)dlsym(h, "cblas_sgemm");
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : um_physical_core_count(), reps = argc > 2 ? atoi(argv[2]) : 3;
    const char *openblas = getenv("OPENBLAS_LIB"), *blis = getenv("BLIS_LIB");
    sgemm_fn f_openblas = open_sgemm(openblas ? openblas : "libopenblas.so.0");
    sgemm_fn f_blis = open_sgemm(blis ? blis : "libblis.so.4");
    um_pool *pool = um_pool_create(threads);
    double fma = um_peak_gflops(pool, UM_PEAK_FMA_F32, 0.3), bf = um_peak_gflops(pool, UM_PEAK_DOT_BF16, 0.3);
    printf("%d threads, kernel path %s; limits: f32 FMA %.0f GFLOP/s, bf16 dot %.0f GFLOP/s\n", threads,
           um_kernel_path_name(um_kernel_path_get()), fma, bf);
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success || dnnl_stream_create(&stream, eng, 0) != dnnl_success)
        return 1;

    /* llada-1b's projections (q/k/v/o; gate/up; down) and part of its output head */
    static const int64_t shapes[][2] = {{2048, 2048}, {5634, 2048}, {2048, 5634}, {32768, 2048}};
    static const int canvases[] = {32, 256, 1024};
    printf("\nGFLOP/s (ratio to ours in brackets; > 1: the library is faster)\n\n"
           "| m x k | n | ours f32 | oneDNN sgemm | OpenBLAS sgemm | BLIS sgemm | ours bf16 (f32 act.) | ours bf16 "
           "(bf16 act.) | oneDNN bf16 |\n|---|---|---|---|---|---|---|---|---|\n");
    um_rng rng;
    um_rng_seed(&rng, 3);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t m = shapes[s][0], k = shapes[s][1];
        float *wf = um_aligned_alloc((size_t)(m * k) * sizeof(float));
        uint16_t *wb = um_aligned_alloc((size_t)(m * k) * sizeof(uint16_t));
        for (int64_t i = 0; i < m * k; i++) {
            wb[i] = um_f32_to_bf16((float)(0.02 * um_rng_normal(&rng)));
            wf[i] = um_bf16_to_f32(wb[i]);
        }
        for (size_t c = 0; c < sizeof canvases / sizeof *canvases; c++) {
            int n = canvases[c];
            job j = {n, m, k, NULL, wf, wb, NULL, pool, NULL, NULL, NULL, NULL, NULL, NULL, stream, NULL};
            float *x = um_aligned_alloc((size_t)n * (size_t)k * sizeof(float));
            j.y = um_aligned_alloc((size_t)n * (size_t)m * sizeof(float));
            j.xb = um_aligned_alloc((size_t)n * (size_t)k * sizeof(uint16_t));
            j.scratch = malloc(um_matmul_scratch_floats(threads, k) * sizeof(float));
            for (int64_t i = 0; i < (int64_t)n * k; i++)
                x[i] = (float)um_rng_normal(&rng);
            j.x = x;
            double flop = 2.0 * n * (double)m * (double)k, g[7] = {0};
            um_matmul_set_reduced(false);
            g[0] = flop / best_of(reps, run_ours_f32, &j) / 1e9;
            g[1] = flop / best_of(reps, run_dnnl_sgemm, &j) / 1e9;
            if ((j.sgemm = f_openblas))
                g[2] = flop / best_of(reps, run_cblas, &j) / 1e9;
            if ((j.sgemm = f_blis))
                g[3] = flop / best_of(reps, run_cblas, &j) / 1e9;
            g[4] = flop / best_of(reps, run_ours_bf16, &j) / 1e9;
            um_matmul_set_reduced(true);
            g[5] = flop / best_of(reps, run_ours_bf16, &j) / 1e9;
            um_matmul_set_reduced(false);
            if (dnnl_bf16_setup(&j, eng)) {
                g[6] = flop / best_of(reps, run_dnnl_bf16, &j) / 1e9;
                dnnl_bf16_free(&j);
            }
            printf("| %lld x %lld | %d | %.0f | %.0f (%.2f) | %.0f (%.2f) | %.0f (%.2f) | %.0f | %.0f | %.0f (%.2f) |\n",
                   (long long)m, (long long)k, n, g[0], g[1], g[1] / g[0], g[2], g[2] / g[0], g[3], g[3] / g[0], g[4],
                   g[5], g[6], g[6] / g[5]);
            fflush(stdout);
            free(x);
            free(j.y);
            free(j.xb);
            free(j.scratch);
        }
        free(wf);
        free(wb);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    um_pool_destroy(pool);
    return 0;
}
