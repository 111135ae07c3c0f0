/* AVX2 + FMA micro-kernels and packers for the blocked matmul: the path for
 * x86-64 CPUs without AVX-512 (matmul_impl.h has the layouts). 16 ymm
 * registers: the f32 kernel keeps a 6 x 16 tile in 12 accumulators, two
 * panel vectors and a broadcast. The I8 kernel (reduced-precision
 * activations on quantized weights) emulates vpdpbusd with vpmaddubsw +
 * vpmaddwd; see i8_tile for why its integer sums are exact. CPUs with
 * AVX-VNNI (vpdpbusd on ymm, VEX-encoded: Intel's Alder Lake and later
 * without AVX-512) take vnni_tile instead, on the same panels. */
#include "kernels/matmul_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/quant.h"

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
/* Before each loop over a tile's rows: unrolled, every index into the
 * accumulator arrays is a constant and GCC keeps them in registers. A loop
 * left rolled (GCC -O3 leaves some) indexes them by a variable, which keeps
 * the arrays in memory, and then every accumulator is stored on every step
 * of the kernel's inner loop: a store per FMA, half the FMA rate. */
#define UNROLL _Pragma("GCC unroll 16")

/* How far ahead in its row a packer asks for the data it will read: the
 * pack walks 16 rows in step, a pattern the hardware prefetcher does not
 * follow, and the driver's prefetch (matmul.c, next_block) is only a guess
 * on a loaded machine (the task the pool hands out next). */
#define PACK_AHEAD 256

#define NR 16
#define MR 6
#define I8_MR_MAX 3 /* the I8 kernels' largest register tile (i8_tile) */

/* A tile's rows from buf (MR_MAX rows of NR) added to c, or stored plus
 * the bias: the partial tiles' way (a last token block, a ragged last panel). */
static void store_buffered(const mm_tile *t, const float *buf) {
    for (int i = 0; i < t->mr; i++) {
        float *c = t->c + i * t->ldc;
        for (int j = 0; j < t->nr; j++)
            c[j] = t->accumulate ? c[j] + buf[i * NR + j] : buf[i * NR + j] + (t->bias ? t->bias[j] : 0.0f);
    }
}

/* The tile's rows (c0: features 0..7, c1: 8..15) to c; every loop runs to
 * the constant mr_max (UNROLL), partial tiles through a buffer. */
TGT INLINE void store_tile(const mm_tile *t, const __m256 *c0, const __m256 *c1, int mr_max) {
    if (t->nr < NR || t->mr < mr_max) {
        float buf[8 * NR] __attribute__((aligned(32)));
        UNROLL
        for (int i = 0; i < mr_max; i++) {
            _mm256_store_ps(buf + i * NR, c0[i]);
            _mm256_store_ps(buf + i * NR + 8, c1[i]);
        }
        store_buffered(t, buf);
        return;
    }
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (t->bias && !t->accumulate) {
        b0 = _mm256_loadu_ps(t->bias);
        b1 = _mm256_loadu_ps(t->bias + 8);
    }
    UNROLL
    for (int i = 0; i < mr_max; i++) {
        float *c = t->c + i * t->ldc;
        if (t->accumulate) {
            b0 = _mm256_loadu_ps(c);
            b1 = _mm256_loadu_ps(c + 8);
        }
        _mm256_storeu_ps(c, _mm256_add_ps(c0[i], b0));
        _mm256_storeu_ps(c + 8, _mm256_add_ps(c1[i], b1));
    }
}

/* ---- F32: FMA ------------------------------------------------------------------- */

/* Row k of an F32 panel's 16 features as f32: f32 panels as stored, BF16
 * and F16 ones widened (see "F32 on BF16 and F16 panels" below). */
TGT INLINE void panel_row(const uint8_t *b, um_dtype panel, __m256 *b0, __m256 *b1) {
    if (panel == UM_F32) {
        *b0 = _mm256_load_ps((const float *)b);
        *b1 = _mm256_load_ps((const float *)b + 8);
    } else if (panel == UM_F16) {
        *b0 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)b));
        *b1 = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(b + 16)));
    } else {
        __m256i v = _mm256_load_si256((const __m256i *)b), zero = _mm256_setzero_si256();
        *b0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v));
        *b1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v));
    }
}

/* Activations packed [k][MR] (mm_pack_act_f32) rather than read in place:
 * one stream instead of MR rows 4 KiB apart (measured 3-5% faster). */
TGT INLINE void f32_tile(const mm_tile *t, um_dtype panel) {
    __m256 c0[MR], c1[MR];
    UNROLL
    for (int i = 0; i < MR; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    const float *a = t->a;
    const uint8_t *b = t->b;
    const int kc = t->kc, row = NR * (panel == UM_F32 ? 4 : 2);
    for (int k = 0; k < kc; k++, a += MR, b += row) {
        __m256 b0, b1;
        panel_row(b, panel, &b0, &b1);
        UNROLL
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
    store_tile(t, c0, c1, MR);
}

TGT static void kernel_f32(const mm_tile *t) { f32_tile(t, UM_F32); }

/* 8 x 8 transpose of 32-bit elements: r[i] holds row i, then column i. */
TGT INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* 8 values of row `row` of an F32, BF16 or F16 matrix from column c, as f32. */
TGT INLINE __m256 load8_f32(const um_weight *w, int64_t row, int64_t c) {
    if (w->type == UM_F32)
        return _mm256_loadu_ps((const float *)w->data + row * w->cols + c);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w->data + row * w->cols + c));
    if (w->type == UM_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* Columns [c, c + 8) of rows f0 + 8 h .. + 7 (past the last row zeros) into
 * the panel's features 8 h .. 8 h + 7: eight rows, transposed. */
TGT INLINE void pack8x8_f32(const um_weight *w, int64_t f0, int h, int64_t c, float *out) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
        int64_t f = f0 + 8 * h + i;
        r[i] = f < w->rows ? load8_f32(w, f, c) : _mm256_setzero_ps();
    }
    transpose8(r);
    for (int j = 0; j < 8; j++)
        _mm256_store_ps(out + j * NR + 8 * h, r[j]);
}

/* F32 panel [kc][16] from f32, bf16 or f16 rows: blocks of 8 rows x 8
 * columns converted and transposed in registers (the scalar transpose took
 * about as long as the products at a 32-token step); a ragged last block of
 * columns and the quantized types through a row buffer. */
TGT static void pack_f32(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    float *out = dst;
    bool simd = w->type == UM_F32 || w->type == UM_BF16 || w->type == UM_F16;
    int c0 = 0;
    for (; simd && c0 + 8 <= kc; c0 += 8)
        for (int h = 0; h < NR / 8; h++)
            pack8x8_f32(w, f0, h, kb + c0, out + c0 * NR);
    float row[256] __attribute__((aligned(32)));
    for (; c0 < kc; c0 += 256) {
        int cn = kc - c0 < 256 ? kc - c0 : 256;
        for (int r = 0; r < NR; r++) {
            int64_t f = f0 + r;
            if (f < w->rows)
                mm_row_segment_f32(w, f, kb + c0, cn, row);
            for (int i = 0; i < cn; i++)
                out[(c0 + i) * NR + r] = f < w->rows ? row[i] : 0.0f;
        }
    }
}

