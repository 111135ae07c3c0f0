/* NEON micro-kernels and packers for the blocked matmul: the arm64 path
 * (matmul_impl.h has the driver's layouts). Advanced SIMD is part of the
 * arm64 baseline; the dot-product, i8mm and bf16 instructions sit in
 * functions with their own target attribute, and mm_neon_kernels hands out
 * only what the CPU has (its hwcaps, as UNMASK_CPU masks them), so one
 * binary runs on every arm64 CPU.
 *
 * 32 registers of 4 lanes. The tiles:
 *   F32    6 tokens x 16 features in 24 accumulators; per k, 4 panel
 *          vectors and one fmla by element per token and vector.
 *   I8     sdot (asimddot): 6 x 8, an integer and a float accumulator per
 *          output vector; smmla (i8mm): 4 x 8 as 2 x 2 blocks, each smmla a
 *          2 x 8 by 8 x 2 product, twice sdot's multiplies per instruction.
 *          Both multiply s8 by s8, so the panels hold the levels signed,
 *          q - zp (Q8_0 and F16 as Q8_0 q - 128, Q4_0 q - 8, Q6_K q - 32;
 *          the types with mins keep q, at most 31): the integer sum is then
 *          sum (q - zp) xq, exactly what the reference forms, with no
 *          correction, and the mins add their second FMA as on x86.
 *   BF16   (bf16) bfmlalt + bfmlalb, 6 x 16: one fused multiply-add per
 *          bf16 value, rounded to nearest even: products exact, sums in f32,
 *          the high value of each pair first, as vdpbf16ps computes them.
 *          bfmmla (8 x 8 as 2 x 2 blocks, each a 2 x 4 by 4 x 2 product)
 *          does four times the multiplies per instruction, but without
 *          FEAT_EBF16 it adds a pair's two products first and rounds every
 *          sum to odd, flushing subnormals: within the same f32 bound of the
 *          reference (the tests hold it there), yet not the documented bf16
 *          arithmetic, and its rounding moved a reference trajectory
 *          (test_cli's run_json_matches_reference on tiny-llada-gqa: token
 *          23, 109 -> 210) where bfmlal's keeps it. So mm_neon_kernels
 *          gives the bfmlal kernel; the bfmmla one is mm_neon_bf16_kernels(true).
 *
 * The 2 x 2 block instructions want, per operand, 2 rows of 4 (bf16) or 8
 * (int8) consecutive k: the panels are packed so (below); the activations
 * keep the driver's layout ([k/4][MR] or [k/2][MR] u32, shared with the
 * portable packers) and two vectors of them zipped give two tokens' rows. */
#include "kernels/matmul_impl.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/quant.h"

/* GCC's intrinsics for these need the armv8.2-a base named with the feature. */
#define TGT_DOT __attribute__((target("arch=armv8.2-a+dotprod")))
#define TGT_I8MM __attribute__((target("arch=armv8.2-a+i8mm")))
#define TGT_BF16 __attribute__((target("arch=armv8.2-a+bf16")))
#define INLINE static inline __attribute__((always_inline))

/* Adds the tile's rows (row i at r + i * ld) to c, or stores them plus the bias. */
INLINE void store_rows(const mm_tile *t, const float *r, int ld) {
    for (int i = 0; i < t->mr; i++) {
        float *c = t->c + i * t->ldc;
        const float *ri = r + i * ld;
        if (t->accumulate)
            for (int j = 0; j < t->nr; j++)
                c[j] += ri[j];
        else
            for (int j = 0; j < t->nr; j++)
                c[j] = ri[j] + (t->bias ? t->bias[j] : 0.0f);
    }
}

/* ---- F32: fmla ----------------------------------------------------------------- */

#define F32_NR 16
#define F32_MR 6

/* The accumulator arrays of the kernels below are one-dimensional and every
 * loop over them fully unrolled (UNROLL), so that GCC keeps them in
 * registers: with a nested loop left it kept them in memory, a store and a
 * load per fmla; */
#define UNROLL _Pragma("GCC unroll 32")
/* and the k loops of the int8 tiles kept: unrolled, GCC ran each sum's
 * whole chain at once and spilled the float accumulators */
