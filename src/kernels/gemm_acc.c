/* C += A B for the small, strided products of training's attention (scores,
 * probabilities times values and their gradients): one thread, operands
 * already in cache, A readable with any strides so that a transposed A costs
 * nothing. The body below is compiled once per instruction-set path; the
 * path in use (kernels/cpu.h) picks the copy.
 *
 * Each element of C sums over k in order, starting from its own value, so
 * tiling does not change the result; only the path's FMA contraction does. */
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/vec.h"

/* Rows of C that a tile cannot cover, or all of them: one row of C and one
 * row of B at a time, vectorized along x by the compiler. */
#define GEMM_ACC_ROWS(NAME, TGT)                                                                               \
    TGT static void NAME(float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb, int m,  \
                         int x0, int n, int kk) {                                                              \
        for (int i = 0; i < m; i++) {                                                                          \
            float *c = C + (size_t)i * ldc;                                                                    \
            for (int k = 0; k < kk; k++) {                                                                     \
                float a = A[(size_t)i * a_i + (size_t)k * a_k];                                                \
                const float *b = B + (size_t)k * ldb;                                                          \
                for (int x = x0; x < n; x++)                                                                   \
                    c[x] += a * b[x];                                                                          \
            }                                                                                                  \
        }                                                                                                      \
    }

/* MR x NR tiles of C held in vector registers across the k loop: a plain
 * loop over rows loads and stores C once per multiply-add and ran at a third
 * of the matmul's speed. VEC is a GCC/clang vector of NR floats. */
#define GEMM_ACC(NAME, ROWS, TGT, VEC, MR, NR)                                                                 \
    TGT static void NAME(float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb, int m,  \
                         int n, int kk) {                                                                      \
        int i = 0, n_tiled = n / NR * NR;                                                                      \
        for (; i + MR <= m; i += MR) {                                                                         \
            for (int x = 0; x < n_tiled; x += NR) {                                                            \
                VEC acc[MR];                                                                                   \
                for (int r = 0; r < MR; r++)                                                                   \
                    memcpy(&acc[r], C + (size_t)(i + r) * ldc + x, sizeof(VEC));                               \
                for (int k = 0; k < kk; k++) {                                                                 \
                    VEC b;                                                                                     \
                    memcpy(&b, B + (size_t)k * ldb + x, sizeof b);                                             \
                    for (int r = 0; r < MR; r++)                                                               \
                        acc[r] += A[(size_t)(i + r) * a_i + (size_t)k * a_k] * b;                              \
                }                                                                                              \
                for (int r = 0; r < MR; r++)                                                                   \
                    memcpy(C + (size_t)(i + r) * ldc + x, &acc[r], sizeof(VEC));                               \
            }                                                                                                  \
            ROWS(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, MR, n_tiled, n, kk);         \
        }                                                                                                      \
        ROWS(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, m - i, 0, n, kk);                \
    }


GEMM_ACC_ROWS(rows_portable, TGT_PORTABLE)
GEMM_ACC(gemm_acc_portable, rows_portable, TGT_PORTABLE, vec8, 4, 8)
GEMM_ACC_ROWS(rows_avx2, TGT_AVX2)
GEMM_ACC(gemm_acc_avx2, rows_avx2, TGT_AVX2, vec8, 6, 8)
GEMM_ACC_ROWS(rows_avx512, TGT_AVX512)
GEMM_ACC(gemm_acc_avx512, rows_avx512, TGT_AVX512, vec16, 6, 16)

void um_gemm_acc(float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb, int m, int n, int kk) {
    switch (um_kernel_path_get()) {
    case UM_PATH_AVX512: gemm_acc_avx512(C, ldc, A, a_i, a_k, B, ldb, m, n, kk); break;
    case UM_PATH_AVX2: gemm_acc_avx2(C, ldc, A, a_i, a_k, B, ldb, m, n, kk); break;
    default: gemm_acc_portable(C, ldc, A, a_i, a_k, B, ldb, m, n, kk);
    }
}
