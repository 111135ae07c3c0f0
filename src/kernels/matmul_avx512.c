/* AVX-512 micro-kernels and packers for the blocked matmul (matmul_impl.h
 * describes the layouts). Compiled for the baseline ISA with per-function
 * target attributes; matmul.c calls them only where cpuid says the CPU has
 * the instructions.
 *
 * Register tiles: F32 and BF16 keep MR x 32 outputs in 2*MR zmm
 * accumulators; every k step (pair of k for BF16) loads two vectors of 16
 * features from the panel and broadcasts one activation per token, so the
 * FMA (or vdpbf16ps) count per load is MR. I8 keeps an integer and a float
 * accumulator per output vector: 4*MR registers, hence the smaller MR; the
 * K-quants' tile adds a super-block accumulator, hence MR 4 there. */
#include "kernels/matmul_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#include "kernels/quant.h"

/* Explicit rounding for the *_round_ps intrinsics: clang needs a literal constant here. */
#define ROUND_NEAREST (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))

#define NR 32
#define F32_MR 12
#define BF16_MR 12
#define I8_MR 6

/* ---- storing a tile ---------------------------------------------------------- */

TGT INLINE void store_tile(const mm_tile *t, __m512 *c0, __m512 *c1, int mr_max) {
    __mmask16 m0 = t->nr >= 16 ? 0xffff : (__mmask16)((1u << t->nr) - 1);
    __mmask16 m1 = t->nr >= 32 ? 0xffff : t->nr > 16 ? (__mmask16)((1u << (t->nr - 16)) - 1) : 0;
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (t->bias && !t->accumulate) {
        b0 = _mm512_maskz_loadu_ps(m0, t->bias);
        b1 = _mm512_maskz_loadu_ps(m1, t->bias + 16);
    }
    for (int i = 0; i < mr_max; i++) {
        if (i >= t->mr)
            break;
        float *c = t->c + i * t->ldc;
        __m512 v0 = c0[i], v1 = c1[i];
        if (t->accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        } else {
            v0 = _mm512_add_ps(v0, b0);
            v1 = _mm512_add_ps(v1, b1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

/* ---- F32: FMA ------------------------------------------------------------------- */

/* Row k of an F32 panel's 32 features as f32: f32 panels as stored; BF16
 * and F16 panels (f32_bytes 2: weights with f32 activations where there is
 * no bf16 dot product, or --f32) widened as they are read, exactly, so the
 * products are the f32 panels' to the bit. bf16 takes zeros below each value
 * (vpunpck[lh]wd, within 128-bit lanes: mm_bf16_panel_slot's order), f16
 * vcvtph2ps. */
TGT INLINE void panel_row(const uint8_t *b, um_dtype panel, __m512 *b0, __m512 *b1) {
    if (panel == UM_F32) {
        *b0 = _mm512_load_ps(b);
        *b1 = _mm512_load_ps(b + 64);
    } else if (panel == UM_F16) {
        *b0 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)b));
        *b1 = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(b + 32)));
    } else {
        __m512i v = _mm512_load_si512(b), zero = _mm512_setzero_si512();
        *b0 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, v));
        *b1 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, v));
    }
}

