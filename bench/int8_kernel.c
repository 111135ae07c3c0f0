/* Where the int8 matmul's time goes, per weight type, on the int8 kernels
 * this CPU dispatches (vpdpbusd on AVX-512 VNNI; on AVX2, or under
 * UNMASK_CPU=avx2, the vpmaddubsw + vpmaddwd kernels and Q8_0's vpmaddwd
 * one), against the int8 limit measured in the same run:
 *
 *   kernel   the micro-kernel alone, called over and over on one packed
 *            panel (NR features x 1024 k) and one block of packed
 *            activations, both in cache, on one thread: the arithmetic's own
 *            ceiling (the products plus the per-sub-block float work), which
 *            no forward of that type can pass;
 *   driver   mm_run, the blocked driver every forward uses (activation
 *            quantization, micro-kernels), on one 4096 x 4096 matrix
 *            packed once beforehand, as a model's weights are at load, and
 *            256 tokens, on 1 thread and on THREADS;
 *
 * each as GOP/s per thread and as a share of the one-thread limit (the
 * register-only loop of kernels/peak.c for the path's instruction, on a
 * pool of one).
 *
 * Built and run by bench/int8_kernel.sh. Times are the best of R runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "base/rng.h"
#include "base/sys.h"
#include "kernels/cpu.h"
#include "kernels/matmul_impl.h"
#include "kernels/peak.h"
#include "kernels/quant.h"

enum { KC = 1024, M = 4096, K = 4096, N = 256 };

/* Best seconds per call of the micro-kernel, over `reps` runs of CALLS calls. */
static double kernel_seconds(const mm_kernels *ks, int reps) {
    um_rng rng;
    um_rng_seed(&rng, 1);
    size_t pb = mm_panel_bytes(ks, KC), ab = (size_t)KC / mm_act_per_u32(ks) * (size_t)ks->mr * 4;
    size_t sb = (size_t)(KC / ks->bk) * MM_SC_ROWS * (size_t)ks->mr * sizeof(float);
    uint8_t *panel = um_aligned_alloc(pb), *act = um_aligned_alloc(ab);
    float *sc = um_aligned_alloc(sb), *c = um_aligned_alloc((size_t)ks->mr * ks->nr * sizeof(float));
    for (size_t i = 0; i < pb; i++)
        panel[i] = (uint8_t)um_rng_next(&rng);
    for (int s = 0; s < KC / ks->bk; s++) { /* plausible scales, so no float stays denormal or overflows */
        float *ws = (float *)(panel + (size_t)s * mm_i8_block_bytes(ks->bk, ks->nr) + (size_t)ks->bk * ks->nr);
        for (int i = 0; i < 2 * ks->nr; i++)
            ws[i] = 1e-3f;
    }
    for (size_t i = 0; i < ab; i++)
        act[i] = (uint8_t)um_rng_next(&rng);
    for (size_t i = 0; i < sb / sizeof(float); i++)
        sc[i] = 1e-2f;
    mm_tile t = {0};
    t.kc = KC, t.a = act, t.a_sc = sc, t.b = panel, t.c = c, t.ldc = ks->nr, t.mr = ks->mr, t.nr = ks->nr;
    enum { CALLS = 2000 };
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = um_now();
        for (int i = 0; i < CALLS; i++)
            ks->kernel(&t);
        double dt = (um_now() - t0) / CALLS;
        best = dt < best ? dt : best;
    }
    free(panel);
    free(act);
    free(sc);
    free(c);
    return best;
}

/* Best seconds of mm_run on an M x K weight of type t and N tokens. */
static double driver_seconds(um_pool *pool, const mm_kernels *ks, const um_weight *w, const float *x, float *y,
                             int reps) {
    mm_run(pool, ks, MM_I8, x, N, w, NULL, y, NULL); /* warm-up: scratch, page faults */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = um_now();
        mm_run(pool, ks, MM_I8, x, N, w, NULL, y, NULL);
        double dt = um_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 5;
    um_kernel_path path = um_kernel_path_get();
    if (!mm_choose_kernels(path, MM_I8, UM_Q8_0)) {
        fprintf(stderr, "int8_kernel: the %s path has no int8 kernels to measure (AVX2 or AVX-512 needed)\n",
                um_kernel_path_name(path));
        return 2;
    }
    um_pool *one = um_pool_create(1), *all = um_pool_create(threads);
    um_rng rng;
    um_rng_seed(&rng, 7);
    float *x = malloc((size_t)N * K * sizeof(float)), *y = malloc((size_t)N * M * sizeof(float));
    float *row = malloc((size_t)K * sizeof(float));
    for (size_t i = 0; i < (size_t)N * K; i++)
        x[i] = (float)um_rng_normal(&rng);
    static const um_dtype types[] = {UM_Q8_0, UM_Q4_0, UM_Q4_K, UM_Q6_K};
    printf("path %s (CPU class %s), limit: %s\n\n", um_kernel_path_name(path), um_cpu_class(),
           um_peak_name(UM_PEAK_DOT_I8));
    printf("| weights | kernel | limit, 1 thread (GOP/s) | kernel in cache | driver, 1 thread "
           "| driver, %d threads (per thread) |\n",
           threads);
    printf("|---|---|---|---|---|---|\n");
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        um_dtype t = types[ti];
        const mm_kernels *ks = mm_choose_kernels(path, MM_I8, t);
        size_t rb = um_row_bytes(t, K);
        uint8_t *wd = malloc(rb * M);
        for (int64_t r = 0; r < M; r++) {
            for (int64_t i = 0; i < K; i++)
                row[i] = 0.02f * (float)um_rng_normal(&rng);
            um_quantize_row(t, row, wd + r * rb, K);
        }
        um_weight w = {t, M, K, wd, false, NULL};
        if (!mm_pack_weight(one, ks, &w, NULL)) { /* as a model's weights are, at load */
            fprintf(stderr, "int8_kernel: out of memory packing the %s weights\n", um_dtype_name(t));
            return 1;
        }
        double limit = um_peak_gflops(one, UM_PEAK_DOT_I8, 0.3);
        double gk = 2.0 * ks->mr * ks->nr * KC / kernel_seconds(ks, reps) / 1e9;
        double ops = 2.0 * N * (double)M * K;
        double g1 = ops / driver_seconds(one, ks, &w, x, y, reps) / 1e9;
        double gn = ops / driver_seconds(all, ks, &w, x, y, reps) / 1e9 / threads;
        printf("| %s | %s | %.0f | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f (%.0f%%) |\n", um_dtype_name(t), ks->name,
               limit, gk, 100 * gk / limit, g1, 100 * g1 / limit, gn, 100 * gn / limit);
        um_weight_unpack(&w);
        free(wd);
    }
    free(x);
    free(y);
    free(row);
    um_pool_destroy(one);
    um_pool_destroy(all);
    return 0;
}