/* ---- F32 on BF16 and F16 panels ----------------------------------------------------
 *
 * BF16 and F16 weights with f32 activations (no bf16 dot product on AVX2)
 * keep their 16 bits in the panel, and the kernel widens each k step's 16
 * values to f32 as it reads them: exact, so the products and their order
 * are kernel_f32's and so are the bits. A panel is then as large as the
 * weights it holds, which lets a model's matrices be packed once at load
 * with no more memory than the file (um_weight_pack); packed per product,
 * as before, it halves the bytes the pack writes.
 *
 * bf16 widens by interleaving zeros below each value (vpunpck[lh]wd: one
 * shuffle per 8 values, no shift), which works within 128-bit lanes: the
 * low half of the result holds slots 0-3 and 8-11 of the panel row, the
 * high half slots 4-7 and 12-15. So a BF16 panel row stores features 0-3,
 * 8-11, 4-7, 12-15, and the two halves come out as features
 * 0-7 and 8-15 (mm_bf16_panel_slot). F16 rows are in feature order,
 * widened by vcvtph2ps. */
TGT static void kernel_f32_bf16(const mm_tile *t) { f32_tile(t, UM_BF16); }
TGT static void kernel_f32_f16(const mm_tile *t) { f32_tile(t, UM_F16); }

/* BF16 or F16 panel [kc][16] of 16-bit values: blocks of 8 columns of the
 * 16 rows, widened and transposed as pack_f32 does, then narrowed back
 * exactly (bf16: the high halves, packed with vpackusdw, whose lane order
 * is mm_bf16_panel_slot's; f16: vcvtps2ph of values that were f16); a ragged last
 * block of columns a value at a time. */
TGT static void pack_h16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    uint16_t *out = dst;
    bool bf16 = w->type == UM_BF16;
    int c0 = 0;
    for (; c0 + 8 <= kc; c0 += 8) {
        __m256 lo[8], hi[8];
        for (int i = 0; i < 8; i++) {
            lo[i] = f0 + i < w->rows ? load8_f32(w, f0 + i, kb + c0) : _mm256_setzero_ps();
            hi[i] = f0 + 8 + i < w->rows ? load8_f32(w, f0 + 8 + i, kb + c0) : _mm256_setzero_ps();
        }
        transpose8(lo);
        transpose8(hi);
        for (int j = 0; j < 8; j++) {
            uint16_t *o = out + (c0 + j) * NR;
            if (bf16) {
                __m256i l = _mm256_srli_epi32(_mm256_castps_si256(lo[j]), 16);
                __m256i h = _mm256_srli_epi32(_mm256_castps_si256(hi[j]), 16);
                _mm256_store_si256((__m256i *)o, _mm256_packus_epi32(l, h));
            } else {
                _mm_store_si128((__m128i *)o, _mm256_cvtps_ph(lo[j], _MM_FROUND_TO_NEAREST_INT));
                _mm_store_si128((__m128i *)(o + 8), _mm256_cvtps_ph(hi[j], _MM_FROUND_TO_NEAREST_INT));
            }
        }
    }
    const uint16_t *src = w->data;
    for (; c0 < kc; c0++)
        for (int f = 0; f < NR; f++)
            out[c0 * NR + (bf16 ? mm_bf16_panel_slot(f, NR) : f)] = f0 + f < w->rows ? src[(f0 + f) * w->cols + kb + c0] : 0;
}

/* One 16-feature panel per task: the driver then runs every block of
 * tokens against it while it stays in L1 (16 KiB), the activations
 * streaming from L2 (24 bytes per 12 FMAs, against 64 bytes of panels when
 * four panels take turns per block of tokens). F32 weights +3-7% at 256
 * tokens, +15-18% at 32; BF16 +5-8% at 32. */
static const mm_kernels f32_kernels = {MM_F32, MR, NR, 256, NR, 0, 0, kernel_f32, pack_f32, mm_pack_act_f32,
                                       "avx2-f32", 4, false};
static const mm_kernels f32_bf16_kernels = {MM_F32, MR, NR, 256, NR, 0, 0, kernel_f32_bf16, pack_h16, mm_pack_act_f32,
                                            "avx2-f32", 2, false};
static const mm_kernels f32_f16_kernels = {MM_F32, MR, NR, 256, NR, 0, 0, kernel_f32_f16, pack_h16, mm_pack_act_f32,
                                           "avx2-f32", 2, false};

/* ---- I8: vpmaddubsw + vpmaddwd -------------------------------------------------- */

/* How a sub-block's integer sum becomes values (matmul_impl.h, I8):
 *   MINS      value = scale * q + mn: a second FMA with dx * sum xq (Q4_1, Q4_K, Q5_K);
 *   ZP        value = scale * (q - zp): zp * sum xq off the integer sum (Q4_0, Q6_K);
 *   SIGNED    the signed q itself (Q8_0 on kernel_i16_q8_0): no offset to remove. */
typedef enum { I8_MINS, I8_ZP, I8_SIGNED } i8_offset;

/* One sub-block's integer sums i0/i1 of mr tokens x 16 features into the f32
 * accumulators c0/c1: the zero point off the sums (ZP), times the weights'
 * scales ws[0..15] and each token's activation scale sc[i], plus the mins
 * ws[NR..] times sc[mr + i] (MINS). sc is the sub-block's MM_SC_ROWS x mr
 * activation scales (matmul_impl.h). */
TGT INLINE void scale_sub_block(__m256 *c0, __m256 *c1, __m256i *i0, __m256i *i1, int mr, const float *sc,
                                const float *ws, i8_offset off) {
    __m256 s0 = _mm256_load_ps(ws), s1 = _mm256_load_ps(ws + 8);
    const int32_t *zb = (const int32_t *)(sc + 2 * mr);
    UNROLL
    for (int i = 0; i < mr; i++) {
        __m256 dx = _mm256_set1_ps(sc[i]);
        if (off == I8_ZP) {
            __m256i z = _mm256_set1_epi32(zb[i]);
            i0[i] = _mm256_sub_epi32(i0[i], z);
            i1[i] = _mm256_sub_epi32(i1[i], z);
        }
        c0[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0[i]), _mm256_mul_ps(s0, dx), c0[i]);
        c1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1[i]), _mm256_mul_ps(s1, dx), c1[i]);
        if (off == I8_MINS) {
            __m256 fb = _mm256_set1_ps(sc[mr + i]);
            c0[i] = _mm256_fmadd_ps(_mm256_load_ps(ws + NR), fb, c0[i]);
            c1[i] = _mm256_fmadd_ps(_mm256_load_ps(ws + NR + 8), fb, c1[i]);
        }
    }
}

/* v, through an empty asm the compiler cannot see through (it emits
 * nothing): a running integer sum stays a chain of adds. GCC otherwise
 * reassociates an unrolled chunk's adds into a tree over all its products,
 * computes the products first and spills them. */
