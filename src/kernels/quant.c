/* llama.cpp's quantized formats: reference quantizers and dequantizers.
 *
 * Byte-exactness with llama.cpp needs the same float operations in the same
 * order, each rounded to float: ggml's reference code is compiled without
 * fused multiply-add (it lives in ggml-base, built for the baseline ISA), and
 * gguf-py's numpy versions never fuse. The build uses -ffp-contract=fast, so
 * contraction is switched off for this file: a fused a*b+c rounds once where
 * ggml rounds twice and would change the odd value. Expressions below keep
 * ggml's association (e.g. (d*sc)*q, not d*(sc*q)) for the same reason.
 *
 * The algorithms are described where they are implemented; they are
 * re-derived from ggml-quants.c (quantize_row_*_ref, make_qx_quants,
 * make_qkx2_quants, nearest_int) and gguf-py's quants.py. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/quant.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ggml's threshold below which a group counts as all zeros. */
#define GROUP_MAX_EPS 1e-15f

static inline float f16(uint16_t h) { return um_f16_to_f32(h); }
static inline uint16_t to_f16(float f) { return um_f32_to_f16(f); }

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even, the way ggml does it: adding 1.5 * 2^23
 * pushes the value's integer part into the low mantissa bits (the float
 * addition does the rounding), then the bias is taken off the bit pattern.
 * Valid for |fval| < 2^22; outside that ggml's result is garbage and so is
 * ours, the same garbage. */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int32_t i;
    memcpy(&i, &val, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

size_t um_row_bytes(um_dtype t, int64_t n) {
    int be = um_dtype_block_elems(t);
    if (be <= 0 || n < 0 || n % be != 0)
        return 0;
    return (size_t)(n / be) * um_dtype_block_bytes(t);
}

/* ------------------------------------------------------------------ */
/* Q8_0: d = max|x| / 127, q = round(x / d) (half away from zero).     */

static void quantize_q8_0(const float *x, uint8_t *out, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += UM_QK) {
        float amax = 0.0f;
        for (int j = 0; j < UM_QK; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        um_block_q8_0 b;
        b.d = to_f16(d);
        for (int j = 0; j < UM_QK; j++)
            b.qs[j] = (int8_t)roundf(x[j] * id);
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q8_0(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += UM_QK) {
        um_block_q8_0 b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d);
        for (int j = 0; j < UM_QK; j++)
            y[j] = b.qs[j] * d;
    }
}

/* ------------------------------------------------------------------ */
/* Q4_0: the value of largest magnitude (first one on ties), with its   */
/* sign, maps to -8: d = max / -8, q = min(15, trunc(x/d + 8.5)).       */

static void quantize_q4_0(const float *x, uint8_t *out, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += UM_QK) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < UM_QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        um_block_q4_0 b;
        b.d = to_f16(d);
        for (int j = 0; j < UM_QK / 2; j++) {
            /* ggml truncates through int8_t; the sums lie in [0, 17) */
            int q0 = imin(15, (int)(x[j] * id + 8.5f));
            int q1 = imin(15, (int)(x[j + UM_QK / 2] * id + 8.5f));
            b.qs[j] = (uint8_t)(q0 | q1 << 4);
        }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q4_0(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += UM_QK) {
        um_block_q4_0 b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d);
        for (int j = 0; j < UM_QK / 2; j++) {
            y[j] = ((b.qs[j] & 0x0f) - 8) * d;
            y[j + UM_QK / 2] = ((b.qs[j] >> 4) - 8) * d;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x-min)/d + .5)). */

static void quantize_q4_1(const float *x, uint8_t *out, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += UM_QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < UM_QK; j++) {
            if (x[j] < min)
                min = x[j];
            if (x[j] > max)
                max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        um_block_q4_1 b;
        b.d = to_f16(d);
        b.m = to_f16(min);
        for (int j = 0; j < UM_QK / 2; j++) {
            int q0 = imin(15, (int)((x[j] - min) * id + 0.5f));
            int q1 = imin(15, (int)((x[j + UM_QK / 2] - min) * id + 0.5f));
            b.qs[j] = (uint8_t)(q0 | q1 << 4);
        }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q4_1(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += UM_QK) {
        um_block_q4_1 b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d), m = f16(b.m);
        for (int j = 0; j < UM_QK / 2; j++) {
            y[j] = (b.qs[j] & 0x0f) * d + m;
            y[j + UM_QK / 2] = (b.qs[j] >> 4) * d + m;
        }
    }
}

/* ------------------------------------------------------------------ */
/* K formats: shared helpers.                                          */