#define NO_UNROLL _Pragma("GCC unroll 1")

static void kernel_f32(const mm_tile *t) {
    float32x4_t c[F32_MR * 4]; /* token i, features 4v..4v+3: c[4i + v] */
    UNROLL for (int i = 0; i < F32_MR * 4; i++)
        c[i] = vdupq_n_f32(0);
    const float *a = t->a, *b = t->b;
    for (int k = 0; k < t->kc; k++, a += F32_MR, b += F32_NR) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
        /* the 6 activations in two registers, used by lane (fmla by element): 24 + 4 + 2 registers */
        float32x4_t a03 = vld1q_f32(a);
        float32x2_t a45 = vld1_f32(a + 4);
#define F32_ROW(i, ai)                                                                                               \
    do {                                                                                                             \
        float32x4_t x = (ai);                                                                                        \
        c[4 * i] = vfmaq_f32(c[4 * i], b0, x);                                                                       \
        c[4 * i + 1] = vfmaq_f32(c[4 * i + 1], b1, x);                                                               \
        c[4 * i + 2] = vfmaq_f32(c[4 * i + 2], b2, x);                                                               \
        c[4 * i + 3] = vfmaq_f32(c[4 * i + 3], b3, x);                                                               \
    } while (0)
        F32_ROW(0, vdupq_laneq_f32(a03, 0));
        F32_ROW(1, vdupq_laneq_f32(a03, 1));
        F32_ROW(2, vdupq_laneq_f32(a03, 2));
        F32_ROW(3, vdupq_laneq_f32(a03, 3));
        F32_ROW(4, vdupq_lane_f32(a45, 0));
        F32_ROW(5, vdupq_lane_f32(a45, 1));
#undef F32_ROW
    }
    float r[F32_MR * F32_NR];
    UNROLL for (int i = 0; i < F32_MR * 4; i++)
        vst1q_f32(r + 4 * i, c[i]);
    store_rows(t, r, F32_NR);
}

/* F32 panel [kc][16]: each row's segment in f32, then stored down its
 * column. Quantized rows go through the reference dequantizer, so the panel
 * holds the f32 expansion to the bit; f16 rows are widened 4 at a time
 * (fcvtl, exact as um_f16_to_f32). kc <= 256 (the set's k block). */
static void pack_f32(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    float *out = dst, row[256];
    for (int f = 0; f < F32_NR; f++) {
        if (f0 + f >= w->rows) {
            for (int i = 0; i < kc; i++)
                out[i * F32_NR + f] = 0;
            continue;
        }
        if (w->type == UM_F16) {
            const uint16_t *src = (const uint16_t *)w->data + (f0 + f) * w->cols + kb;
            int i = 0;
            for (; i + 4 <= kc; i += 4)
                vst1q_f32(row + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
            for (; i < kc; i++)
                row[i] = um_f16_to_f32(src[i]);
        } else {
            mm_row_segment_f32(w, f0 + f, kb, kc, row);
        }
        for (int i = 0; i < kc; i++)
            out[i * F32_NR + f] = row[i];
    }
}

static const mm_kernels f32_set = {MM_F32, F32_MR, F32_NR, 256, 128, 0, 0, kernel_f32, pack_f32, mm_pack_act_f32,
                                   "neon-f32", 4, false};

/* ---- activations for I8 and BF16 (bit-identical to mm_pack_act_*) ---------------- */

/* Stores the 4 u32 of v at a[0], a[mr], a[2 mr], a[3 mr] (4 groups or pairs of one token). */
INLINE void store_column(uint32_t *a, int mr, uint32x4_t v) {
    a[0] = vgetq_lane_u32(v, 0);
    a[mr] = vgetq_lane_u32(v, 1);
    a[2 * mr] = vgetq_lane_u32(v, 2);
    a[3 * mr] = vgetq_lane_u32(v, 3);
}

/* 16 values times id, rounded to nearest even and narrowed to int8. fcvtns
 * gives 0 for NaN (from NaN, or inf * 0), as the portable loop's v == v
 * test does, and saturates an infinity (a subnormal max|x| makes id inf)
 * to the 32-bit extreme before the narrowing keeps its low byte, as the
 * portable (int8_t) conversion does on arm64 (fcvtzs to 32 bits). */
INLINE int8x16_t quantize16(const float *x, float32x4_t id) {
    int32x4_t i0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x), id));
    int32x4_t i1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4), id));
    int32x4_t i2 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 8), id));
    int32x4_t i3 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 12), id));
    int16x8_t h0 = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1)), h1 = vcombine_s16(vmovn_s32(i2), vmovn_s32(i3));
    return vcombine_s8(vmovn_s16(h0), vmovn_s16(h1));
}