TGT INLINE __m256i opaque(__m256i v) {
    __asm__("" : "+x"(v));
    return v;
}

/* vpmaddubsw multiplies u8 by s8 and adds adjacent pairs into int16 with
 * saturation, so every sum it forms, and every int16 sum of its results
 * taken before vpmaddwd widens them, must stay within 32767 in magnitude.
 * Activations are in [-127, 127] (quantize_act: |x| <= max|x|, scaled to
 * 127, never -128). With levels in [0, L], a pair is at most 2 * 127 * L =
 * 254 L, and `chunk` groups of 4 k added in int16 at most 254 L chunk:
 *   Q4_0, Q4_1, Q4_K   L = 15:  chunk 8 (a whole sub-block): 30480;
 *   Q5_K               L = 31:  chunk 4: 31496;
 *   Q6_K               L = 63:  chunk 2: 32004 (kernel_q6_k, below).
 * Q8_0's stored levels q + 128 reach 255: 254 * 255 = 64770 would saturate,
 * so Q8_0 takes kernel_i16_q8_0 below.
 *
 * Per sub-block of bk, for mr x 16 outputs: int16 sums of `chunk` groups,
 * widened and added in int32, then scaled into the f32 accumulators as the
 * AVX-512 VNNI kernel does. Where a chunk is the whole sub-block (the 4-bit
 * types) the widened sum is the sub-block's and needs no int32 accumulator.
 *
 * mr is a constant per type, chosen so that the loop's registers fit the
 * 16 ymm (a spilled accumulator costs a store and a load per use): f32
 * accumulators 2 mr, int16 sums 2 mr, int32 sums 2 mr unless whole, two
 * panel vectors, a broadcast and a product:
 *   whole (Q4_0, Q4_1, Q4_K)      mr 3: 6 + 6 + 4 = 16;
 *   chunked (Q5_K)                mr 2: 4 + 4 + 4 + 4 = 16. */
TGT INLINE void i8_tile(const mm_tile *t, int bk, int chunk, i8_offset off, int mr) {
    __m256 c0[I8_MR_MAX], c1[I8_MR_MAX];
    UNROLL
    for (int i = 0; i < mr; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    for (int s = 0; s < t->kc / bk; s++, sc += MM_SC_ROWS * mr) {
        __m256i i0[I8_MR_MAX], i1[I8_MR_MAX];
        for (int g = 0; g < bk / 4; g += chunk) {
            __m256i h0[I8_MR_MAX], h1[I8_MR_MAX];
            UNROLL
            for (int q = 0; q < chunk; q++, a += mr, b += 4 * NR) {
                __m256i u0 = _mm256_load_si256((const __m256i *)b), u1 = _mm256_load_si256((const __m256i *)(b + 32));
                UNROLL
                for (int i = 0; i < mr; i++) {
                    __m256i av = _mm256_set1_epi32((int)a[i]);
                    __m256i p0 = _mm256_maddubs_epi16(u0, av), p1 = _mm256_maddubs_epi16(u1, av);
                    h0[i] = q == 0 ? p0 : opaque(_mm256_add_epi16(h0[i], p0));
                    h1[i] = q == 0 ? p1 : opaque(_mm256_add_epi16(h1[i], p1));
                }
            }
            UNROLL
            for (int i = 0; i < mr; i++) {
                __m256i w0 = _mm256_madd_epi16(h0[i], ones), w1 = _mm256_madd_epi16(h1[i], ones);
                i0[i] = g == 0 ? w0 : opaque(_mm256_add_epi32(i0[i], w0));
                i1[i] = g == 0 ? w1 : opaque(_mm256_add_epi32(i1[i], w1));
            }
        }
        scale_sub_block(c0, c1, i0, i1, mr, sc, (const float *)b, off);
        b += 2 * NR * sizeof(float);
    }
    store_tile(t, c0, c1, mr);
}

#define I8_MR_WHOLE 3
#define I8_MR_CHUNKED 2

TGT static void kernel_i8_q4_0(const mm_tile *t) { i8_tile(t, 32, 8, I8_ZP, I8_MR_WHOLE); }
TGT static void kernel_i8_q4_mins(const mm_tile *t) { i8_tile(t, 32, 8, I8_MINS, I8_MR_WHOLE); }
TGT static void kernel_i8_q5_k(const mm_tile *t) { i8_tile(t, 32, 4, I8_MINS, I8_MR_CHUNKED); }

/* Q6_K with its integer sub-block scales folded into the products (as
 * llama.cpp's AVX2 vec_dot does): the activations have one scale per
 * super-block of 256 (mm_i8_ab), so a super-block's sum can stay integer to
 * the end. Each 8-value chunk's int16 sums are widened by vpmaddwd against
 * the sub-block's scale sc_t (instead of against ones), the zero point
 * comes off once per two sub-blocks as 32 (sc_t X_t + sc_t+1 X_t+1), X the
 * activations' sub-block sums (one more vpmaddwd), and the super-block's
 * sum meets d * dx once: i8_tile's float work per 16 values (a zero-point
 * subtraction, a conversion, a multiply and an FMA per output vector) is
 * gone. The int32 sums stay below 256 * 63 * 127 * 128 + 32 * 16 * 128 *
 * 2032 < 2^31. The panel: pack_q6_k. Q6K_MR 3: 6 int32 and 6 int16 sums,
 * two panel vectors, a broadcast and a product (the f32 accumulators, once
 * per super-block, live in memory). bench --kernels, llada-1b's Q6_K head
 * at 256 tokens on a Zen 4 masked to AVX2: 300-340 -> 360-400 GOP/s, of an
 * int8 limit of about 440. */
#define Q6K_MR 3
TGT static void kernel_q6_k(const mm_tile *t) {
    const size_t ob = mm_i8_block_bytes(16, NR);
    __m256 c0[Q6K_MR], c1[Q6K_MR];
    for (int i = 0; i < Q6K_MR; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    for (int g = 0; g < t->kc / 256; g++) {
        const float *dx = sc; /* every sub-block of the super-block carries the same dx */
        __m256i i0[Q6K_MR], i1[Q6K_MR];
        for (int i = 0; i < Q6K_MR; i++)
            i0[i] = i1[i] = _mm256_setzero_si256();
        for (int s = 0; s < 16; s++, sc += MM_SC_ROWS * Q6K_MR) {
            const uint8_t *scales = b + 16 * NR;
            for (int chunk = 0; chunk < 2; chunk++) {
                __m256i h0[Q6K_MR], h1[Q6K_MR];
                for (int q = 0; q < 2; q++, a += Q6K_MR, b += 4 * NR) {
                    __m256i u0 = _mm256_load_si256((const __m256i *)b);
                    __m256i u1 = _mm256_load_si256((const __m256i *)(b + 32));
                    UNROLL
                    for (int i = 0; i < Q6K_MR; i++) {
                        __m256i av = _mm256_set1_epi32((int)a[i]);
                        __m256i p0 = _mm256_maddubs_epi16(u0, av), p1 = _mm256_maddubs_epi16(u1, av);
                        h0[i] = q == 0 ? p0 : opaque(_mm256_add_epi16(h0[i], p0));
                        h1[i] = q == 0 ? p1 : opaque(_mm256_add_epi16(h1[i], p1));
                    }
                }
                __m256i s0 = _mm256_load_si256((const __m256i *)scales);
                __m256i s1 = _mm256_load_si256((const __m256i *)(scales + 32));
                UNROLL
                for (int i = 0; i < Q6K_MR; i++) {
                    i0[i] = opaque(_mm256_add_epi32(i0[i], _mm256_madd_epi16(h0[i], s0)));
                    i1[i] = opaque(_mm256_add_epi32(i1[i], _mm256_madd_epi16(h1[i], s1)));
                }
            }
            if (s % 2 == 1) { /* the zero point of sub-blocks s - 1 and s */
                const uint8_t *pairs = scales - ob + 4 * NR;
                __m256i z0 = _mm256_load_si256((const __m256i *)pairs);
                __m256i z1 = _mm256_load_si256((const __m256i *)(pairs + 32));
                const int32_t *zb = (const int32_t *)(sc + 2 * Q6K_MR); /* 32 X, this sub-block's */
                const int32_t *zb_prev = zb - MM_SC_ROWS * Q6K_MR;
                UNROLL
                for (int i = 0; i < Q6K_MR; i++) {
                    uint32_t x = (uint16_t)(zb_prev[i] / 32) | (uint32_t)(uint16_t)(zb[i] / 32) << 16;
                    __m256i xv = _mm256_set1_epi32((int)x);
                    i0[i] = _mm256_sub_epi32(i0[i], _mm256_madd_epi16(z0, xv));
                    i1[i] = _mm256_sub_epi32(i1[i], _mm256_madd_epi16(z1, xv));
                }
            }
            b += 2 * NR * sizeof(float);
        }
        __m256 d0 = _mm256_load_ps((const float *)(b - 4 * NR)), d1 = _mm256_load_ps((const float *)(b - 2 * NR));
        for (int i = 0; i < Q6K_MR; i++) {
            __m256 d = _mm256_set1_ps(dx[i]);
            c0[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0[i]), _mm256_mul_ps(d0, d), c0[i]);
            c1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1[i]), _mm256_mul_ps(d1, d), c1[i]);
        }
    }
    store_tile(t, c0, c1, Q6K_MR);
}