TGT INLINE void f32_tile(const mm_tile *t, um_dtype panel) {
    __m512 c0[F32_MR], c1[F32_MR];
    for (int i = 0; i < F32_MR; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    const float *a = t->a;
    const uint8_t *b = t->b;
    const int row = NR * (panel == UM_F32 ? 4 : 2);
    for (int k = 0; k < t->kc; k++, a += F32_MR, b += row) {
        __m512 b0, b1;
        panel_row(b, panel, &b0, &b1);
        for (int i = 0; i < F32_MR; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
    store_tile(t, c0, c1, F32_MR);
}

TGT static void kernel_f32(const mm_tile *t) { f32_tile(t, UM_F32); }
TGT static void kernel_f32_bf16(const mm_tile *t) { f32_tile(t, UM_BF16); }
TGT static void kernel_f32_f16(const mm_tile *t) { f32_tile(t, UM_F16); }

/* Lane i of a gather index: row i of 16, `stride` bytes apart. */
TGT INLINE __m512i row_offsets(int64_t stride) {
    return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                              _mm512_set1_epi32((int)stride));
}

TGT INLINE __mmask16 rows_mask(const um_weight *w, int64_t f) {
    int64_t left = w->rows - f;
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* 16 x 16 transpose of 32-bit elements: r[i] holds row i, then column i.
 * Unpacks within 128-bit lanes give each lane a 4 x 4 block of 4 rows; two
 * rounds of 128-bit shuffles then gather the blocks of each column. */
TGT INLINE void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4g + e], lane L: column 4L + e of rows 4g..4g+3 */
    for (int g = 0; g < 16; g += 4) {
        r[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        r[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        r[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        r[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    for (int e = 0; e < 4; e++) {
        __m512i v0 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x44), v1 = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xee);
        __m512i w0 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x44);
        __m512i w1 = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xee);
        t[e] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        t[4 + e] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        t[8 + e] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        t[12 + e] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* 16 consecutive values of row r of w from column c (fewer: zeros past
 * `count`), as f32 bits. */
TGT INLINE __m512i load_f32_bits(const um_weight *w, int64_t row, int64_t c, int count) {
    __mmask16 m = count >= 16 ? 0xffff : (__mmask16)((1u << count) - 1);
    if (w->type == UM_F32)
        return _mm512_maskz_loadu_epi32(m, (const float *)w->data + row * w->cols + c);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w->data + row * w->cols + c);
    if (w->type == UM_BF16)
        return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
    return _mm512_castps_si512(_mm512_cvtph_ps(h));
}

/* F32 panel [kc][32] from f32, bf16 or f16 rows: 16 x 16 blocks loaded
 * row-wise (converted to f32 on the way) and transposed in registers. */
TGT static void pack_f32_float(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    float *out = dst;
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        int nrows = (int)(w->rows - f < 16 ? (w->rows - f > 0 ? w->rows - f : 0) : 16);
        for (int c = 0; c < kc; c += 16) {
            int count = kc - c < 16 ? kc - c : 16;
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nrows ? load_f32_bits(w, f + i, kb + c, count) : _mm512_setzero_si512();
            transpose16(r);
            for (int i = 0; i < count; i++)
                _mm512_store_si512(out + (c + i) * NR + 16 * h, r[i]);
        }
    }
}

/* BF16 or F16 panel [kc][32] of 16-bit values: as pack_f32_float, both
 * halves of 16 rows at once, narrowed back exactly (bf16: the high halves
 * through vpackusdw, whose lane order is mm_bf16_panel_slot's; f16:
 * vcvtps2ph of values that were f16). */
TGT static void pack_h16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    uint16_t *out = dst;
    int nrows[2];
    for (int h = 0; h < 2; h++) {
        int64_t left = w->rows - (f0 + 16 * h);
        nrows[h] = left >= 16 ? 16 : left > 0 ? (int)left : 0;
    }
    for (int c = 0; c < kc; c += 16) {
        int count = kc - c < 16 ? kc - c : 16;
        __m512i r[2][16];
        for (int h = 0; h < 2; h++) {
            for (int i = 0; i < 16; i++)
                r[h][i] = i < nrows[h] ? load_f32_bits(w, f0 + 16 * h + i, kb + c, count) : _mm512_setzero_si512();
            transpose16(r[h]);
        }
        for (int i = 0; i < count; i++) {
            uint16_t *o = out + (c + i) * NR;
            if (w->type == UM_BF16) {
                _mm512_store_si512(o, _mm512_packus_epi32(_mm512_srli_epi32(r[0][i], 16), _mm512_srli_epi32(r[1][i], 16)));
            } else {
                _mm256_store_si256((__m256i *)o, _mm512_cvtps_ph(_mm512_castsi512_ps(r[0][i]), _MM_FROUND_TO_NEAREST_INT));
                _mm256_store_si256((__m256i *)(o + 16),
                                   _mm512_cvtps_ph(_mm512_castsi512_ps(r[1][i]), _MM_FROUND_TO_NEAREST_INT));
            }
        }
    }
}

TGT static void pack_f32_levels(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst);

static const mm_kernels f32_float = {MM_F32, F32_MR, NR, 256, 128, 0, 0, kernel_f32, pack_f32_float, mm_pack_act_f32,
                                   "avx512-f32", 4, false};
static const mm_kernels f32_bf16 = {MM_F32, F32_MR, NR, 256, 128, 0, 0, kernel_f32_bf16, pack_h16, mm_pack_act_f32,
                                    "avx512-f32", 2, false};
static const mm_kernels f32_f16 = {MM_F32, F32_MR, NR, 256, 128, 0, 0, kernel_f32_f16, pack_h16, mm_pack_act_f32,
                                   "avx512-f32", 2, false};
static const mm_kernels f32_quant = {MM_F32, F32_MR, NR, 256, 128, 0, 0, kernel_f32, pack_f32_levels, mm_pack_act_f32,
                                   "avx512-f32", 4, false};


/* ---- activations for BF16 and I8 (bit-identical to mm_pack_act_*) ------------ */

/* bf16 of 16 floats, rounded to nearest even, NaN kept quiet (um_f32_to_bf16). */
TGT INLINE __m256i to_bf16(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

TGT static void act_bf16(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
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
        for (; 2 * p + 32 <= k; p += 16) {
            uint32_t pairs[16];
            _mm256_storeu_si256((__m256i *)pairs, to_bf16(_mm512_loadu_ps(xr + 2 * p)));
            _mm256_storeu_si256((__m256i *)(pairs + 8), to_bf16(_mm512_loadu_ps(xr + 2 * p + 16)));
            for (int i = 0; i < 16; i++)
                a[(p + i) * mr + t] = pairs[i];
        }
        for (; p < kp; p++) {
            uint32_t lo = um_f32_to_bf16(xr[2 * p]), hi = 2 * p + 1 < k ? um_f32_to_bf16(xr[2 * p + 1]) : 0;
            a[p * mr + t] = lo | hi << 16;
        }
    }
}

/* Lanes of the 16 floats from j that lie before k: all but in a ragged last
 * block (F16 as Q8_0), which is zero-padded as mm_pack_act_i8 pads it. */
TGT INLINE __mmask16 lanes_before(int64_t j, int64_t k) {
    return k - j >= 16 ? 0xffff : k <= j ? 0 : (__mmask16)((1u << (k - j)) - 1);
}

TGT static void act_i8(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                       float *sc) {
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t b0 = 0; b0 < k; b0 += ab) {
            /* max |x| over the block's non-NaN values, like the scalar loop */
            __m512 vmax = _mm512_setzero_ps();
            for (int64_t j = b0; valid && j < b0 + ab; j += 16) {
                __m512 v = _mm512_maskz_loadu_ps(lanes_before(j, k), xr + j);
                vmax = _mm512_max_ps(vmax, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_abs_ps(v)));
            }
            float amax = _mm512_reduce_max_ps(vmax);
            __m512 vid = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            float dx = amax / 127.0f;
            for (int64_t b = b0 / 32; b < (b0 + ab) / 32; b++) {
                uint32_t qd[8] = {0};
                int sum[2] = {0, 0};
                if (valid) {
                    __m512 v0 = _mm512_maskz_loadu_ps(lanes_before(32 * b, k), xr + 32 * b);
                    __m512 v1 = _mm512_maskz_loadu_ps(lanes_before(32 * b + 16, k), xr + 32 * b + 16);
                    /* round to nearest even (the default MXCSR mode); NaN becomes 0x80000000, truncated to 0 */
                    __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)));
                    __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)));
                    _mm_storeu_si128((__m128i *)qd, q0);
                    _mm_storeu_si128((__m128i *)(qd + 4), q1);
                    sum[0] = _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q0));
                    sum[1] = _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q1));
                }
                for (int i = 0; i < 8; i++)
                    a[(8 * b + i) * mr + t] = qd[i];
                if (bk == 32) {
                    sum[0] += sum[1];
                    sum[1] = 0;
                }
                for (int h = 0; h < 32 / bk; h++) /* dx is 0 for rows past n */
                    mm_store_act_scales(sc, b * (32 / bk) + h, mr, t, dx, sum[h], zp);
            }
        }
    }
}