/* mm_pack_act_i8 on whole activation blocks: max |x| by vmaxnm (NaN
 * skipped, as the scalar comparison skips it), the same multiply, fcvtns
 * for nearbyintf, the sub-blocks' sums in integers. Rows whose length is not
 * a whole number of blocks (F16 as Q8_0) go to the portable packer, which
 * pads them. */
static void act_i8(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a, float *sc) {
    if (k % ab) {
        mm_pack_act_i8(x, n, k, t0, mr, bk, ab, zp, a, sc);
        return;
    }
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t b0 = 0; b0 < k; b0 += ab) {
            float amax = 0;
            if (valid) {
                float32x4_t m = vdupq_n_f32(0);
                for (int j = 0; j < ab; j += 4)
                    m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(xr + b0 + j)));
                amax = vmaxnmvq_f32(m);
            }
            float32x4_t id = vdupq_n_f32(amax > 0 ? 127.0f / amax : 0.0f);
            float dx = amax / 127.0f;
            int sum = 0;
            for (int j = 0; j < ab; j += 16) {
                int8x16_t q = valid ? quantize16(xr + b0 + j, id) : vdupq_n_s8(0);
                store_column(a + (b0 + j) / 4 * mr + t, mr, vreinterpretq_u32_s8(q));
                sum += vaddlvq_s8(q);
                if ((j + 16) % bk == 0) { /* a sub-block complete */
                    mm_store_act_scales(sc, (b0 + j + 16) / bk - 1, mr, t, dx, sum, zp);
                    sum = 0;
                }
            }
        }
    }
}

/* um_f32_to_bf16 on 4 lanes (integer operations, any NEON CPU), in the low halves. */
INLINE uint32x4_t to_bf16(float32x4_t f) {
    uint32x4_t u = vreinterpretq_u32_f32(f);
    uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), odd)), 16);
    return vbslq_u32(nan, vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40)), r);
}

/* mm_pack_act_bf16: 8 values (4 pairs) at a time, the rest one pair at a time. */
static void act_bf16(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                     float *sc) {
    int64_t kp = (k + 1) / 2;
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        if (t0 + t >= n) {
            for (int64_t p = 0; p < kp; p++)
                a[p * mr + t] = 0;
            continue;
        }
        int64_t p = 0;
        for (; 2 * p + 8 <= k; p += 4) {
            uint16x4_t lo = vmovn_u32(to_bf16(vld1q_f32(xr + 2 * p)));
            uint16x4_t hi = vmovn_u32(to_bf16(vld1q_f32(xr + 2 * p + 4)));
            store_column(a + p * mr + t, mr, vreinterpretq_u32_u16(vcombine_u16(lo, hi)));
        }
        for (; p < kp; p++) {
            uint32_t lo = um_f32_to_bf16(xr[2 * p]), hi = 2 * p + 1 < k ? um_f32_to_bf16(xr[2 * p + 1]) : 0;
            a[p * mr + t] = lo | hi << 16;
        }
    }
}

/* ---- I8 panels -------------------------------------------------------------------- */

/* Per sub-block of bk: the signed levels, feature f's k-group of `group`
 * consecutive values (4 for sdot, 8 for smmla) at bytes
 * (k / group) * nr * group + f * group, then scale[nr] and mn[nr] f32
 * (mm_i8_block_bytes). Rows past the weight's end are zeros. The levels
 * come from the portable unpacker (a ragged last sub-block, F16's only,
 * zero-padded there). */