/* ---- I8 as int16: vpmaddwd alone (Q8_0) ---------------------------------------- */

/* Q8_0's signed levels cannot meet vpmaddubsw (unsigned x signed) without a
 * detour: |q| times xq carrying q's sign (vpsignb), each pair of products
 * so close to 32767 that every vpmaddubsw needs its own vpmaddwd. That is
 * three instructions per 32 products, and it ran at half the int8 limit.
 * Taken as int16 instead, weights and activations meet in one vpmaddwd per
 * 16 products: as many multiplies per product as the vpmaddubsw + vpmaddwd
 * chain the limit counts, nothing else per product but the add, and no
 * saturation anywhere. The integer sums are the same, so are the bits.
 *
 * The panel per sub-block of 32: [16 pairs][NR] of a feature's two signed
 * q, widened to int16 as they are loaded (vpmovsxbw, 8 features at a
 * time), then scale[NR] and mn[NR] as i8_tile's (mn unused: the sums are
 * of the signed q). Panels of int16 levels, which vpmaddwd could take as
 * they are, were 3% faster at 256 tokens, no faster at 32, and twice the
 * memory (they are packed at load). Activations: int16 pairs
 * (mm_kernels.act_i16). On a Zen 4 masked to AVX2, one llada-1b layer at
 * 256 tokens went from 52-55% to 62-66% of the int8 limit. I16_MR 4: 8 int32 sums, two panel vectors, a broadcast and a product in
 * the loop; the f32 accumulators live in memory between sub-blocks (3 was
 * 5% slower). */
#define I16_MR 4

TGT static void kernel_i16_q8_0(const mm_tile *t) {
    __m256 c0[I16_MR], c1[I16_MR];
    for (int i = 0; i < I16_MR; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    for (int s = 0; s < t->kc / 32; s++, sc += MM_SC_ROWS * I16_MR) {
        __m256i i0[I16_MR], i1[I16_MR];
        for (int i = 0; i < I16_MR; i++)
            i0[i] = i1[i] = _mm256_setzero_si256();
        for (int p = 0; p < 16; p++, a += I16_MR, b += 2 * NR) {
            __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)b));
            __m256i w1 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(b + 16)));
            UNROLL
            for (int i = 0; i < I16_MR; i++) {
                __m256i av = _mm256_set1_epi32((int)a[i]);
                i0[i] = opaque(_mm256_add_epi32(i0[i], _mm256_madd_epi16(w0, av)));
                i1[i] = opaque(_mm256_add_epi32(i1[i], _mm256_madd_epi16(w1, av)));
            }
        }
        scale_sub_block(c0, c1, i0, i1, I16_MR, sc, (const float *)b, I8_SIGNED);
        b += 2 * NR * sizeof(float);
    }
    store_tile(t, c0, c1, I16_MR);
}

/* One block of row data of Q8_0, Q4_0 or Q4_1: its 32 levels as
 * mm_unpack_levels gives them (Q8_0 q + 128; the 4-bit types' low nibbles
 * as levels 0..15, high nibbles as 16..31) and its scale and mn. */
TGT INLINE __m256i block_levels(um_dtype t, const uint8_t *b, float *scale, float *mn) {
    uint16_t d, m;
    memcpy(&d, b, 2);
    memcpy(&m, b + 2, 2);
    *scale = um_f16_to_f32(d);
    if (t == UM_Q8_0) {
        *mn = -128.0f * *scale;
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)), _mm256_set1_epi8((char)0x80));
    }
    *mn = t == UM_Q4_0 ? -8.0f * *scale : um_f16_to_f32(m);
    __m128i qs = _mm_loadu_si128((const __m128i *)(b + (t == UM_Q4_0 ? 2 : 4))), low = _mm_set1_epi8(0xf);
    __m128i lo = _mm_and_si128(qs, low), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* I8 panel of Q8_0, Q4_0 or Q4_1 rows, as pack_i8 packs it: per block, 8
 * rows' levels transposed in registers into their 4-byte groups (the
 * portable unpacker, a byte at a time, cost about as much as the products
 * at a 32-token step). */

TGT static void pack_i8_simple(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    size_t rb = um_row_bytes(w->type, w->cols), bb = um_row_bytes(w->type, 32);
    uint8_t *out = dst;
    for (int64_t s = kb / 32; s < (kb + kc) / 32; s++, out += mm_i8_block_bytes(32, NR)) {
        float *ws = (float *)(out + 32 * NR);
        for (int h = 0; h < NR / 8; h++) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                int64_t f = f0 + 8 * h + i;
                float scale = 0, mn = 0;
                const uint8_t *src = (const uint8_t *)w->data + f * rb + s * bb;
                if (f < w->rows)
                    _mm_prefetch((const char *)src + PACK_AHEAD, _MM_HINT_T0);
                __m256i q = f < w->rows ? block_levels(w->type, src, &scale, &mn) : _mm256_setzero_si256();
                r[i] = _mm256_castsi256_ps(q);
                ws[8 * h + i] = scale;
                ws[NR + 8 * h + i] = mn;
            }
            transpose8(r);
            for (int g = 0; g < 8; g++)
                _mm256_store_ps((float *)(out + 4 * (g * NR + 8 * h)), r[g]);
        }
    }
}

