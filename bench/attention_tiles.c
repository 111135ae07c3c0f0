/* The two products of inference attention's key tiles (kernels/ops.c), as
 * um_gemm_acc runs them on the path in use (UNMASK_CPU masks the CPU):
 * scores = Q K^T over Q_TILE 24 queries, head_dim 64 and K_TILE 64 keys,
 * and O += P V back into head_dim 64: both are C[24][64] += A[24][64]
 * B[64][64] with A row-major. On one thread, operands in cache, against
 * the one-thread f32 FMA limit (kernels/peak.c) of the same run.
 *
 * Built and run by bench/attention_tiles.sh. Times are the best of R runs. */
#include <stdio.h>
#include <stdlib.h>

#include "base/pool.h"
#include "base/sys.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/peak.h"

enum { CALLS = 200 };

/* GFLOP/s of C[m][n] += A B (A(i, k) at i * a_i + k * a_k, B [kk][n]). */
static double gflops(um_kernel_path path, int m, int n, int kk, int a_i, int a_k, int reps) {
    float *A = calloc((size_t)m * kk, sizeof(float)), *B = calloc((size_t)kk * n, sizeof(float));
    float *C = calloc((size_t)m * n, sizeof(float));
    if (!A || !B || !C) {
        fprintf(stderr, "attention_tiles: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < m * kk; i++)
        A[i] = 1e-3f * (float)(i % 13);
    for (int i = 0; i < kk * n; i++)
        B[i] = 1e-3f * (float)(i % 7);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = um_now();
        for (int i = 0; i < CALLS; i++)
            um_gemm_acc(path, C, n, A, a_i, a_k, B, n, m, n, kk);
        double dt = (um_now() - t0) / CALLS;
        best = dt < best ? dt : best;
    }
    free(A);
    free(B);
    free(C);
    return 2.0 * m * n * kk / best / 1e9;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 50;
    um_kernel_path path = um_kernel_path_get();
    um_pool *one = um_pool_create(1);
    double limit = um_peak_gflops(one, UM_PEAK_FMA_F32, 0.3);
    double g = gflops(path, 24, 64, 64, 64, 1, reps);
    printf("path %s (CPU class %s), one thread: attention's tile product (24 x 64 x 64) %.0f GFLOP/s, "
           "%.0f%% of the f32 FMA limit (%.0f GFLOP/s)\n",
           um_kernel_path_name(path), um_cpu_class(), g, 100 * g / limit, limit);
    um_pool_destroy(one);
    return 0;
}