INLINE void pack_i8_groups(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst, int nr, int group) {
    int bk = mm_i8_bk(w->type), zp = mm_i8_zp(w->type);
    size_t rb = um_row_bytes(w->type, w->cols), ob = mm_i8_block_bytes(bk, nr);
    uint8_t *out = dst;
    for (int64_t s = kb / bk; s < (kb + kc + bk - 1) / bk; s++, out += ob) {
        int8_t *lv = (int8_t *)out;
        float *ws = (float *)(out + bk * nr);
        for (int f = 0; f < nr; f++) {
            uint8_t q[32] = {0};
            float scale = 0, mn = 0;
            bool valid = f0 + f < w->rows;
            if (valid)
                mm_unpack_levels(w->type, (const uint8_t *)w->data + (size_t)(f0 + f) * rb, w->cols, bk, s, q, &scale,
                                 &mn);
            for (int k = 0; k < bk; k++)
                lv[(k / group) * nr * group + f * group + k % group] = (int8_t)(valid ? q[k] - zp : 0);
            ws[f] = scale;
            ws[nr + f] = mn;
        }
    }
}

/* ---- I8: sdot ------------------------------------------------------------------- */

#define DOT_NR 8
#define DOT_MR 6

static void pack_i8_dot(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_i8_groups(w, f0, kb, kc, dst, DOT_NR, 4);
}

/* Per sub-block: sdot of each 4-byte group of the 6 tokens (by element,
 * from two registers) against 4-byte groups of 8 features (two vectors),
 * into int32 sums; then scaled into the f32 accumulators. 12 + 12
 * accumulators, 2 panel vectors, 2 of activations. */
TGT_DOT INLINE void dot_tile(const mm_tile *t, int bk, bool mins) {
    float32x4_t c[DOT_MR * 2]; /* token i, features 4v..4v+3: c[2i + v]; the same for the sums */
    UNROLL for (int i = 0; i < DOT_MR * 2; i++)
        c[i] = vdupq_n_f32(0);
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const int8_t *b = t->b;
    for (int s = 0; s < t->kc / bk; s++, sc += MM_SC_ROWS * DOT_MR) {
        int32x4_t is[DOT_MR * 2];
        UNROLL for (int i = 0; i < DOT_MR * 2; i++)
            is[i] = vdupq_n_s32(0);
        NO_UNROLL for (int g = 0; g < bk / 4; g++, a += DOT_MR, b += 4 * DOT_NR) {
            int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16);
            int8x16_t a03 = vreinterpretq_s8_u32(vld1q_u32(a));
            int8x8_t a45 = vreinterpret_s8_u32(vld1_u32(a + 4));
#define DOT_ROW(i, fn, av, lane)                                                                                     \
    do {                                                                                                             \
        is[2 * i] = fn(is[2 * i], b0, av, lane);                                                                     \
        is[2 * i + 1] = fn(is[2 * i + 1], b1, av, lane);                                                             \
    } while (0)
            DOT_ROW(0, vdotq_laneq_s32, a03, 0);
            DOT_ROW(1, vdotq_laneq_s32, a03, 1);
            DOT_ROW(2, vdotq_laneq_s32, a03, 2);
            DOT_ROW(3, vdotq_laneq_s32, a03, 3);
            DOT_ROW(4, vdotq_lane_s32, a45, 0);
            DOT_ROW(5, vdotq_lane_s32, a45, 1);
#undef DOT_ROW
        }
        const float *ws = (const float *)b;
        b += 2 * DOT_NR * sizeof(float);
        float32x4_t s0 = vld1q_f32(ws), s1 = vld1q_f32(ws + 4);
        UNROLL for (int i = 0; i < DOT_MR; i++) {
            float32x4_t dx = vdupq_n_f32(sc[i]);
            c[2 * i] = vfmaq_f32(c[2 * i], vcvtq_f32_s32(is[2 * i]), vmulq_f32(s0, dx));
            c[2 * i + 1] = vfmaq_f32(c[2 * i + 1], vcvtq_f32_s32(is[2 * i + 1]), vmulq_f32(s1, dx));
            if (mins) {
                float32x4_t fb = vdupq_n_f32(sc[DOT_MR + i]);
                c[2 * i] = vfmaq_f32(c[2 * i], vld1q_f32(ws + DOT_NR), fb);
                c[2 * i + 1] = vfmaq_f32(c[2 * i + 1], vld1q_f32(ws + DOT_NR + 4), fb);
            }
        }
    }
    float r[DOT_MR * DOT_NR];
    UNROLL for (int i = 0; i < DOT_MR * 2; i++)
        vst1q_f32(r + 4 * i, c[i]);
    store_rows(t, r, DOT_NR);
}