/* The low (shift 0) or high (shift 4) nibbles of 32 bytes at p, one a byte. */
TGT INLINE __m256i nibbles(const uint8_t *p, int shift) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(0xf));
}

/* The 8 x 32 levels of rows[0..7] (NULL: past the last row, zeros)
 * transposed into groups of 4: group g of row i to out + g * gstride +
 * 4 * i (bytes). levels(row, j) gives a row's 32 levels j. */
typedef __m256i (*levels_fn)(const uint8_t *block, int j);

TGT INLINE void store_levels8(const uint8_t *const rows[8], int j, levels_fn levels, uint8_t *out, size_t gstride) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
        if (rows[i])
            _mm_prefetch((const char *)rows[i] + PACK_AHEAD, _MM_HINT_T0);
        r[i] = _mm256_castsi256_ps(rows[i] ? levels(rows[i], j) : _mm256_setzero_si256());
    }
    transpose8(r);
    for (int g = 0; g < 8; g++)
        _mm256_storeu_ps((float *)(out + g * gstride), r[g]);
}

/* Sub-block j's 6-bit scale and min in Q4_K/Q5_K (as matmul.c's scale_min_k4). */
static inline void k4_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Levels of sub-block j (32 values) of a Q4_K or Q5_K super-block, as mm_unpack_levels gives them. */
TGT INLINE __m256i q4_k_levels(const uint8_t *b, int j) { return nibbles(b + 16 + 32 * (j / 2), 4 * (j % 2)); }
TGT INLINE __m256i q5_k_levels(const uint8_t *b, int j) {
    __m256i hi = _mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(b + 16)), _mm_cvtsi32_si128(j));
    hi = _mm256_slli_epi16(_mm256_and_si256(hi, _mm256_set1_epi8(1)), 4);
    return _mm256_or_si256(nibbles(b + 48 + 32 * (j / 2), 4 * (j % 2)), hi);
}

/* Levels 32 j .. 32 j + 31 of a Q6_K super-block (two of its sub-blocks of
 * 16): value v = 32 j + l of half j / 4, quarter g = j % 4 takes its low 4
 * bits from ql and its high 2 from qh, as mm_unpack_levels. */
TGT INLINE __m256i q6_k_levels(const uint8_t *b, int j) {
    int half = j / 4, g = j % 4;
    __m256i lo = nibbles(b + half * 64 + (g & 1) * 32, 4 * (g >> 1));
    __m256i qh = _mm256_srl_epi16(_mm256_loadu_si256((const __m256i *)(b + 128 + half * 32)), _mm_cvtsi32_si128(2 * g));
    return _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(3)), 4));
}

/* The super-block `sb` of rows f0 .. f0 + 15 (NULL past the last row). */
static void k_rows(const um_weight *w, int64_t f0, int64_t sb, const uint8_t *rows[NR]) {
    size_t rb = um_row_bytes(w->type, w->cols), bb = um_row_bytes(w->type, 256);
    for (int i = 0; i < NR; i++)
        rows[i] = f0 + i < w->rows ? (const uint8_t *)w->data + (f0 + i) * rb + sb * bb : NULL;
}

/* I8 panel of Q4_K or Q5_K rows (sub-blocks of 32), as pack_i8 packs it,
 * 8 rows of a sub-block transposed at a time. */
TGT static void pack_i8_q45_k(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    size_t ob = mm_i8_block_bytes(32, NR);
    uint8_t *out = dst;
    for (int64_t sb = kb / 256; sb < (kb + kc) / 256; sb++, out += 8 * ob) {
        const uint8_t *rows[NR];
        k_rows(w, f0, sb, rows);
        for (int j = 0; j < 8; j++) {
            for (int h = 0; h < NR / 8; h++)
                store_levels8(rows + 8 * h, j, w->type == UM_Q5_K ? q5_k_levels : q4_k_levels,
                              out + j * ob + 32 * h, 4 * NR);
            float *ws = (float *)(out + j * ob + 32 * NR);
            for (int i = 0; i < NR; i++) {
                int sc = 0, m = 0;
                if (rows[i])
                    k4_scale_min(j, rows[i] + 4, &sc, &m);
                uint16_t d[2] = {0, 0};
                if (rows[i])
                    memcpy(d, rows[i], 4);
                ws[i] = rows[i] ? um_f16_to_f32(d[0]) * (float)sc : 0.0f;
                ws[NR + i] = rows[i] ? -(um_f16_to_f32(d[1]) * (float)m) : 0.0f;
            }
        }
    }
}

/* The levels of a Q6_K super-block of rows[] into its 16 sub-blocks of an
 * I8 panel (ob bytes apart): 8 rows' levels of two sub-blocks transposed at
 * a time. */
TGT INLINE void q6_k_panel_levels(const uint8_t *const rows[NR], uint8_t *out, size_t ob) {
    for (int j = 0; j < 8; j++) /* groups 0..3 to sub-block 2 j, 4..7 to 2 j + 1 */
        for (int h = 0; h < NR / 8; h++) {
            uint8_t tmp[8 * 32] __attribute__((aligned(32)));
            store_levels8(rows + 8 * h, j, q6_k_levels, tmp, 32);
            for (int g = 0; g < 8; g++)
                memcpy(out + (2 * j + g / 4) * ob + 4 * ((g % 4) * NR + 8 * h), tmp + 32 * g, 32);
        }
}

/* Sub-block t's scales of 16 Q6_K rows, as the I8 panel holds them after
 * the levels: f32 d sc_t per feature, then mn = -32 d sc_t. */
static void q6_k_float_scales(const uint8_t *const rows[NR], int t, float *ws) {
    for (int i = 0; i < NR; i++) {
        float d = 0;
        if (rows[i]) {
            uint16_t h;
            memcpy(&h, rows[i] + 208, 2);
            d = um_f16_to_f32(h) * (float)(int8_t)rows[i][192 + t];
        }
        ws[i] = d;
        ws[NR + i] = -32.0f * d;
    }
}

/* The same place in kernel_q6_k's panel: the integer scale sc_t per feature
 * twice over as int16 (the vpmaddwd operand that scales a vpmaddubsw sum),
 * then, for even t, the pairs (32 sc_t, 32 sc_t+1) as int16 (the zero
 * point's operand: |32 sc| <= 4096), for odd t the super-block's d per
 * feature as f32. */