/* ---- BF16: vdpbf16ps ----------------------------------------------------------- */

TGT_BF16 static void kernel_bf16(const mm_tile *t) {
    __m512 c0[BF16_MR], c1[BF16_MR];
    for (int i = 0; i < BF16_MR; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    const uint32_t *a = t->a, *b = t->b;
    int kp = (t->kc + 1) / 2;
    for (int p = 0; p < kp; p++, a += BF16_MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        for (int i = 0; i < BF16_MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i]);
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
        }
    }
    store_tile(t, c0, c1, BF16_MR);
}

/* 16 pairs of row values (32 bf16 or f16 values from p, fewer: zeros past
 * `pairs`) as bf16 pairs; f16 values rounded to bf16 as um_f32_to_bf16
 * rounds them (exactly where they came from bf16, as LLaDA's and Dream's
 * weights did). */
TGT INLINE __m512i load_bf16_pairs(um_dtype t, const uint16_t *p, int pairs) {
    __mmask16 m = pairs >= 16 ? 0xffff : (__mmask16)((1u << pairs) - 1);
    __m512i v = _mm512_maskz_loadu_epi32(m, p);
    if (t == UM_BF16)
        return v;
    __m256i lo = to_bf16(_mm512_cvtph_ps(_mm512_castsi512_si256(v)));
    __m256i hi = to_bf16(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* One bf16 weight value (f16 rounded), for an odd kc's last value. */
static inline uint32_t bf16_bits(um_dtype t, uint16_t v) { return t == UM_BF16 ? v : um_f32_to_bf16(um_f16_to_f32(v)); }

/* Pairs of bf16 weights, as stored (f16 weights rounded to bf16): 16 pairs
 * (64 bytes) of 16 rows per 16 x 16 transpose. */
TGT static void pack_bf16_pairs(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    uint32_t *out = dst;
    int64_t k = w->cols;
    int full = kc / 2, kp = (kc + 1) / 2;
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        int nrows = (int)(w->rows - f < 16 ? (w->rows - f > 0 ? w->rows - f : 0) : 16);
        const uint16_t *base = (const uint16_t *)w->data + f * k + kb;
        for (int p = 0; p < full; p += 16) {
            int count = full - p < 16 ? full - p : 16;
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nrows ? load_bf16_pairs(w->type, base + i * k + 2 * p, count) : _mm512_setzero_si512();
            transpose16(r);
            for (int i = 0; i < count; i++)
                _mm512_store_si512(out + (p + i) * NR + 16 * h, r[i]);
        }
        if (kp > full) /* odd kc: the last value alone, its pair zero */
            for (int i = 0; i < 16; i++)
                out[full * NR + 16 * h + i] = i < nrows ? bf16_bits(w->type, base[i * k + 2 * full]) : 0;
    }
}

static const mm_kernels bf16_dot = {MM_BF16, BF16_MR, NR, 512, 128, 0, 0, kernel_bf16, pack_bf16_pairs, act_bf16,
                                  "avx512-bf16", 0, false};

/* ---- I8: vpdpbusd ------------------------------------------------------------ */

/* Sub-blocks of bk values for MR x 32 outputs: integer sums, then scaled.
 * With a zero point (sym) the offset comes off the integer sums, exactly,
 * and the float work per sub-block is one conversion, one multiply and one
 * FMA; otherwise the mins add a second FMA. On Zen 4 these share the pipes
 * of vpdpbusd, so they cost 3 or 4 of every 8 + 3 (or 4) slots for bk = 32. */
/* The integer sums of one sub-block (bk values) for mr tokens x 32 features
 * into i0 (features 0-15) and i1 (16-31), the zero point's share taken off
 * when sym; returns the activations past the sub-block (the panel's levels
 * of it are bk * NR bytes from b). */
TGT_VNNI INLINE const uint32_t *sub_block_sums(const uint32_t *a, const uint8_t *b, const float *sc, int bk, int mr,
                                               bool sym, __m512i *i0, __m512i *i1) {
    for (int i = 0; i < mr; i++)
        i0[i] = i1[i] = _mm512_setzero_si512();
    for (int q = 0; q < bk / 4; q++, a += mr, b += 4 * NR) {
        __m512i b0 = _mm512_load_si512(b), b1 = _mm512_load_si512(b + 64);
        for (int i = 0; i < mr; i++) {
            __m512i av = _mm512_set1_epi32((int)a[i]);
            i0[i] = _mm512_dpbusd_epi32(i0[i], b0, av);
            i1[i] = _mm512_dpbusd_epi32(i1[i], b1, av);
        }
    }
    const int32_t *zb = (const int32_t *)(sc + 2 * mr);
    for (int i = 0; sym && i < mr; i++) {
        __m512i z = _mm512_set1_epi32(zb[i]);
        i0[i] = _mm512_sub_epi32(i0[i], z);
        i1[i] = _mm512_sub_epi32(i1[i], z);
    }
    return a;
}

TGT_VNNI INLINE void i8_tile(const mm_tile *t, int bk, bool sym) {
    __m512 c0[I8_MR], c1[I8_MR];
    for (int i = 0; i < I8_MR; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    int nsb = t->kc / bk;
    for (int s = 0; s < nsb; s++, sc += MM_SC_ROWS * I8_MR) {
        __m512i i0[I8_MR], i1[I8_MR];
        a = sub_block_sums(a, b, sc, bk, I8_MR, sym, i0, i1);
        b += bk * NR;
        const float *ws = (const float *)b;
        __m512 s0 = _mm512_load_ps(ws), s1 = _mm512_load_ps(ws + 16);
        __m512 m0 = sym ? s0 : _mm512_load_ps(ws + 32), m1 = sym ? s1 : _mm512_load_ps(ws + 48);
        b += 2 * NR * sizeof(float);
        for (int i = 0; i < I8_MR; i++) {
            __m512 dx = _mm512_set1_ps(sc[i]);
            c0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[i]), _mm512_mul_ps(s0, dx), c0[i]);
            c1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[i]), _mm512_mul_ps(s1, dx), c1[i]);
            if (!sym) {
                __m512 fb = _mm512_set1_ps(sc[I8_MR + i]);
                c0[i] = _mm512_fmadd_ps(m0, fb, c0[i]);
                c1[i] = _mm512_fmadd_ps(m1, fb, c1[i]);
            }
        }
    }
    store_tile(t, c0, c1, I8_MR);
}