TGT_DOT static void kernel_dot_32(const mm_tile *t) { dot_tile(t, 32, false); }
TGT_DOT static void kernel_dot_32_mins(const mm_tile *t) { dot_tile(t, 32, true); }
TGT_DOT static void kernel_dot_16(const mm_tile *t) { dot_tile(t, 16, false); }

/* ---- I8: smmla ------------------------------------------------------------------ */

#define MMLA_NR 8
#define MMLA_MR 4

static void pack_i8_mmla(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_i8_groups(w, f0, kb, kc, dst, MMLA_NR, 8);
}

/* Two tokens' 8-value groups, each as an 8-byte row: the 4-byte groups q
 * and q + 1 of tokens 0-3 (a0, a1) zipped give tokens 0 and 1 (lo) and 2
 * and 3 (hi). */
INLINE void zip_rows(const uint32_t *a, int mr, uint32x4_t *lo, uint32x4_t *hi) {
    uint32x4_t a0 = vld1q_u32(a), a1 = vld1q_u32(a + mr);
    *lo = vzip1q_u32(a0, a1);
    *hi = vzip2q_u32(a0, a1);
}

/* Stores 2 x 2 blocks c[tp fps + fp] (tokens 2tp, 2tp + 1 by features 2fp, 2fp + 1) as rows of r. */
INLINE void blocks_to_rows(const float32x4_t *c, int tps, int fps, float *r, int ld) {
    UNROLL for (int i = 0; i < tps * fps; i++) {
        int tp = i / fps, fp = i % fps;
        vst1_f32(r + 2 * tp * ld + 2 * fp, vget_low_f32(c[i]));
        vst1_f32(r + (2 * tp + 1) * ld + 2 * fp, vget_high_f32(c[i]));
    }
}

/* Per sub-block: 2 x 2 blocks of int32 sums (2 token pairs x 4 feature
 * pairs), then scaled: a block's weight scales are (s[2fp], s[2fp + 1])
 * twice, its activation scales dx[2tp] twice then dx[2tp + 1] twice. */
TGT_I8MM INLINE void mmla_tile(const mm_tile *t, int bk, bool mins) {
    float32x4_t c[2 * 4]; /* token pair tp, feature pair fp: c[4tp + fp]; the same for the sums */
    UNROLL for (int i = 0; i < 8; i++)
        c[i] = vdupq_n_f32(0);
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const int8_t *b = t->b;
    for (int s = 0; s < t->kc / bk; s++, sc += MM_SC_ROWS * MMLA_MR) {
        int32x4_t is[2 * 4];
        UNROLL for (int i = 0; i < 8; i++)
            is[i] = vdupq_n_s32(0);
        NO_UNROLL for (int g = 0; g < bk / 8; g++, a += 2 * MMLA_MR, b += 8 * MMLA_NR) {
            uint32x4_t lo, hi;
            zip_rows(a, MMLA_MR, &lo, &hi);
            int8x16_t a01 = vreinterpretq_s8_u32(lo), a23 = vreinterpretq_s8_u32(hi);
            UNROLL for (int fp = 0; fp < 4; fp++) {
                int8x16_t bv = vld1q_s8(b + 16 * fp);
                is[fp] = vmmlaq_s32(is[fp], a01, bv);
                is[4 + fp] = vmmlaq_s32(is[4 + fp], a23, bv);
            }
        }
        const float *ws = (const float *)b;
        b += 2 * MMLA_NR * sizeof(float);
        UNROLL for (int i = 0; i < 8; i++) {
            int tp = i / 4, fp = i % 4;
            float32x4_t dx = vcombine_f32(vdup_n_f32(sc[2 * tp]), vdup_n_f32(sc[2 * tp + 1]));
            float32x2_t s2 = vld1_f32(ws + 2 * fp);
            c[i] = vfmaq_f32(c[i], vcvtq_f32_s32(is[i]), vmulq_f32(vcombine_f32(s2, s2), dx));
            if (mins) {
                float32x4_t fb = vcombine_f32(vdup_n_f32(sc[MMLA_MR + 2 * tp]), vdup_n_f32(sc[MMLA_MR + 2 * tp + 1]));
                float32x2_t m2 = vld1_f32(ws + MMLA_NR + 2 * fp);
                c[i] = vfmaq_f32(c[i], vcombine_f32(m2, m2), fb);
            }
        }
    }
    float r[MMLA_MR * MMLA_NR];
    blocks_to_rows(c, 2, 4, r, MMLA_NR);
    store_rows(t, r, MMLA_NR);
}

