/* Sums of exp in double over a row of float logits: the normalizer (and the
 * entropy's weighted sum) of the pick's confidence softmax, which LLaDA's
 * reference computes in float64 over the whole vocabulary at every masked
 * position of every step. One libm exp per logit took 5-6% of a llada-1b
 * step on AVX2 (126,464 per position); this is the same sum, vectorized.
 *
 * exp(x), x = k ln 2 + r with |r| <= ln 2 / 2: k rounded by adding and
 * subtracting 1.5 * 2^52 (whose low bits then hold k, for 2^k), r by
 * Cody and Waite's two-part ln 2 (the high part's trailing zeros make k
 * times it exact), exp(r) by its Taylor series to r^13 (the next term is
 * below 5e-18 relative), then times 2^k. Arguments below -708 give 0
 * (the true values are under 3e-308: nothing beside a sum that holds
 * exp(0) = 1), -inf gives 0, NaN gives NaN.
 *
 * Every path computes the same bits: four lanes on each (one ymm, or two
 * xmm / q registers), the lanes added in one fixed order, and no fused
 * multiply-adds (contraction is off in this file), so that a seed decodes
 * to the same text on every CPU. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/vec.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* On vectors V of W doubles (F: W floats, VI and VU: W int64 and uint64),
 * four lanes in all. */
#define EXP_F64(SUFFIX, TGT, V, VI, VU, F)                                                                    \
    TGT static inline V select_##SUFFIX(VI m, V a, V b) { return (V)((m & (VI)a) | (~m & (VI)b)); }           \
                                                                                                               \
    TGT static inline V exp_##SUFFIX(V x) {                                                                    \
        const V zero = {0}, magic = zero + 0x1.8p52;                                                           \
        V xc = select_##SUFFIX(x > 709.0, zero + 709.0, x); /* no overflow of 2^k (x <= 0 here anyway) */     \
        V big = xc * 1.4426950408889634 + magic;                                                               \
        V kd = big - magic;                                                                                    \
        V r = (xc - kd * 0x1.62e42fee00000p-1) - kd * 0x1.a39ef35793c76p-33;                                   \
        V p = zero + 1.0 / 6227020800.0; /* 1/13! */                                                           \
        p = p * r + 1.0 / 479001600.0;                                                                         \
        p = p * r + 1.0 / 39916800.0;                                                                          \
        p = p * r + 1.0 / 3628800.0;                                                                           \
        p = p * r + 1.0 / 362880.0;                                                                            \
        p = p * r + 1.0 / 40320.0;                                                                             \
        p = p * r + 1.0 / 5040.0;                                                                              \
        p = p * r + 1.0 / 720.0;                                                                               \
        p = p * r + 1.0 / 120.0;                                                                               \
        p = p * r + 1.0 / 24.0;                                                                                \
        p = p * r + 1.0 / 6.0;                                                                                 \
        p = p * r + 0.5;                                                                                       \
        p = p * r + 1.0;                                                                                       \
        p = p * r + 1.0;                                                                                       \
        V two_k = (V)(((VU)big + 1023) << 52); /* big's low bits hold k: 2^k's exponent field */             \
        return select_##SUFFIX(x < -708.0, zero, p * two_k);                                                   \
    }                                                                                                          \
                                                                                                               \
    /* four values from f into the lane sums */                                                             \
    TGT static inline void exp_add_##SUFFIX(const float *f, double shift, V *sum, V *wsum, bool weighted) {   \
        enum { W = sizeof(V) / sizeof(double) };                                                               \
        for (int v = 0; v < 4 / W; v++) {                                                                      \
            F fv;                                                                                              \
            memcpy(&fv, f + v * W, sizeof fv);                                                                 \
            V x = __builtin_convertvector(fv, V) - shift;                                                      \
            V e = exp_##SUFFIX(x);                                                                             \
            sum[v] += e;                                                                                       \
            if (weighted)                                                                                      \
                wsum[v] += select_##SUFFIX(e > 0, e * x, (V){0}); /* e = 0 at x = -inf: no 0 * -inf */         \
        }                                                                                                      \
    }                                                                                                          \
                                                                                                               \
    TGT static double exp_sum_##SUFFIX(const float *s, int n, float shift, double *weighted) {                \
        enum { W = sizeof(V) / sizeof(double) };                                                               \
        V sum[4 / W], wsum[4 / W];                                                                             \
        for (int v = 0; v < 4 / W; v++)                                                                        \
            sum[v] = wsum[v] = (V){0};                                                                         \
        int i = 0;                                                                                             \
        if (weighted)                                                                                          \
            for (; i + 4 <= n; i += 4)                                                                         \
                exp_add_##SUFFIX(s + i, shift, sum, wsum, true);                                               \
        else                                                                                                   \
            for (; i + 4 <= n; i += 4)                                                                         \
                exp_add_##SUFFIX(s + i, shift, sum, wsum, false);                                              \
        if (i < n) {                                                                                           \
            float f[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}; /* past n: exp(-inf) = 0 */           \
            memcpy(f, s + i, (size_t)(n - i) * sizeof(float));                                                 \
            exp_add_##SUFFIX(f, shift, sum, wsum, weighted);                                                   \
        }                                                                                                      \
        double l[4], w[4];                                                                                     \
        for (int j = 0; j < 4; j++)                                                                            \
            l[j] = sum[j / W][j % W], w[j] = wsum[j / W][j % W];                                               \
        if (weighted)                                                                                          \
            *weighted = (w[0] + w[1]) + (w[2] + w[3]);                                                         \
        return (l[0] + l[1]) + (l[2] + l[3]);                                                                  \
    }

EXP_F64(portable, TGT_PORTABLE, vec2d, ivec2d, uvec2d, vec2f)
#if defined(__x86_64__)
EXP_F64(avx2, TGT_AVX2, vec4d, ivec4d, uvec4d, vec4)
#endif

double um_exp_sum_f64(um_kernel_path path, const float *s, int n, float shift, double *weighted) {
    switch (path) {
#if defined(__x86_64__)
    case UM_PATH_AVX2:
    case UM_PATH_AVX512: /* four lanes are one ymm: the AVX2 copy, the same bits as every other path */
        return exp_sum_avx2(s, n, shift, weighted);
#endif
    default: return exp_sum_portable(s, n, shift, weighted);
    }
}
