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
#if defined(__x86_64__)
GEMM_ACC_ROWS(rows_avx2, TGT_AVX2)
GEMM_ACC_ROWS(rows_avx512, TGT_AVX512)
GEMM_ACC(gemm_acc_avx512, rows_avx512, TGT_AVX512, vec16, 6, 16)

/* GEMM_ACC by hand for AVX2: GCC keeps a generic vector of 16 floats in
 * memory there (a load and a store per multiply-add), and tiles one ymm
 * wide (6 x 8) leave 6 chains of FMAs, too few to cover the FMA's latency
 * at two a cycle. Here 6 x 16 tiles of C sit in 12 ymm registers, A's
 * elements broadcast one at a time; each element still sums over k in
 * order from its own value (the same FMAs as the generic tile). */
#define AVX2_MR 6
#define AVX2_NR 16
TGT_AVX2 static void gemm_acc_avx2(float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb,
                                   int m, int n, int kk) {
    int i = 0, n_tiled = n / AVX2_NR * AVX2_NR;
    for (; i + AVX2_MR <= m; i += AVX2_MR) {
        for (int x = 0; x < n_tiled; x += AVX2_NR) {
            __m256 c[AVX2_MR * 2]; /* row r, columns x + 8v..: c[2r + v] */
            _Pragma("GCC unroll 12") for (int j = 0; j < AVX2_MR * 2; j++)
                c[j] = _mm256_loadu_ps(C + (size_t)(i + j / 2) * ldc + x + 8 * (j % 2));
            for (int k = 0; k < kk; k++) {
                const float *b = B + (size_t)k * ldb + x;
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                _Pragma("GCC unroll 6") for (int r = 0; r < AVX2_MR; r++) {
                    __m256 av = _mm256_broadcast_ss(A + (size_t)(i + r) * a_i + (size_t)k * a_k);
                    c[2 * r] = _mm256_fmadd_ps(av, b0, c[2 * r]);
                    c[2 * r + 1] = _mm256_fmadd_ps(av, b1, c[2 * r + 1]);
                }
            }
            _Pragma("GCC unroll 12") for (int j = 0; j < AVX2_MR * 2; j++)
                _mm256_storeu_ps(C + (size_t)(i + j / 2) * ldc + x + 8 * (j % 2), c[j]);
        }
        rows_avx2(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, AVX2_MR, n_tiled, n, kk);
    }
    rows_avx2(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, m - i, 0, n, kk);
}
#endif
#if defined(__aarch64__)
#include <arm_neon.h>

GEMM_ACC_ROWS(rows_neon, TGT_NEON)

/* GEMM_ACC by hand for NEON: on arm64 GCC keeps an array of generic
 * vectors wider than a q register in memory, a load and a store per
 * multiply-add, and one q register a row leaves a load per fmla. Here 4 x
 * 16 tiles of C sit in 16 q registers (at 6 rows GCC loads all six of A's
 * elements at once and spills), A's elements broadcast one at a time;
 * each element still sums over k in order from its own value. */
#define NEON_MR 4
#define NEON_NR 16
TGT_NEON static void gemm_acc_neon(float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb,
                                   int m, int n, int kk) {
    int i = 0, n_tiled = n / NEON_NR * NEON_NR;
    for (; i + NEON_MR <= m; i += NEON_MR) {
        for (int x = 0; x < n_tiled; x += NEON_NR) {
            float32x4_t c[NEON_MR * 4]; /* row r, columns x + 4v..: c[4r + v] */
            _Pragma("GCC unroll 16") for (int j = 0; j < NEON_MR * 4; j++)
                c[j] = vld1q_f32(C + (size_t)(i + j / 4) * ldc + x + 4 * (j % 4));
            for (int k = 0; k < kk; k++) {
                const float *b = B + (size_t)k * ldb + x;
                float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
                _Pragma("GCC unroll 4") for (int r = 0; r < NEON_MR; r++) {
                    float32x4_t av = vld1q_dup_f32(A + (size_t)(i + r) * a_i + (size_t)k * a_k);
                    c[4 * r] = vfmaq_f32(c[4 * r], av, b0);
                    c[4 * r + 1] = vfmaq_f32(c[4 * r + 1], av, b1);
                    c[4 * r + 2] = vfmaq_f32(c[4 * r + 2], av, b2);
                    c[4 * r + 3] = vfmaq_f32(c[4 * r + 3], av, b3);
                }
            }
            _Pragma("GCC unroll 16") for (int j = 0; j < NEON_MR * 4; j++)
                vst1q_f32(C + (size_t)(i + j / 4) * ldc + x + 4 * (j % 4), c[j]);
        }
        rows_neon(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, NEON_MR, n_tiled, n, kk);
    }
    rows_neon(C + (size_t)i * ldc, ldc, A + (size_t)i * a_i, a_i, a_k, B, ldb, m - i, 0, n, kk);
}
#endif