TGT_I8MM static void kernel_mmla_32(const mm_tile *t) { mmla_tile(t, 32, false); }
TGT_I8MM static void kernel_mmla_32_mins(const mm_tile *t) { mmla_tile(t, 32, true); }
TGT_I8MM static void kernel_mmla_16(const mm_tile *t) { mmla_tile(t, 16, false); }

/* The sets per weight type: sub-block, zero point (for the activations'
 * scale rows; the panels are centred already), whether mins are added. */
#define DOT_SET(bk, zp, kernel) {MM_I8, DOT_MR, DOT_NR, 1024, 128, bk, zp, kernel, pack_i8_dot, act_i8, "neon-sdot-i8", 0, false}
#define MMLA_SET(bk, zp, kernel)                                                                                     \
    {MM_I8, MMLA_MR, MMLA_NR, 1024, 128, bk, zp, kernel, pack_i8_mmla, act_i8, "neon-smmla-i8", 0, false}
static const mm_kernels i8_sets[2][4] = {
    {DOT_SET(32, 128, kernel_dot_32), DOT_SET(32, 8, kernel_dot_32), DOT_SET(32, 0, kernel_dot_32_mins),
     DOT_SET(16, 32, kernel_dot_16)},
    {MMLA_SET(32, 128, kernel_mmla_32), MMLA_SET(32, 8, kernel_mmla_32), MMLA_SET(32, 0, kernel_mmla_32_mins),
     MMLA_SET(16, 32, kernel_mmla_16)},
};

const mm_kernels *mm_neon_i8_kernels(um_dtype t, bool i8mm) {
    const mm_kernels *sets = i8_sets[i8mm];
    switch (t) {
    case UM_F16: /* as Q8_0 */
    case UM_Q8_0:
        return &sets[0];
    case UM_Q4_0:
        return &sets[1];
    case UM_Q4_1:
    case UM_Q4_K:
    case UM_Q5_K:
        return &sets[2];
    case UM_Q6_K:
        return &sets[3];
    default:
        return NULL;
    }
}

/* ---- BF16: bfmmla (not the default: see the top) ----------------------------------- */

#define BF16_NR 8
#define BF16_MR 8

/* One bf16 weight value (f16 rounded as um_f32_to_bf16 rounds it). */
static inline uint32_t bf16_bits(um_dtype t, uint16_t v) { return t == UM_BF16 ? v : um_f32_to_bf16(um_f16_to_f32(v)); }

/* BF16 panel: for each pair of k pairs (4 consecutive k), feature f's two
 * pairs side by side, u32 at 2 NR q + 2 f: a vector of 4 u32 is then two
 * features' 4 values, bfmmla's second operand. An odd last pair stands
 * alone, u32 at 2 NR q + f (the driver's [kp][NR] for that row). Values
 * past kc and rows past the weight's end are zeros. */
static void pack_bf16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    uint32_t *out = dst;
    int kp = (kc + 1) / 2, full = kp / 2 * 2;
    for (int f = 0; f < BF16_NR; f++) {
        bool valid = f0 + f < w->rows;
        const uint16_t *row = valid ? (const uint16_t *)w->data + (f0 + f) * w->cols + kb : NULL;
        for (int p = 0; p < kp; p++) {
            uint32_t v = 0;
            if (valid)
                v = bf16_bits(w->type, row[2 * p]) | (2 * p + 1 < kc ? bf16_bits(w->type, row[2 * p + 1]) << 16 : 0);
            out[p < full ? (size_t)(p / 2) * 2 * BF16_NR + 2 * f + p % 2 : (size_t)full * BF16_NR + f] = v;
        }
    }
}