/* The K-quants' tile: their activations have one scale per 256 values (a
 * weight super-block, mm_i8_ab), so each sub-block's integer sum is scaled
 * by the weights' scales alone, into a super-block accumulator, and the
 * activation scale multiplies that once per super-block: per sub-block one
 * conversion and one FMA instead of a multiply and an FMA, which frees a
 * third of i8_tile's float slots (Q4_K: 72% -> 77% of the int8 limit in
 * cache, Q6_K with its 16-value sub-blocks 65% -> 78%; bench/int8_kernel.sh).
 * The mins (dx * sum xq per sub-block, exact in the activations' scale row)
 * still go straight into the outputs. Three sets of accumulators (integer,
 * super-block, output) take 24 registers at I8K_MR 4. */
#define I8K_MR 4
TGT_VNNI INLINE void i8k_tile(const mm_tile *t, int bk, bool sym) {
    __m512 c0[I8K_MR], c1[I8K_MR];
    for (int i = 0; i < I8K_MR; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    for (int g = 0; g < t->kc / 256; g++) {
        const float *dx = sc; /* every sub-block of the super-block carries the same dx */
        __m512 f0[I8K_MR], f1[I8K_MR];
        for (int i = 0; i < I8K_MR; i++)
            f0[i] = f1[i] = _mm512_setzero_ps();
        for (int s = 0; s < 256 / bk; s++, sc += MM_SC_ROWS * I8K_MR) {
            __m512i i0[I8K_MR], i1[I8K_MR];
            a = sub_block_sums(a, b, sc, bk, I8K_MR, sym, i0, i1);
            b += bk * NR;
            const float *ws = (const float *)b;
            __m512 s0 = _mm512_load_ps(ws), s1 = _mm512_load_ps(ws + 16);
            b += 2 * NR * sizeof(float);
            for (int i = 0; i < I8K_MR; i++) {
                f0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[i]), s0, f0[i]);
                f1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[i]), s1, f1[i]);
                if (!sym) {
                    __m512 fb = _mm512_set1_ps(sc[I8K_MR + i]);
                    c0[i] = _mm512_fmadd_ps(_mm512_load_ps(ws + 32), fb, c0[i]);
                    c1[i] = _mm512_fmadd_ps(_mm512_load_ps(ws + 48), fb, c1[i]);
                }
            }
        }
        for (int i = 0; i < I8K_MR; i++) {
            __m512 d = _mm512_set1_ps(dx[i]);
            c0[i] = _mm512_fmadd_ps(f0[i], d, c0[i]);
            c1[i] = _mm512_fmadd_ps(f1[i], d, c1[i]);
        }
    }
    store_tile(t, c0, c1, I8K_MR);
}