static void q6_k_int_scales(const uint8_t *const rows[NR], int t, uint32_t *scales) {
    uint32_t *extra = scales + NR;
    for (int i = 0; i < NR; i++) {
        int sc = rows[i] ? (int8_t)rows[i][192 + t] : 0;
        int next = rows[i] && t % 2 == 0 ? (int8_t)rows[i][192 + t + 1] : 0;
        scales[i] = (uint16_t)sc | (uint32_t)(uint16_t)sc << 16;
        if (t % 2 == 0) {
            extra[i] = (uint16_t)(32 * sc) | (uint32_t)(uint16_t)(32 * next) << 16;
        } else {
            uint16_t h = 0;
            if (rows[i])
                memcpy(&h, rows[i] + 208, 2);
            float d = um_f16_to_f32(h);
            memcpy(&extra[i], &d, sizeof d);
        }
    }
}

/* A panel of Q6_K rows (sub-blocks of 16): the I8 one, or kernel_q6_k's
 * (int_scales), which differ only in the 2 NR words after each sub-block's
 * levels. */
TGT INLINE void pack_q6_k_panel(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst, bool int_scales) {
    size_t ob = mm_i8_block_bytes(16, NR);
    uint8_t *out = dst;
    for (int64_t sb = kb / 256; sb < (kb + kc) / 256; sb++, out += 16 * ob) {
        const uint8_t *rows[NR];
        k_rows(w, f0, sb, rows);
        q6_k_panel_levels(rows, out, ob);
        for (int t = 0; t < 16; t++) {
            void *after = out + t * ob + 16 * NR;
            if (int_scales)
                q6_k_int_scales(rows, t, after);
            else
                q6_k_float_scales(rows, t, after);
        }
    }
}

TGT static void pack_i8_q6_k(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_q6_k_panel(w, f0, kb, kc, dst, false);
}

TGT static void pack_q6_k(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_q6_k_panel(w, f0, kb, kc, dst, true);
}

/* roundf (half away from zero) of integral-range floats, as C's. */
TGT INLINE __m256 round_half_away(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
    __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign)));
}

/* The f16 values in the low (hi = 0) or high halves of 8 32-bit lanes, as f32. */
TGT INLINE __m256 halves_to_f32(__m256i v, int hi) {
    __m256i h = hi ? _mm256_srli_epi32(v, 16) : _mm256_and_si256(v, _mm256_set1_epi32(0xffff));
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, _mm256_setzero_si256()), 0x08);
    return _mm256_cvtph_ps(_mm256_castsi256_si128(packed));
}

/* F16 rows quantized to Q8_0 as they are packed (q8_0_when_reduced), with
 * the float operations of llama.cpp's quantize_row_q8_0_ref, as
 * mm_unpack_levels runs them (max |x| in its order, d = max / 127,
 * id = 1 / d, q = roundf(x * id), d kept as f16), 8 rows at a time: their
 * 32 values of a block are transposed into pairs, so that the max is a
 * vertical one over 32 vectors and each 4-byte group of levels is assembled
 * in its lane. A ragged last block is zero-padded. (The portable unpacker
 * took a fifth of a llada-1b Q8_0 forward on this path.) */
TGT static void pack_i8_f16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    const uint16_t *data = w->data;
    int64_t k = w->cols;
    uint8_t *out = dst;
    for (int64_t c = kb; c < kb + kc; c += 32, out += mm_i8_block_bytes(32, NR)) {
        int count = (int)(kb + kc - c < 32 ? kb + kc - c : 32);
        for (int h = 0; h < NR / 8; h++) {
            __m256 x[32];
            for (int half = 0; half < 2; half++) { /* values 16 half .. 16 half + 15 of 8 rows */
                __m256 r[8];
                for (int i = 0; i < 8; i++) {
                    int64_t f = f0 + 8 * h + i;
                    const uint16_t *src = data + f * k + c + 16 * half;
                    if (f < w->rows && count == 32) {
                        _mm_prefetch((const char *)src + PACK_AHEAD, _MM_HINT_T0);
                        r[i] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)src));
                    } else { /* past the last row, or a ragged block */
                        uint16_t v[16] = {0};
                        for (int j = 0; f < w->rows && j < 16 && 16 * half + j < count; j++)
                            v[j] = src[j];
                        r[i] = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)v));
                    }
                }
                transpose8(r); /* r[p]: values 16 half + 2p and 16 half + 2p + 1 of each row */
                for (int p = 0; p < 8; p++) {
                    x[16 * half + 2 * p] = halves_to_f32(_mm256_castps_si256(r[p]), 0);
                    x[16 * half + 2 * p + 1] = halves_to_f32(_mm256_castps_si256(r[p]), 1);
                }
            }
            __m256 amax = _mm256_setzero_ps();
            for (int j = 0; j < 32; j++) /* amax > |x| ? amax : |x|, as the scalar loop */
                amax = _mm256_max_ps(amax, _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x[j]));
            __m256 d = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
            __m256 id = _mm256_and_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ),
                                      _mm256_div_ps(_mm256_set1_ps(1.0f), d));
            for (int g = 0; g < 8; g++) {
                __m256i v = _mm256_setzero_si256();
                for (int e = 0; e < 4; e++) {
                    __m256i q = _mm256_cvttps_epi32(round_half_away(_mm256_mul_ps(x[4 * g + e], id)));
                    v = _mm256_or_si256(v, _mm256_slli_epi32(_mm256_and_si256(q, _mm256_set1_epi32(0xff)), 8 * e));
                }
                v = _mm256_xor_si256(v, _mm256_set1_epi32((int)0x80808080u));
                _mm256_storeu_si256((__m256i *)(out + 4 * (g * NR + 8 * h)), v);
            }
            __m256 ds = _mm256_cvtph_ps(_mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            float *ws = (float *)(out + 32 * NR);
            _mm256_storeu_ps(ws + 8 * h, ds);
            _mm256_storeu_ps(ws + NR + 8 * h, _mm256_mul_ps(_mm256_set1_ps(-128.0f), ds));
        }
    }
}

/* kernel_i16_q8_0's panel: an I8 one rewritten in place, group g's bytes
 * ([NR][4] levels q + 128 of k 4g..4g+3) becoming pairs 2g and 2g + 1
 * ([2][NR][2]), the signed q. */
TGT static void groups_to_pairs(uint8_t *panel, int kc) {
    const __m256i order = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, /* per lane: */
                                           0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int s = 0; s < (kc + 31) / 32; s++) {
        uint8_t *block = panel + (size_t)s * mm_i8_block_bytes(32, NR);
        for (int g = 0; g < 8; g++) {
            __m256i *p = (__m256i *)(block + 4 * NR * g);
            /* features 0-7, then 8-15: per 4 features, their first pairs, then their second */
            __m256i lo = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_load_si256(p), order), 0xd8);
            __m256i hi = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_load_si256(p + 1), order), 0xd8);
            _mm256_store_si256(p, _mm256_xor_si256(_mm256_permute2x128_si256(lo, hi, 0x20), flip));
            _mm256_store_si256(p + 1, _mm256_xor_si256(_mm256_permute2x128_si256(lo, hi, 0x31), flip));
        }
    }
}

