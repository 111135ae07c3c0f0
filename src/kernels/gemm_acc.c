/* C += A B for the small, strided products of training's attention (scores,
 * probabilities times values and their gradients): one thread, operands
 * already in cache, A readable with any strides so that a transposed A costs
 * nothing. The body below is compiled once per instruction-set path; the
 * path in use (kernels/cpu.h) picks the copy.
 *
 * Each element of C sums over k in order, starting from its own value, so
 * tiling does not change the result; only the path's FMA contraction does. */
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/dtype.h"
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

/* ---- bf16 pairs (reduced-precision attention) ------------------------------ */

/* The portable products: one f32 multiply-add per bf16 value, the odd one of
 * each pair first, as vdpbf16ps adds them; the products of two bf16 values
 * are exact in f32, so contraction into an FMA changes nothing. */
static void gemm_acc_bf16_portable(float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B, int ldb,
                                   int m, int n, int kp) {
    for (int i = 0; i < m; i++)
        for (int x = 0; x < n; x++) {
            float c = C[(size_t)i * ldc + x];
            for (int p = 0; p < kp; p++) {
                uint32_t a = A[(size_t)i * lda + p], b = B[(size_t)p * ldb + x];
                c += um_bf16_to_f32((uint16_t)(a >> 16)) * um_bf16_to_f32((uint16_t)(b >> 16));
                c += um_bf16_to_f32((uint16_t)a) * um_bf16_to_f32((uint16_t)b);
            }
            C[(size_t)i * ldc + x] = c;
        }
}

static void bf16_pairs_portable(uint32_t *dst, const float *src, int n) {
    for (int i = 0; 2 * i < n; i++)
        dst[i] = um_f32_to_bf16(src[2 * i]) | (2 * i + 1 < n ? (uint32_t)um_f32_to_bf16(src[2 * i + 1]) << 16 : 0);
}

#if defined(__x86_64__)
#define TGT_BF16_DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define BF16_MR 6

TGT_BF16_DOT static inline __mmask16 first_lanes(int count) {
    return count >= 16 ? 0xffff : count <= 0 ? 0 : (__mmask16)((1u << count) - 1);
}

/* BF16_MR rows x 32 columns of C in 12 registers across the pairs; rows past
 * m repeat the last one and are not stored. */
TGT_BF16_DOT static void gemm_acc_bf16_avx512(float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B,
                                              int ldb, int m, int n, int kp) {
    for (int x = 0; x < n; x += 32) {
        __mmask16 m0 = first_lanes(n - x), m1 = first_lanes(n - x - 16);
        for (int i = 0; i < m; i += BF16_MR) {
            const uint32_t *a[BF16_MR];
            __m512 c0[BF16_MR], c1[BF16_MR];
            for (int r = 0; r < BF16_MR; r++) {
                int row = i + r < m ? i + r : m - 1;
                a[r] = A + (size_t)row * lda;
                c0[r] = _mm512_maskz_loadu_ps(m0, C + (size_t)row * ldc + x);
                c1[r] = _mm512_maskz_loadu_ps(m1, C + (size_t)row * ldc + x + 16);
            }
            for (int p = 0; p < kp; p++) {
                const uint32_t *b = B + (size_t)p * ldb + x;
                __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(m0, b);
                __m512bh b1 = (__m512bh)_mm512_maskz_loadu_epi32(m1, b + 16);
                for (int r = 0; r < BF16_MR; r++) {
                    __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r][p]);
                    c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
                    c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
                }
            }
            for (int r = 0; r < BF16_MR && i + r < m; r++) {
                _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + x, m0, c0[r]);
                _mm512_mask_storeu_ps(C + (size_t)(i + r) * ldc + x + 16, m1, c1[r]);
            }
        }
    }
}

/* vcvtne2ps2bf16 rounds to nearest even as um_f32_to_bf16 does, except that
 * it flushes subnormal inputs to zero. */
TGT_BF16_DOT static void bf16_pairs_avx512(uint32_t *dst, const float *src, int n) {
    int i = 0;
    for (; 2 * i + 32 <= n; i += 16) {
        __m512 lo = _mm512_loadu_ps(src + 2 * i), hi = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
    bf16_pairs_portable(dst + i, src + 2 * i, n - 2 * i);
}
#endif

void um_gemm_acc_bf16(float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B, int ldb, int m, int n,
                      int kp) {
#if defined(__x86_64__)
    if (um_kernel_path_get() == UM_PATH_AVX512 && um_cpu_features_get()->avx512_bf16) {
        gemm_acc_bf16_avx512(C, ldc, A, lda, B, ldb, m, n, kp);
        return;
    }
#endif
    gemm_acc_bf16_portable(C, ldc, A, lda, B, ldb, m, n, kp);
}

void um_bf16_pairs(uint32_t *dst, const float *src, int n) {
#if defined(__x86_64__)
    if (um_kernel_path_get() == UM_PATH_AVX512 && um_cpu_features_get()->avx512_bf16) {
        bf16_pairs_avx512(dst, src, n);
        return;
    }
#endif
    bf16_pairs_portable(dst, src, n);
}