/* Best affine fit x ~ scale * L + min of one sub-block, with L in
 * [0, nmax] and min <= 0, minimizing the weighted squared error (ggml's
 * make_qkx2_quants without the mean-absolute-error variant, which only Q2_K
 * uses). Starts from the plain min/max grid, then tries nstep+1 slightly
 * different grid densities (nmax + rmin + rdelta*is over the range), solving
 * the 2x2 least-squares problem for scale and min on each candidate's L and
 * keeping it if the error drops. As in ggml, a better candidate's min is used
 * by the following candidates' grids. Returns scale; *the_min = -min >= 0. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0; /* the offset only ever shifts down: all-positive blocks start at 0 */
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = imax(0, imin(nmax, l));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) { /* a positive offset is not representable: refit the scale alone */
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Sub-block j's 6-bit scale and min from the 12 packed bytes: sub-blocks
 * 0-3 use the low 6 bits of bytes j and j+4; sub-blocks 4-7 keep their low 4
 * bits in byte j+4's nibbles and their top 2 bits in the spare top bits of
 * bytes j-4 (scale) and j (min). */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The part of Q4_K and Q5_K quantization that differs only in nmax (15 or
 * 31) and the search range: per 32-value sub-block a weighted scale/min fit
 * (weights favour large values: rms of the sub-block + |x|), then the eight
 * scales and mins are themselves quantized to 6 bits against the largest,
 * and every value is re-quantized with the scales as stored. Fills L (the
 * 0..nmax levels), d, dmin and scales[12]. */
static void quantize_k_scales(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t L[UM_QK_K],
                              uint16_t *d_out, uint16_t *dmin_out, uint8_t scales_out[UM_K_SCALE_SIZE]) {
    float scales[UM_QK_K / 32], mins[UM_QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0; /* both >= 0: the min was taken off */
    for (int j = 0; j < UM_QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, UM_K_SCALE_SIZE);
    for (int j = 0; j < UM_QK_K / 32; j++) {
        /* ggml stores nearest_int into uint8_t before clamping: a negative
         * scale wraps to a large value and clamps to 63; keep that */
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0xf) | ((lm & 0xf) << 4));
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = to_f16(max_scale / 63.f);
    *dmin_out = to_f16(max_min / 63.f);

    /* re-quantize against the stored (rounded) scales; a sub-block whose
     * scale rounds to zero keeps the levels of its fit, as in ggml */
    const float dd = f16(*d_out), dm_all = f16(*dmin_out);
    for (int j = 0; j < UM_QK_K / 32; j++) {
        uint8_t sc, m;
        scale_min_k4(j, scales_out, &sc, &m);
        const float d = dd * sc;
        if (d == 0.0f)
            continue;
        const float dm = dm_all * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

/* ------------------------------------------------------------------ */
/* Q4_K                                                                 */

static void quantize_q4_K(const float *x, uint8_t *out, int64_t nb) {
    uint8_t L[UM_QK_K];
    for (int64_t i = 0; i < nb; i++, x += UM_QK_K) {
        um_block_q4_K b;
        quantize_k_scales(x, 15, -1.f, 0.1f, 20, L, &b.d, &b.dmin, b.scales);
        /* each 64 values: the first 32 in low nibbles, the next 32 in high */
        for (int j = 0; j < UM_QK_K; j += 64)
            for (int l = 0; l < 32; l++)
                b.qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q4_K(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        um_block_q4_K b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d), min = f16(b.dmin);
        const uint8_t *q = b.qs;
        for (int j = 0; j < UM_QK_K / 64; j++, q += 32) {
            uint8_t sc, m;
            scale_min_k4(2 * j, b.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(2 * j + 1, b.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xf) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Q5_K                                                                 */

static void quantize_q5_K(const float *x, uint8_t *out, int64_t nb) {
    uint8_t L[UM_QK_K];
    for (int64_t i = 0; i < nb; i++, x += UM_QK_K) {
        um_block_q5_K b;
        quantize_k_scales(x, 31, -0.5f, 0.1f, 15, L, &b.d, &b.dmin, b.scales);
        memset(b.qh, 0, sizeof b.qh);
        /* as Q4_K for the low 4 bits; the 5th bit of sub-block s goes to bit s of qh */
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < UM_QK_K; n += 64) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    b.qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    b.qh[j] |= m2;
                }
                b.qs[n / 2 + j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q5_K(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        um_block_q5_K b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d), min = f16(b.dmin);
        const uint8_t *ql = b.qs;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < UM_QK_K / 64; j++, ql += 32) {
            uint8_t sc, m;
            scale_min_k4(2 * j, b.scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            scale_min_k4(2 * j + 1, b.scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((ql[l] & 0xf) + (b.qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Q6_K                                                                 */

/* Symmetric fit of one 16-value sub-block to levels in [-nmax, nmax-1]
 * weighted by x^2 (ggml's make_qx_quants with rmse_type 1 and no importance
 * weights). The value of largest magnitude maps to -nmax; then 18 nearby
 * grid densities are tried and the one with the best weighted least-squares
 * fit (largest sumlx^2 / suml2) wins. L receives levels + nmax. Returns the
 * scale (negative when the largest-magnitude value is positive). */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = imax(-nmax, imin(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = imax(-nmax, imin(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quantize_q6_K(const float *x, uint8_t *out, int64_t nb) {
    int8_t L[UM_QK_K];
    float scales[UM_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += UM_QK_K) {
        um_block_q6_K b;
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < UM_QK_K / 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) { /* all (near) zero: an all-zero block, d = 0 */
            memset(&b, 0, sizeof b);
            memcpy(out + i * sizeof b, &b, sizeof b);
            continue;
        }
        /* the largest scale, with its sign, maps to -128 */
        float iscale = -128.f / max_scale;
        b.d = to_f16(1 / iscale);
        for (int ib = 0; ib < UM_QK_K / 16; ib++)
            b.scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));

        /* re-quantize against the stored scales; zero scales keep the fit's levels */
        const float dd = f16(b.d);
        for (int j = 0; j < UM_QK_K / 16; j++) {
            const float d = dd * b.scales[j];
            if (d == 0.0f)
                continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, l)) + 32);
            }
        }

        /* per 128 values: low nibbles of values l and l+64 share ql[l], of
         * l+32 and l+96 share ql[l+32]; the four top-2-bit pairs share qh[l] */
        for (int j = 0; j < UM_QK_K; j += 128) {
            uint8_t *ql = b.ql + j / 2, *qh = b.qh + j / 4;
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = (uint8_t)L[j + l], q2 = (uint8_t)L[j + l + 32];
                const uint8_t q3 = (uint8_t)L[j + l + 64], q4 = (uint8_t)L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xf) | ((q3 & 0xf) << 4));
                ql[l + 32] = (uint8_t)((q2 & 0xf) | ((q4 & 0xf) << 4));
                qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
        memcpy(out + i * sizeof b, &b, sizeof b);
    }
}

static void dequantize_q6_K(const uint8_t *in, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        um_block_q6_K b;
        memcpy(&b, in + i * sizeof b, sizeof b);
        const float d = f16(b.d);
        for (int n = 0; n < UM_QK_K; n += 128, y += 128) {
            const uint8_t *ql = b.ql + n / 2, *qh = b.qh + n / 4;
            const int8_t *sc = b.scales + n / 16;
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
        }
    }
}

/* ------------------------------------------------------------------ */

void um_quantize_row(um_dtype t, const float *x, void *y, int64_t n) {
    int be = um_dtype_block_elems(t);
    if (be <= 0 || n <= 0 || n % be != 0)
        return;
    uint8_t *out = y;
    int64_t nb = n / be;
    switch (t) {
    case UM_F32:
        memcpy(out, x, (size_t)n * sizeof(float));
        break;
    case UM_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = to_f16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case UM_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = um_f32_to_bf16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
        break;
    case UM_Q8_0:
        quantize_q8_0(x, out, nb);
        break;
    case UM_Q4_0:
        quantize_q4_0(x, out, nb);
        break;
    case UM_Q4_1:
        quantize_q4_1(x, out, nb);
        break;
    case UM_Q4_K:
        quantize_q4_K(x, out, nb);
        break;
    case UM_Q5_K:
        quantize_q5_K(x, out, nb);
        break;
    case UM_Q6_K:
        quantize_q6_K(x, out, nb);
        break;
    default:
        break;
    }
}

void um_dequantize_row(um_dtype t, const void *x, float *y, int64_t n) {
    int be = um_dtype_block_elems(t);
    if (be <= 0 || n <= 0 || n % be != 0)
        return;
    const uint8_t *in = x;
    int64_t nb = n / be;
    switch (t) {
    case UM_F32:
        memcpy(y, in, (size_t)n * sizeof(float));
        break;
    case UM_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            y[i] = um_f16_to_f32(h);
        }
        break;
    case UM_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, 2);
            y[i] = um_bf16_to_f32(h);
        }
        break;
    case UM_Q8_0:
        dequantize_q8_0(in, y, nb);
        break;
    case UM_Q4_0:
        dequantize_q4_0(in, y, nb);
        break;
    case UM_Q4_1:
        dequantize_q4_1(in, y, nb);
        break;
    case UM_Q4_K:
        dequantize_q4_K(in, y, nb);
        break;
    case UM_Q5_K:
        dequantize_q5_K(in, y, nb);
        break;
    case UM_Q6_K:
        dequantize_q6_K(in, y, nb);
        break;
    default:
        break;
    }
}