TGT static void pack_i16_q8_0(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_i8_simple(w, f0, kb, kc, dst);
    groups_to_pairs(dst, kc);
}

TGT static void pack_i16_f16(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst) {
    pack_i8_f16(w, f0, kb, kc, dst);
    groups_to_pairs(dst, kc);
}

/* The 8 floats of x from column j, zeros from column k on (a ragged last
 * block, F16 as Q8_0, is zero-padded as mm_pack_act_i8 pads it). */
TGT INLINE __m256 load_before(const float *x, int64_t j, int64_t k) {
    if (k - j >= 8)
        return _mm256_loadu_ps(x + j);
    __m256i left = _mm256_set1_epi32(k > j ? (int)(k - j) : 0);
    __m256i before = _mm256_cmpgt_epi32(left, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); /* lane i: j + i < k */
    return _mm256_maskload_ps(x + j, before);
}

TGT INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

/* x * id rounded to nearest even (the default MXCSR mode, as nearbyintf),
 * as int32; NaN and infinities (x * inf when max |x| is subnormal) give
 * 0x80000000, which becomes 0 as the portable packer's conversion makes
 * it (and AVX-512's truncating vpmovdb). */
TGT INLINE __m256i quantize8(__m256 v, __m256 id) {
    __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(v, id));
    return _mm256_andnot_si256(_mm256_cmpeq_epi32(q, _mm256_set1_epi32(INT32_MIN)), q);
}

/* The I8 activations, bit for bit as mm_pack_act_i8 (matmul.c) packs them,
 * 8 values a vector: the block's max |x| skipping NaN (maxps returns its
 * second operand unless the first is greater, as the scalar loop's
 * comparison), the same id and multiply, the same rounding. A vector max's
 * order does not matter: no NaN enters it. (The portable packer took 3% of
 * a llada-1b Q4_0 forward once the kernels were fast.) */