void um_gemm_acc(um_kernel_path path, float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb, int m,
                 int n, int kk) {
    switch (path) {
#if defined(__x86_64__)
    case UM_PATH_AVX512: gemm_acc_avx512(C, ldc, A, a_i, a_k, B, ldb, m, n, kk); break;
    case UM_PATH_AVX2: gemm_acc_avx2(C, ldc, A, a_i, a_k, B, ldb, m, n, kk); break;
#endif
#if defined(__aarch64__)
    case UM_PATH_NEON: gemm_acc_neon(C, ldc, A, a_i, a_k, B, ldb, m, n, kk); break;
#endif
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

#if defined(__aarch64__)
#define TGT_NEON_BF16 __attribute__((target("arch=armv8.2-a+bf16")))
#define NEON_BF16_MR 4 /* 16 accumulators, 4 panel vectors, 4 broadcasts: at 6 GCC spilled */

/* Up to NEON_BF16_MR rows of C (rows past `rows` repeat the last one and
 * are not stored) x nv vectors of 4 columns. bfmlalt then bfmlalb: per bf16
 * value one fused multiply-add rounded to nearest under the FPCR (no flush
 * to zero on Linux), the odd value of each pair first: the portable
 * emulation's operations exactly. (bfdot and bfmmla would not do: they add
 * a pair's two products first, rounding to odd.) */
TGT_NEON_BF16 static inline __attribute__((always_inline)) void
bf16_tile_neon(float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B, int ldb, int rows, int kp, int nv) {
    /* row r, columns 4v..4v+3: c[4r + v]; one-dimensional and every loop
     * unrolled, or GCC keeps the array in memory (see gemm_acc_neon) */
    float32x4_t c[NEON_BF16_MR * 4];
    const uint32_t *a[NEON_BF16_MR];
    _Pragma("GCC unroll 4") for (int r = 0; r < NEON_BF16_MR; r++)
        a[r] = A + (size_t)(r < rows ? r : rows - 1) * lda;
    _Pragma("GCC unroll 16") for (int j = 0; j < NEON_BF16_MR * 4; j++)
        if (j % 4 < nv)
            c[j] = vld1q_f32(C + (size_t)(j / 4 < rows ? j / 4 : rows - 1) * ldc + 4 * (j % 4));
    for (int p = 0; p < kp; p++) {
        bfloat16x8_t b[4];
        _Pragma("GCC unroll 4") for (int v = 0; v < nv; v++)
            b[v] = vreinterpretq_bf16_u32(vld1q_u32(B + (size_t)p * ldb + 4 * v));
        _Pragma("GCC unroll 16") for (int j = 0; j < NEON_BF16_MR * 4; j++) {
            if (j % 4 >= nv)
                continue;
            bfloat16x8_t av = vreinterpretq_bf16_u32(vdupq_n_u32(a[j / 4][p]));
            c[j] = vbfmlalbq_f32(vbfmlaltq_f32(c[j], av, b[j % 4]), av, b[j % 4]);
        }
    }
    _Pragma("GCC unroll 16") for (int j = 0; j < NEON_BF16_MR * 4; j++)
        if (j % 4 < nv && j / 4 < rows)
            vst1q_f32(C + (size_t)(j / 4) * ldc + 4 * (j % 4), c[j]);
}

/* Columns 16 at a time, then 4, then the rest on the portable loop (the same operations). */
TGT_NEON_BF16 static void gemm_acc_bf16_neon(float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B,
                                             int ldb, int m, int n, int kp) {
    int x = 0;
    for (; x < n / 4 * 4; x += x + 16 <= n ? 16 : 4)
        for (int i = 0; i < m; i += NEON_BF16_MR) {
            int rows = m - i < NEON_BF16_MR ? m - i : NEON_BF16_MR;
            float *c = C + (size_t)i * ldc + x;
            const uint32_t *a = A + (size_t)i * lda;
            if (x + 16 <= n)
                bf16_tile_neon(c, ldc, a, lda, B + x, ldb, rows, kp, 4);
            else
                bf16_tile_neon(c, ldc, a, lda, B + x, ldb, rows, kp, 1);
        }
    if (x < n)
        gemm_acc_bf16_portable(C + x, ldc, A, lda, B + x, ldb, m, n - x, kp);
}

/* um_f32_to_bf16 on 4 lanes (integer operations only: any NEON CPU), in the low halves. */
static inline uint32x4_t to_bf16_neon(float32x4_t f) {
    uint32x4_t u = vreinterpretq_u32_f32(f);
    uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), odd)), 16);
    return vbslq_u32(nan, vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40)), r);
}

static void bf16_pairs_neon(uint32_t *dst, const float *src, int n) {
    int i = 0;
    for (; 2 * i + 8 <= n; i += 4) {
        uint16x4_t lo = vmovn_u32(to_bf16_neon(vld1q_f32(src + 2 * i)));
        uint16x4_t hi = vmovn_u32(to_bf16_neon(vld1q_f32(src + 2 * i + 4)));
        vst1q_u32(dst + i, vreinterpretq_u32_u16(vcombine_u16(lo, hi))); /* value 2j in the low half of pair j */
    }
    bf16_pairs_portable(dst + i, src + 2 * i, n - 2 * i);
}
#endif

void um_gemm_acc_bf16(um_kernel_path path, float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B, int ldb, int m, int n,
                      int kp) {
#if defined(__x86_64__)
    if (path == UM_PATH_AVX512 && um_cpu_features_get()->avx512_bf16) {
        gemm_acc_bf16_avx512(C, ldc, A, lda, B, ldb, m, n, kp);
        return;
    }
#endif
#if defined(__aarch64__)
    if (path == UM_PATH_NEON && um_cpu_features_get()->neon_bf16) {
        gemm_acc_bf16_neon(C, ldc, A, lda, B, ldb, m, n, kp);
        return;
    }
#endif
    gemm_acc_bf16_portable(C, ldc, A, lda, B, ldb, m, n, kp);
}

void um_bf16_pairs(um_kernel_path path, uint32_t *dst, const float *src, int n) {
#if defined(__x86_64__)
    if (path == UM_PATH_AVX512 && um_cpu_features_get()->avx512_bf16) {
        bf16_pairs_avx512(dst, src, n);
        return;
    }
#endif
#if defined(__aarch64__)
    if (path == UM_PATH_NEON) {
        bf16_pairs_neon(dst, src, n);
        return;
    }
#endif
    bf16_pairs_portable(dst, src, n);
}