TGT_VNNI static void kernel_i8_32(const mm_tile *t) { i8_tile(t, 32, false); }
TGT_VNNI static void kernel_i8k_32(const mm_tile *t) { i8k_tile(t, 32, false); }
TGT_VNNI static void kernel_i8k_16_sym(const mm_tile *t) { i8k_tile(t, 16, true); }
TGT_VNNI static void kernel_i8_32_sym(const mm_tile *t) { i8_tile(t, 32, true); }

/* Generic I8 panel: each row's levels from the portable unpacker, then the
 * 4-byte groups of 16 rows gathered into one vector. */
TGT static void pack_i8_generic(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    int bk = mm_i8_bk(w->type);
    size_t rb = um_row_bytes(w->type, w->cols);
    uint8_t levels[16][32] __attribute__((aligned(64)));
    uint8_t *out = dst;
    for (int64_t s = kb / bk; s < (kb + kc + bk - 1) / bk; s++, out += mm_i8_block_bytes(bk, NR)) {
        float *ws = (float *)(out + bk * NR);
        for (int h = 0; h < 2; h++) {
            int64_t f = f0 + 16 * h;
            __mmask16 rm = rows_mask(w, f);
            for (int r = 0; r < 16; r++) {
                if (rm >> r & 1) {
                    mm_unpack_levels(w->type, (const uint8_t *)w->data + (size_t)(f + r) * rb, w->cols, bk, s,
                                     levels[r], &ws[16 * h + r], &ws[NR + 16 * h + r]);
                } else {
                    memset(levels[r], 0, sizeof levels[r]);
                    ws[16 * h + r] = ws[NR + 16 * h + r] = 0;
                }
            }
            __m512i idx = row_offsets(32);
            for (int q = 0; q < bk / 4; q++)
                _mm512_store_si512(out + q * 4 * NR + 64 * h, _mm512_i32gather_epi32(idx, &levels[0][4 * q], 1));
        }
    }
}


/* SIMD I8 packers. The panel wants, per vector, one 4-byte group of levels
 * from each of 16 rows. Gathering those (one vpgatherdd per vector) cost
 * about 50 cycles each on Zen 4, a sixth of a quantized forward; instead
 * each row's bytes are read with plain loads, 64 per row (the quants of 2,
 * 4 or 1 blocks, depending on the format), and 16 rows are transposed in
 * registers, which gives 16 such vectors at once. The scales come from the
 * block headers (16 rows' f16 values, then one vcvtph2ps), computed with the
 * same float operations as mm_unpack_levels. */

#define LO4 _mm512_set1_epi32(0x0f0f0f0f)

/* Row i of 16 (rows past the weight's end, rm bit clear, as zeros): n pieces
 * of `piece` bytes (16, 32 or 64) from base + i * rb + j * stride, end to
 * end, zeros after them; then transposed, so r[c] holds bytes [4c, 4c + 4)
 * of every row. */
TGT INLINE void load_rows_transposed(const uint8_t *base, size_t rb, __mmask16 rm, int piece, size_t stride, int n,
                                     __m512i r[16]) {
    for (int i = 0; i < 16; i++) {
        const uint8_t *p = base + (size_t)i * rb;
        __m512i v = _mm512_setzero_si512();
        if (rm >> i & 1) {
            if (piece == 64)
                v = _mm512_loadu_si512(p);
            else if (piece == 32)
                for (int j = 0; j < n; j++) /* the lane is an immediate, hence the cases */
                    v = j == 0 ? _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)p), 0)
                               : _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(p + stride)), 1);
            else
                for (int j = 0; j < n; j++)
                    v = j == 0   ? _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)p), 0)
                        : j == 1 ? _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + stride)), 1)
                        : j == 2 ? _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * stride)), 2)
                                 : _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * stride)), 3);
        }
        r[i] = v;
    }
    transpose16(r);
}

/* f16 in the low (hi = 0) or high half of each 32-bit lane, as f32 */
TGT INLINE __m512 half_to_f32(__m512i v, int hi) {
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(hi ? _mm512_srli_epi32(v, 16) : v));
}