TGT INLINE void pack_act(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                         float *sc, bool i16) {
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t b0 = 0; b0 < k; b0 += ab) {
            __m256 vmax = _mm256_setzero_ps();
            for (int64_t j = b0; valid && j < b0 + ab; j += 8) {
                __m256 v = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), load_before(xr, j, k));
                vmax = _mm256_max_ps(v, vmax);
            }
            __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
            m = _mm_max_ps(m, _mm_shuffle_ps(m, m, 0x4e));
            float amax = _mm_cvtss_f32(_mm_max_ps(m, _mm_shuffle_ps(m, m, 0xb1)));
            __m256 id = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            float dx = amax / 127.0f;
            for (int64_t b = b0 / 32; b < (b0 + ab) / 32; b++) {
                uint32_t qd[16] __attribute__((aligned(32))) = {0};
                int sum[2] = {0, 0};
                if (valid) {
                    __m256i q[4];
                    for (int i = 0; i < 4; i++)
                        q[i] = quantize8(load_before(xr, 32 * b + 8 * i, k), id);
                    sum[0] = hsum_epi32(_mm256_add_epi32(q[0], q[1]));
                    sum[1] = hsum_epi32(_mm256_add_epi32(q[2], q[3]));
                    /* |q| <= 127: the saturating packs keep every value; then in order */
                    __m256i w0 = _mm256_packs_epi32(q[0], q[1]), w1 = _mm256_packs_epi32(q[2], q[3]);
                    if (i16) {
                        _mm256_store_si256((__m256i *)qd, _mm256_permute4x64_epi64(w0, 0xd8));
                        _mm256_store_si256((__m256i *)qd + 1, _mm256_permute4x64_epi64(w1, 0xd8));
                    } else {
                        __m256i p = _mm256_packs_epi16(w0, w1);
                        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                        _mm256_store_si256((__m256i *)qd, p);
                    }
                }
                int per_block = i16 ? 16 : 8; /* u32 per 32 values */
                for (int i = 0; i < per_block; i++)
                    a[(per_block * b + i) * mr + t] = qd[i];
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

TGT static void pack_act_i8(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                            float *sc) {
    pack_act(x, n, k, t0, mr, bk, ab, zp, a, sc, false);
}

/* The same values and scales, as int16 pairs (mm_kernels.act_i16, for kernel_i16_q8_0). */
TGT static void pack_act_i16(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                             float *sc) {
    pack_act(x, n, k, t0, mr, bk, ab, zp, a, sc, true);
}

#define I8_SET(mr, bk, zp, kernel, pack) {MM_I8, mr, NR, 1024, 64, bk, zp, kernel, pack, pack_act_i8, "avx2-i8", 0, false}
#define I16_SET(pack) {MM_I8, I16_MR, NR, 1024, 64, 32, 128, kernel_i16_q8_0, pack, pack_act_i16, "avx2-i8-maddwd", 0, true}
static const mm_kernels i8_q8_0 = I16_SET(pack_i16_q8_0);
static const mm_kernels i8_f16 = I16_SET(pack_i16_f16); /* as Q8_0 */
static const mm_kernels i8_q4_0 = I8_SET(I8_MR_WHOLE, 32, 8, kernel_i8_q4_0, pack_i8_simple);
static const mm_kernels i8_q4_1 = I8_SET(I8_MR_WHOLE, 32, 0, kernel_i8_q4_mins, pack_i8_simple);
static const mm_kernels i8_q4_k = I8_SET(I8_MR_WHOLE, 32, 0, kernel_i8_q4_mins, pack_i8_q45_k);
static const mm_kernels i8_q5_k = I8_SET(I8_MR_CHUNKED, 32, 0, kernel_i8_q5_k, pack_i8_q45_k);
static const mm_kernels i8_q6_k = I8_SET(Q6K_MR, 16, 32, kernel_q6_k, pack_q6_k);

/* ---- I8: vpdpbusd on ymm (AVX-VNNI) ---------------------------------------------- */

/* vpdpbusd adds four u8 x s8 products to an int32 lane without saturation,
 * so none of i8_tile's care is needed: the stored levels (Q8_0's q + 128
 * included) meet the activations directly, a sub-block's sum (at most
 * 32 * 255 * 127) is exact in int32, and the levels' offset is handled as
 * the AVX-512 VNNI kernel does: with a zero point (sym) zp * sum xq comes
 * off the integer sum, else the mins add a second FMA.
 *
 * The instruction exists in two encodings: VEX (AVX-VNNI) and EVEX
 * (AVX-512 VNNI + VL, on ymm). vnni_tile is written once and takes the
 * instruction as a parameter; each caller passes an always-inline wrapper
 * compiled for its own target, and both GCC and clang inline the wrapper
 * through the pointer (no call is left in the loop). The VEX copy
 * ("avxvnni-i8") is what the AVX2 path runs on an AVX-VNNI CPU. The EVEX
 * copy ("avx2-vnni256-evex") exists for the tests: it is the same source,
 * so running it on AVX-512 VNNI CPUs checks vnni_tile's arithmetic where
 * the VEX instruction cannot run. The VEX copy itself was not executed on
 * the machine this was developed on (an AVX-512 CPU without AVX-VNNI); the
 * tests run it wherever the CPU has AVX-VNNI (the AVX2 path's I8 kernels
 * there). Note that the EVEX copy may use ymm16-31 and embedded broadcasts,
 * so its speed says little about the VEX copy's with 16 registers.
 *
 * VNNI_MR 6: the inner loop holds 2 x 6 int32 accumulators, two panel
 * vectors and a broadcast, 15 of the 16 ymm registers; the f32 accumulators
 * are touched once per sub-block. */
#define TGT_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define TGT_VNNI256_EVEX __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define VNNI_MR 6

/* acc + the four products of u8 lanes of u and s8 lanes of s, per int32 lane */
typedef __m256i (*dpbusd_fn)(__m256i acc, __m256i u, __m256i s);

TGT_AVXVNNI INLINE __m256i dpbusd_vex(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_avx_epi32(acc, u, s);
}
TGT_VNNI256_EVEX INLINE __m256i dpbusd_evex(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(acc, u, s);
}

/* Sub-blocks of bk values for VNNI_MR x 16 outputs: integer sums, then scaled. */
TGT INLINE void vnni_tile(const mm_tile *t, int bk, bool sym, dpbusd_fn dpbusd) {
    __m256 c0[VNNI_MR], c1[VNNI_MR];
    for (int i = 0; i < VNNI_MR; i++)
        c0[i] = c1[i] = _mm256_setzero_ps();
    const uint32_t *a = t->a;
    const float *sc = t->a_sc;
    const uint8_t *b = t->b;
    for (int s = 0; s < t->kc / bk; s++, sc += MM_SC_ROWS * VNNI_MR) {
        __m256i i0[VNNI_MR], i1[VNNI_MR];
        for (int i = 0; i < VNNI_MR; i++)
            i0[i] = i1[i] = _mm256_setzero_si256();
        for (int q = 0; q < bk / 4; q++, a += VNNI_MR, b += 4 * NR) {
            __m256i b0 = _mm256_load_si256((const __m256i *)b), b1 = _mm256_load_si256((const __m256i *)(b + 32));
            for (int i = 0; i < VNNI_MR; i++) {
                __m256i av = _mm256_set1_epi32((int)a[i]);
                i0[i] = dpbusd(i0[i], b0, av);
                i1[i] = dpbusd(i1[i], b1, av);
            }
        }
        scale_sub_block(c0, c1, i0, i1, VNNI_MR, sc, (const float *)b, sym ? I8_ZP : I8_MINS);
        b += 2 * NR * sizeof(float);
    }
    store_tile(t, c0, c1, VNNI_MR);
}

TGT_AVXVNNI static void kernel_vex_32(const mm_tile *t) { vnni_tile(t, 32, false, dpbusd_vex); }
TGT_AVXVNNI static void kernel_vex_32_sym(const mm_tile *t) { vnni_tile(t, 32, true, dpbusd_vex); }
TGT_AVXVNNI static void kernel_vex_16_sym(const mm_tile *t) { vnni_tile(t, 16, true, dpbusd_vex); }
TGT_VNNI256_EVEX static void kernel_evex_32(const mm_tile *t) { vnni_tile(t, 32, false, dpbusd_evex); }
TGT_VNNI256_EVEX static void kernel_evex_32_sym(const mm_tile *t) { vnni_tile(t, 32, true, dpbusd_evex); }
TGT_VNNI256_EVEX static void kernel_evex_16_sym(const mm_tile *t) { vnni_tile(t, 16, true, dpbusd_evex); }

#define VNNI_SET(bk, zp, kernel, name, pack) {MM_I8, VNNI_MR, NR, 1024, 64, bk, zp, kernel, pack, pack_act_i8, name, 0, false}
/* Per encoding (VEX, EVEX): Q8_0, Q4_0, Q4_1, Q6_K, F16 as Q8_0, Q4_K and Q5_K. */
static const mm_kernels vnni_sets[2][6] = {
    {VNNI_SET(32, 128, kernel_vex_32_sym, "avxvnni-i8", pack_i8_simple),
     VNNI_SET(32, 8, kernel_vex_32_sym, "avxvnni-i8", pack_i8_simple),
     VNNI_SET(32, 0, kernel_vex_32, "avxvnni-i8", pack_i8_simple),
     VNNI_SET(16, 32, kernel_vex_16_sym, "avxvnni-i8", pack_i8_q6_k),
     VNNI_SET(32, 128, kernel_vex_32_sym, "avxvnni-i8", pack_i8_f16),
     VNNI_SET(32, 0, kernel_vex_32, "avxvnni-i8", pack_i8_q45_k)},
    {VNNI_SET(32, 128, kernel_evex_32_sym, "avx2-vnni256-evex", pack_i8_simple),
     VNNI_SET(32, 8, kernel_evex_32_sym, "avx2-vnni256-evex", pack_i8_simple),
     VNNI_SET(32, 0, kernel_evex_32, "avx2-vnni256-evex", pack_i8_simple),
     VNNI_SET(16, 32, kernel_evex_16_sym, "avx2-vnni256-evex", pack_i8_q6_k),
     VNNI_SET(32, 128, kernel_evex_32_sym, "avx2-vnni256-evex", pack_i8_f16),
     VNNI_SET(32, 0, kernel_evex_32, "avx2-vnni256-evex", pack_i8_q45_k)},
};

const mm_kernels *mm_avx2_vnni_kernels(um_dtype t, bool evex) {
    const mm_kernels *sets = vnni_sets[evex];
    switch (t) {
    case UM_F16: /* as Q8_0 */
        return &sets[4];
    case UM_Q8_0:
        return &sets[0];
    case UM_Q4_0:
        return &sets[1];
    case UM_Q4_1:
        return &sets[2];
    case UM_Q4_K:
    case UM_Q5_K:
        return &sets[5];
    case UM_Q6_K:
        return &sets[3];
    default:
        return NULL;
    }
}

static const mm_kernels *i8_kernels(um_dtype t) {
    switch (t) {
    case UM_F16: /* as Q8_0 */
        return &i8_f16;
    case UM_Q8_0:
        return &i8_q8_0;
    case UM_Q4_0:
        return &i8_q4_0;
    case UM_Q4_1:
        return &i8_q4_1;
    case UM_Q4_K:
        return &i8_q4_k;
    case UM_Q5_K:
        return &i8_q5_k;
    case UM_Q6_K:
        return &i8_q6_k;
    default:
        return NULL;
    }
}

const mm_kernels *mm_avx2_kernels(mm_kind kind, um_dtype t) {
    switch (kind) {
    case MM_F32:
        return t == UM_BF16 ? &f32_bf16_kernels : t == UM_F16 ? &f32_f16_kernels : &f32_kernels;
    case MM_I8:
        return um_cpu_features_get()->avx_vnni ? mm_avx2_vnni_kernels(t, false) : i8_kernels(t);
    default:
        return NULL;
    }
}

#else

const mm_kernels *mm_avx2_kernels(mm_kind kind, um_dtype t) { return NULL; }
const mm_kernels *mm_avx2_vnni_kernels(um_dtype t, bool evex) { return NULL; }

#endif