TGT_BF16 INLINE bfloat16x8_t as_bf16(uint32x4_t v) { return vreinterpretq_bf16_u32(v); }

/* 4 token pairs x 4 feature pairs of 2 x 2 blocks. Per pair of k pairs, the
 * tokens' rows come from zipping two vectors of the activations' pairs. */
TGT_BF16 static void kernel_bf16(const mm_tile *t) {
    float32x4_t c[4 * 4]; /* token pair tp, feature pair fp: c[4tp + fp] */
    UNROLL for (int i = 0; i < 16; i++)
        c[i] = vdupq_n_f32(0);
    const uint32_t *a = t->a, *b = t->b;
    int kp = (t->kc + 1) / 2, p = 0;
    for (; p + 2 <= kp; p += 2, a += 2 * BF16_MR, b += 2 * BF16_NR) {
        uint32x4_t r[4], bv[4];
        zip_rows(a, BF16_MR, &r[0], &r[1]);
        zip_rows(a + 4, BF16_MR, &r[2], &r[3]);
        UNROLL for (int fp = 0; fp < 4; fp++)
            bv[fp] = vld1q_u32(b + 4 * fp);
        UNROLL for (int i = 0; i < 16; i++)
            c[i] = vbfmmlaq_f32(c[i], as_bf16(r[i / 4]), as_bf16(bv[i % 4]));
    }
    if (p < kp) { /* an odd last pair: its partner in both operands zero */
        uint32x4_t z = vdupq_n_u32(0), a0 = vld1q_u32(a), a1 = vld1q_u32(a + 4);
        uint32x4_t r[4] = {vzip1q_u32(a0, z), vzip2q_u32(a0, z), vzip1q_u32(a1, z), vzip2q_u32(a1, z)}, bv[4];
        UNROLL for (int fp = 0; fp < 4; fp++)
            bv[fp] = vzip1q_u32(vcombine_u32(vld1_u32(b + 2 * fp), vdup_n_u32(0)), z);
        UNROLL for (int i = 0; i < 16; i++)
            c[i] = vbfmmlaq_f32(c[i], as_bf16(r[i / 4]), as_bf16(bv[i % 4]));
    }
    float out[BF16_MR * BF16_NR];
    blocks_to_rows(c, 4, 4, out, BF16_NR);
    store_rows(t, out, BF16_NR);
}

static const mm_kernels bf16_mmla_set = {MM_BF16, BF16_MR, BF16_NR, 512, 128, 0, 0, kernel_bf16, pack_bf16, act_bf16,
                                         "neon-bfmmla-bf16", 0, false};

/* ---- BF16: bfmlalt + bfmlalb ------------------------------------------------------- */

#define MLAL_NR 16
#define MLAL_MR 6

/* BF16 panel in the driver's layout: [kp][16] u32, each feature's pair of
 * k 2p, 2p + 1 (the high half zero past kc; rows past the end zeros). */
static void pack_bf16_pairs(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    uint32_t *out = dst;
    int kp = (kc + 1) / 2;
    for (int f = 0; f < MLAL_NR; f++) {
        bool valid = f0 + f < w->rows;
        const uint16_t *row = valid ? (const uint16_t *)w->data + (f0 + f) * w->cols + kb : NULL;
        for (int p = 0; p < kp; p++)
            out[p * MLAL_NR + f] =
                valid ? bf16_bits(w->type, row[2 * p]) | (2 * p + 1 < kc ? bf16_bits(w->type, row[2 * p + 1]) << 16 : 0)
                      : 0;
    }
}

/* Per k pair, for each of 6 tokens (by element from two registers) and 16
 * features: bfmlalt then bfmlalb, a fused multiply-add per bf16 value,
 * rounded to nearest even under the FPCR: the products exact and every sum
 * rounded as f32 sums round, the high value of each pair first, as
 * vdpbf16ps adds them. 24 accumulators, 4 panel vectors, 2 of activations. */