/* The f16 at base + i * rb of 16 rows, as f32 (rows with rm clear: 0). */
TGT INLINE __m512 load_rows_f16(const uint8_t *base, size_t rb, __mmask16 rm) {
    uint16_t h[16];
    for (int i = 0; i < 16; i++) {
        h[i] = 0;
        if (rm >> i & 1)
            memcpy(&h[i], base + (size_t)i * rb, 2);
    }
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

TGT INLINE void store_scales(uint8_t *block, int bk, int h, __m512 scale, __m512 mn) {
    float *ws = (float *)(block + bk * NR);
    _mm512_store_ps(ws + 16 * h, scale);
    _mm512_store_ps(ws + NR + 16 * h, mn);
}

/* Q8_0 (2 blocks per transpose), Q4_0 and Q4_1 (4 blocks: 16 bytes of
 * nibbles each, the low ones values 0..15, the high ones 16..31). */
TGT static void pack_i8_simple(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    size_t rb = um_row_bytes(w->type, w->cols), bb = um_dtype_block_bytes(w->type);
    size_t ob = mm_i8_block_bytes(32, NR);
    bool q8 = w->type == UM_Q8_0;
    int per = q8 ? 2 : 4, qs = w->type == UM_Q4_1 ? 4 : 2; /* blocks per transpose; offset of the quants */
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        __mmask16 rm = rows_mask(w, f);
        const uint8_t *base = (const uint8_t *)w->data + (size_t)f * rb;
        uint8_t *out = dst;
        for (int64_t s = kb / 32, end = (kb + kc) / 32; s < end; s += per, out += per * ob) {
            int n = end - s < per ? (int)(end - s) : per;
            const uint8_t *blk = base + s * bb;
            __m512i r[16];
            load_rows_transposed(blk + qs, rb, rm, q8 ? 32 : 16, bb, n, r);
            for (int j = 0; j < n; j++) {
                __m512 d = load_rows_f16(blk + j * bb, rb, rm);
                uint8_t *o = out + j * ob + 64 * h;
                if (q8) {
                    for (int q = 0; q < 8; q++)
                        _mm512_store_si512(o + q * 4 * NR,
                                           _mm512_maskz_xor_epi32(rm, r[8 * j + q], _mm512_set1_epi32((int)0x80808080u)));
                    store_scales(out + j * ob, 32, h, d, _mm512_mul_ps(_mm512_set1_ps(-128.0f), d));
                } else {
                    for (int q = 0; q < 4; q++) {
                        __m512i g = r[4 * j + q];
                        _mm512_store_si512(o + q * 4 * NR, _mm512_and_si512(g, LO4));
                        _mm512_store_si512(o + (q + 4) * 4 * NR, _mm512_and_si512(_mm512_srli_epi32(g, 4), LO4));
                    }
                    __m512 mn = w->type == UM_Q4_0 ? _mm512_mul_ps(_mm512_set1_ps(-8.0f), d)
                                                   : load_rows_f16(blk + j * bb + 2, rb, rm);
                    store_scales(out + j * ob, 32, h, d, mn);
                }
            }
        }
    }
}

/* roundf (half away from zero) of integral-range floats, as C's. */
TGT INLINE __m512 round_half_away(__m512 v) {
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_set1_ps(1.0f), _mm512_and_ps(v, _mm512_set1_ps(-0.0f)));
    return _mm512_mask_add_ps(t, up, t, one);
}

/* F16 rows quantized to Q8_0 as they are packed (q8_0_when_reduced), with
 * the float operations of llama.cpp's quantize_row_q8_0_ref, which
 * mm_unpack_levels runs: max |x| in its order, d = max / 127, id = 1 / d,
 * q = roundf(x * id), d kept as f16. A block's 32 values of 16 rows are
 * transposed into pairs first, so that each row's max is a vertical max
 * over 32 vectors and each 4-byte group of levels is assembled in its lane.
 * A ragged last block is zero-padded. */
TGT static void pack_i8_f16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    int64_t k = w->cols;
    size_t ob = mm_i8_block_bytes(32, NR);
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        __mmask16 rm = rows_mask(w, f);
        const uint16_t *base = (const uint16_t *)w->data + f * k;
        uint8_t *out = dst;
        for (int64_t c = kb; c < kb + kc; c += 32, out += ob) {
            int64_t count = kb + kc - c;
            __mmask32 cm = count >= 32 ? 0xffffffffu : (__mmask32)((1u << count) - 1);
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = rm >> i & 1 ? _mm512_maskz_loadu_epi16(cm, base + i * k + c) : _mm512_setzero_si512();
            transpose16(r); /* r[p]: values 2p (low halves) and 2p + 1 of each row */
            __m512 x[32], amax = _mm512_setzero_ps();
            for (int j = 0; j < 32; j++) {
                x[j] = half_to_f32(r[j / 2], j % 2);
                amax = _mm512_max_ps(amax, _mm512_abs_ps(x[j])); /* amax > |x| ? amax : |x|, as the scalar loop */
            }
            __m512 d = _mm512_div_ps(amax, _mm512_set1_ps(127.0f));
            __m512 id = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(d, _mm512_setzero_ps(), _CMP_NEQ_UQ),
                                            _mm512_set1_ps(1.0f), d);
            for (int g = 0; g < 8; g++) {
                __m512i v = _mm512_setzero_si512();
                for (int e = 0; e < 4; e++) {
                    __m512i q = _mm512_cvttps_epi32(round_half_away(_mm512_mul_ps(x[4 * g + e], id)));
                    v = _mm512_or_si512(v, _mm512_slli_epi32(_mm512_and_si512(q, _mm512_set1_epi32(0xff)), 8 * e));
                }
                _mm512_store_si512(out + g * 4 * NR + 64 * h,
                                   _mm512_maskz_xor_epi32(rm, v, _mm512_set1_epi32((int)0x80808080u)));
            }
            __m512 ds = _mm512_cvtph_ps(_mm512_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            store_scales(out, 32, h, ds, _mm512_mul_ps(_mm512_set1_ps(-128.0f), ds));
        }
    }
}