TGT_BF16 static void kernel_bf16_mlal(const mm_tile *t) {
    float32x4_t c[MLAL_MR * 4]; /* token i, features 4v..4v+3: c[4i + v] */
    UNROLL for (int i = 0; i < MLAL_MR * 4; i++)
        c[i] = vdupq_n_f32(0);
    const uint32_t *a = t->a, *b = t->b;
    int kp = (t->kc + 1) / 2;
    for (int p = 0; p < kp; p++, a += MLAL_MR, b += MLAL_NR) {
        bfloat16x8_t b0 = as_bf16(vld1q_u32(b)), b1 = as_bf16(vld1q_u32(b + 4));
        bfloat16x8_t b2 = as_bf16(vld1q_u32(b + 8)), b3 = as_bf16(vld1q_u32(b + 12));
        bfloat16x8_t a03 = as_bf16(vld1q_u32(a));
        bfloat16x4_t a45 = vreinterpret_bf16_u32(vld1_u32(a + 4));
#define MLAL_ROW(i, T, B, av, hi, lo)                                                                                \
    do {                                                                                                             \
        c[4 * i] = B(T(c[4 * i], b0, av, hi), b0, av, lo);                                                           \
        c[4 * i + 1] = B(T(c[4 * i + 1], b1, av, hi), b1, av, lo);                                                   \
        c[4 * i + 2] = B(T(c[4 * i + 2], b2, av, hi), b2, av, lo);                                                   \
        c[4 * i + 3] = B(T(c[4 * i + 3], b3, av, hi), b3, av, lo);                                                   \
    } while (0)
        MLAL_ROW(0, vbfmlaltq_laneq_f32, vbfmlalbq_laneq_f32, a03, 1, 0);
        MLAL_ROW(1, vbfmlaltq_laneq_f32, vbfmlalbq_laneq_f32, a03, 3, 2);
        MLAL_ROW(2, vbfmlaltq_laneq_f32, vbfmlalbq_laneq_f32, a03, 5, 4);
        MLAL_ROW(3, vbfmlaltq_laneq_f32, vbfmlalbq_laneq_f32, a03, 7, 6);
        MLAL_ROW(4, vbfmlaltq_lane_f32, vbfmlalbq_lane_f32, a45, 1, 0);
        MLAL_ROW(5, vbfmlaltq_lane_f32, vbfmlalbq_lane_f32, a45, 3, 2);
#undef MLAL_ROW
    }
    float r[MLAL_MR * MLAL_NR];
    UNROLL for (int i = 0; i < MLAL_MR * 4; i++)
        vst1q_f32(r + 4 * i, c[i]);
    store_rows(t, r, MLAL_NR);
}

static const mm_kernels bf16_mlal_set = {MM_BF16, MLAL_MR, MLAL_NR, 512, 128, 0, 0, kernel_bf16_mlal, pack_bf16_pairs,
                                         act_bf16, "neon-bf16", 0, false};

const mm_kernels *mm_neon_bf16_kernels(bool mmla) { return mmla ? &bf16_mmla_set : &bf16_mlal_set; }

const mm_kernels *mm_neon_kernels(mm_kind kind, um_dtype t) {
    const um_cpu_features *f = um_cpu_features_get();
    if (!f->neon)
        return NULL;
    switch (kind) {
    case MM_F32:
        return &f32_set;
    case MM_BF16:
        return f->neon_bf16 && (t == UM_BF16 || t == UM_F16) ? &bf16_mlal_set : NULL;
    case MM_I8:
        return f->neon_i8mm ? mm_neon_i8_kernels(t, true) : f->neon_dot ? mm_neon_i8_kernels(t, false) : NULL;
    }
    return NULL;
}

#else

const mm_kernels *mm_neon_kernels(mm_kind kind, um_dtype t) { return NULL; }
const mm_kernels *mm_neon_i8_kernels(um_dtype t, bool i8mm) { return NULL; }
const mm_kernels *mm_neon_bf16_kernels(bool mmla) { return NULL; }

#endif