/* Q4_K: per super-block, the 6-bit scales and mins of its 8 sub-blocks
 * (scale_min_k4 on whole vectors, from the transposed 16-byte header: d and
 * dmin, then 12 bytes of scales), then 32 bytes of nibbles per pair of
 * sub-blocks: low nibbles the even one, high the odd one. */
TGT static void pack_i8_q4_k(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    size_t rb = um_row_bytes(w->type, w->cols), ob = mm_i8_block_bytes(32, NR);
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        __mmask16 rm = rows_mask(w, f);
        const uint8_t *base = (const uint8_t *)w->data + (size_t)f * rb;
        uint8_t *out = dst;
        for (int64_t sb = kb / 256; sb < (kb + kc) / 256; sb++) {
            const uint8_t *blk = base + sb * sizeof(um_block_q4_K);
            __m512i r[16];
            load_rows_transposed(blk, rb, rm, 16, 0, 1, r);
            __m512i head = r[0], s0 = r[1], s1 = r[2], s2 = r[3];
            __m512 d = half_to_f32(head, 0), dmin = half_to_f32(head, 1);
            __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15), m3 = _mm512_set1_epi32(3);
            for (int j = 0; j < 8; j++) {
                __m512i sc, mi;
                if (j < 4) {
                    sc = _mm512_and_si512(_mm512_srli_epi32(s0, 8 * j), m63);
                    mi = _mm512_and_si512(_mm512_srli_epi32(s1, 8 * j), m63);
                } else {
                    int b = 8 * (j - 4);
                    sc = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, b), m15),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s0, b + 6), m3), 4));
                    mi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, b + 4), m15),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s1, b + 6), m3), 4));
                }
                __m512 scale = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
                __m512 mn = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mi)));
                store_scales(out + j * ob, 32, h, scale, mn);
            }
            /* the 128 bytes of nibbles, 64 per transpose: group c of each is pair c / 8, 4-byte group c % 8 */
            for (int half = 0; half < 2; half++) {
                load_rows_transposed(blk + 16 + 64 * half, rb, rm, 64, 0, 1, r);
                for (int c = 0; c < 16; c++) {
                    int jp = 2 * half + c / 8, q = c % 8;
                    _mm512_store_si512(out + (2 * jp) * ob + q * 4 * NR + 64 * h, _mm512_and_si512(r[c], LO4));
                    _mm512_store_si512(out + (2 * jp + 1) * ob + q * 4 * NR + 64 * h,
                                       _mm512_and_si512(_mm512_srli_epi32(r[c], 4), LO4));
                }
            }
            out += 8 * ob;
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 per super-block. Value v = 128 half + 32 g + l
 * has its low 4 bits in ql[64 half + 32 (g & 1) + l] (low nibble for g < 2)
 * and its top 2 bits at bit 2g of qh[32 half + l]; its sub-block is v / 16. */
TGT static void pack_i8_q6_k(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    size_t rb = um_row_bytes(w->type, w->cols), ob = mm_i8_block_bytes(16, NR);
    for (int h = 0; h < 2; h++) {
        int64_t f = f0 + 16 * h;
        __mmask16 rm = rows_mask(w, f);
        const uint8_t *base = (const uint8_t *)w->data + (size_t)f * rb;
        uint8_t *out = dst;
        for (int64_t sb = kb / 256; sb < (kb + kc) / 256; sb++, out += 16 * ob) {
            const uint8_t *blk = base + sb * sizeof(um_block_q6_K);
            __m512i r[16], qh[16];
            __m512 d = load_rows_f16(blk + 208, rb, rm);
            load_rows_transposed(blk + 192, rb, rm, 16, 0, 1, r); /* the 16 scales, 4 per vector */
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < 4; b++) {
                    __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(r[i], 24 - 8 * b), 24);
                    __m512 scale = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
                    store_scales(out + (4 * i + b) * ob, 16, h, scale, _mm512_mul_ps(_mm512_set1_ps(-32.0f), scale));
                }
            load_rows_transposed(blk + 128, rb, rm, 64, 0, 1, qh); /* qh[32 half + 4 lq]: vector 8 half + lq */
            for (int half = 0; half < 2; half++) {
                load_rows_transposed(blk + 64 * half, rb, rm, 64, 0, 1, r); /* ql[64 half + 4 c] */
                for (int lq = 0; lq < 8; lq++) {
                    __m512i qa = r[lq], qb = r[8 + lq], hv = qh[8 * half + lq];
                    __m512i lo[4] = {_mm512_and_si512(qa, LO4), _mm512_and_si512(qb, LO4),
                                     _mm512_and_si512(_mm512_srli_epi32(qa, 4), LO4),
                                     _mm512_and_si512(_mm512_srli_epi32(qb, 4), LO4)};
                    for (int g = 0; g < 4; g++) {
                        __m512i hi = _mm512_and_si512(_mm512_srli_epi32(hv, 2 * g), _mm512_set1_epi32(0x03030303));
                        __m512i v = _mm512_or_si512(lo[g], _mm512_slli_epi32(hi, 4));
                        int sub = 8 * half + 2 * g + lq / 4;
                        _mm512_store_si512(out + sub * ob + (lq % 4) * 4 * NR + 64 * h, v);
                    }
                }
            }
        }
    }
}

#define I8_SET(bk, zp, kernel, pack) {MM_I8, I8_MR, NR, 1024, 128, bk, zp, kernel, pack, act_i8, "avx512-vnni", 0, false}
static const mm_kernels i8_q8_0 = I8_SET(32, 128, kernel_i8_32_sym, pack_i8_simple);
static const mm_kernels i8_f16 = I8_SET(32, 128, kernel_i8_32_sym, pack_i8_f16); /* as Q8_0 */
static const mm_kernels i8_q4_0 = I8_SET(32, 8, kernel_i8_32_sym, pack_i8_simple);
static const mm_kernels i8_q4_1 = I8_SET(32, 0, kernel_i8_32, pack_i8_simple);
/* the K-quants: activation scales per 256 values (mm_i8_ab), i8k_tile */
#define I8K_SET(bk, zp, kernel, pack) {MM_I8, I8K_MR, NR, 1024, 128, bk, zp, kernel, pack, act_i8, "avx512-vnni", 0, false}
static const mm_kernels i8_q4_k = I8K_SET(32, 0, kernel_i8k_32, pack_i8_q4_k);
static const mm_kernels i8_q6_k = I8K_SET(16, 32, kernel_i8k_16_sym, pack_i8_q6_k);
static const mm_kernels i8_q5_k = I8K_SET(32, 0, kernel_i8k_32, pack_i8_generic);

/* F32 panel from quantized rows: the integer levels and sub-block scales as
 * the I8 packers lay them out, then value = scale * (q - zp) or
 * scale * q + mn, each operation rounded on its own (the _round intrinsics
 * are never fused into an FMA), as ggml's dequantizers compute them: the
 * panel holds the f32 expansion to the bit. A level vector holds 4
 * consecutive k of 16 features, so byte j of every lane is k = 4q + j. */
TGT static void pack_f32_levels(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    const mm_kernels *ks = mm_avx512_kernels(MM_I8, w->type);
    int bk = ks->bk;
    size_t bb = mm_i8_block_bytes(bk, NR);
    uint8_t levels[16 * (16 * NR + 2 * NR * 4)] __attribute__((aligned(64))); /* kc <= 256: at most 16 sub-blocks */
    ks->pack(w, f0, kb, kc, levels);
    __m512i zp = _mm512_set1_epi32(ks->zp), byte = _mm512_set1_epi32(0xff);
    float *out = dst;
    for (int s = 0; s < kc / bk; s++) {
        const uint8_t *blk = levels + s * bb;
        const float *ws = (const float *)(blk + bk * NR);
        for (int h = 0; h < 2; h++) {
            __m512 scale = _mm512_load_ps(ws + 16 * h), mn = _mm512_load_ps(ws + NR + 16 * h);
            for (int q = 0; q < bk / 4; q++) {
                __m512i v = _mm512_load_si512(blk + q * 4 * NR + 64 * h);
                for (int j = 0; j < 4; j++) {
                    __m512i l = _mm512_and_si512(_mm512_srli_epi32(v, 8 * j), byte);
                    __m512 val = ks->zp ? _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(l, zp)), scale, ROUND_NEAREST)
                                        : _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_cvtepi32_ps(l), scale, ROUND_NEAREST),
                                                              mn, ROUND_NEAREST);
                    _mm512_store_ps(out + (s * bk + 4 * q + j) * NR + 16 * h, val);
                }
            }
        }
    }
}

const mm_kernels *mm_avx512_kernels(mm_kind kind, um_dtype t) {
    switch (kind) {
    case MM_F32:
        return t == UM_F32 ? &f32_float : t == UM_BF16 ? &f32_bf16 : t == UM_F16 ? &f32_f16 : &f32_quant;
    case MM_BF16:
        return t == UM_BF16 || t == UM_F16 ? &bf16_dot : NULL;
    case MM_I8:
        switch (t) {
        case UM_F16:
            return &i8_f16;
        case UM_Q8_0:
            return &i8_q8_0;
        case UM_Q4_0:
            return &i8_q4_0;
        case UM_Q4_1:
            return &i8_q4_1;
        case UM_Q4_K:
            return &i8_q4_k;
        case UM_Q6_K:
            return &i8_q6_k;
        case UM_Q5_K:
            return &i8_q5_k;
        default:
            return NULL;
        }
    }
    return NULL;
}

#else

const mm_kernels *mm_avx512_kernels(mm_kind kind, um_dtype t) { return NULL; }

#endif
