/* Inside the matmul: the blocked driver (matmul.c) and the per-instruction-set
 * micro-kernels and packers (matmul_avx512.c, matmul_avx2.c, matmul_neon.c).
 *
 * y[n][m] = x[n][k] * W^T, W [m][k] as stored. The driver splits the output
 * features into tasks of NC features for the pool; a task walks k in blocks
 * of KC, packs its NC x KC slice of W into panels of NR features laid out
 * k-major (one vector of NR features per k step, or per pair / quad of k
 * for the dot-product instructions), and runs the micro-kernel over every
 * block of MR tokens against every panel. The panel (a few hundred KiB)
 * stays in L2 while all tokens stream past it, so each weight is read from
 * memory once per matmul and converted once per task, not once per token.
 *
 * Three kinds of arithmetic:
 *
 *   F32   f32 activations (read in place) times f32 panels, FMA. Every
 *         weight type can be expanded to f32 panels; this is the arithmetic
 *         of the PyTorch references, used for F32 weights, and for every
 *         type with f32 activations (UNMASK_ACTIVATIONS=f32) or where a path
 *         lacks the type's reduced kernel.
 *   BF16  activations rounded to bf16 once per matmul, times bf16 weights
 *         taken as they are (pairs interleaved; f16 weights rounded to
 *         bf16 in the pack), vdpbf16ps (bfmlalt + bfmlalb on arm64):
 *         products exact, sums in f32.
 *   I8    activations quantized to int8 per block of 32 (scale max|x|/127,
 *         as llama.cpp's Q8_0 activations), or of 256 for the K-quants
 *         (as its Q8_K ones: mm_i8_ab), times the weights' integer
 *         levels unpacked to u8, vpdpbusd (AVX-512 VNNI, AVX-VNNI) or
 *         vpmaddubsw + vpmaddwd (AVX2, and AVX-512 CPUs without VNNI),
 *         sdot/smmla (arm64); each block's integer sum is scaled in f32:
 *         value = scale * q + mn per weight sub-block, so
 *         sum_k w x = dx * (scale * sum q*xq + mn * sum xq).
 *
 * BF16 and I8 round the activations (reduced precision): the default for
 * BF16, F16 and quantized weights, off in a context made with f32 activations, whose default is
 * UNMASK_ACTIVATIONS (kernels.h: um_exec). */
#ifndef UM_KERNELS_MATMUL_IMPL_H
#define UM_KERNELS_MATMUL_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

typedef enum { MM_F32, MM_BF16, MM_I8 } mm_kind;

/* One micro-tile: mr (<= MR) tokens x nr (<= NR) features over kc. */
typedef struct {
    int kc;
    const void *a;       /* packed activations (below), or x at (first token, kb), rows lda floats apart */
    int64_t lda;
    const float *a_sc;   /* I8: per weight sub-block, MM_SC_ROWS rows of MR (below) */
    const void *b;       /* the panel */
    float *c;            /* y at (first token, first feature), rows ldc floats apart */
    int64_t ldc;
    int mr, nr;
    bool accumulate;     /* add to c (a later k block); else store, plus bias when given */
    const float *bias;   /* at the first feature, or NULL */
} mm_tile;

typedef void (*mm_kernel_fn)(const mm_tile *t);
/* Packs features [f0, f0 + NR) (rows past w->rows as zeros) x [kb, kb + kc) of w into dst. */
typedef void (*mm_pack_fn)(const um_weight *w, int64_t f0, int64_t kb, int kc, void *dst);

/* Packs activation rows [t0, t0 + mr) of x (rows past n as zeros) for the
 * BF16 or I8 kernels: a gets the block's values, sc (I8) its scales (bk:
 * the weights' sub-block, ab: the activation block, mm_i8_ab). The
 * SIMD versions must give the portable one's bits exactly (same rounding,
 * same operations), so that every path sees the same rounded activations. */
typedef void (*mm_act_fn)(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                          float *sc);
void mm_pack_act_f32(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                     float *sc);
void mm_pack_act_bf16(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                      float *sc);
void mm_pack_act_i8(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                    float *sc);

/* Rows of activation scales per I8 sub-block (see below). */
#define MM_SC_ROWS 3

typedef struct {
    mm_kind kind;
    int mr, nr;   /* register tile */
    int kc;       /* k block: a multiple of 256 (whole K-quant super-blocks) */
    int nc;       /* features per task: a multiple of nr */
    int bk;       /* I8: weight sub-block (32, or 16 for Q6_K) */
    int zp;       /* I8: the levels' zero point when mn = -zp * scale (Q8_0 128, Q4_0 8, Q6_K 32), else 0 */
    mm_kernel_fn kernel;
    mm_pack_fn pack;
    mm_act_fn pack_act; /* NULL: F32 activations read in place */
    const char *name; /* for bench and tests: "avx512-bf16" etc. */
    int f32_bytes;    /* F32: bytes a panel holds per weight, 4 (f32), or 2 where the kernel widens
                         BF16 or F16 panels into f32 as it reads them; 0 for the other kinds */
    bool act_i16;     /* I8: the activations' int8 values stored as int16 pairs, for a kernel that
                         multiplies with vpmaddwd alone (AVX2 Q8_0); else four int8 a u32 */
} mm_kernels;

/* Activation values per packed u32 (see below). */
static inline int mm_act_per_u32(const mm_kernels *ks) {
    return ks->kind == MM_BF16 ? 2 : ks->kind == MM_I8 ? (ks->act_i16 ? 2 : 4) : 1;
}

/* Packed activations (built by the driver, shared by all tasks), per block
 * of MR tokens, rows past n zero (F32 kernels without pack_act read x in
 * place):
 *   F32:  [k][MR] f32 (MR rows of x read in place are 4 KiB-aligned apart
 *         for power-of-two k, and all land in one L1 set);
 *   BF16: [k2 = ceil(k/2)][MR] u32, each a pair (x[2j], x[2j+1]) in bf16;
 *   I8:   [k/4][MR] u32, each 4 consecutive int8 values (act_i16: [k/2][MR]
 *         u32, each 2 consecutive values as int16); and scales
 *         [k/bk][MM_SC_ROWS][MR]: f32 dx of the enclosing activation
 *         block (32 or 256 values, mm_i8_ab), f32
 *         dx * sum of the bk values, and int32 zp * that sum. With a zero
 *         point the kernel corrects the integer sum exactly,
 *         sum (q - zp) xq = sum q xq - zp sum xq, and skips the mn term. */

/* Writes token t's scales for I8 sub-block sbi in that layout: dx, dx times
 * the sum of its quantized values, and zp times that sum. Every packer calls
 * it, so every path stores the same bits. */
static inline void mm_store_act_scales(float *sc, int64_t sbi, int mr, int t, float dx, int32_t sum, int zp) {
    int32_t zb = zp * sum;
    sc[(MM_SC_ROWS * sbi) * mr + t] = dx;
    sc[(MM_SC_ROWS * sbi + 1) * mr + t] = dx * (float)sum;
    memcpy(&sc[(MM_SC_ROWS * sbi + 2) * mr + t], &zb, sizeof zb);
}

/* F32 panels of 16-bit values (f32_bytes 2): [kc][nr] u16, F16 ones in
 * feature order, BF16 ones with feature f (< nr) at this slot: each 128-bit
 * lane L of a row holds features 4L..4L+3 of the first half, then the same
 * of the second half (nr 16: features 0-3, 8-11, 4-7, 12-15), the order in
 * which vpunpck[lh]wd widens them back into two vectors (matmul_avx2.c,
 * matmul_avx512.c). */
static inline int mm_bf16_panel_slot(int f, int nr) {
    int half = nr / 2;
    return 8 * ((f % half) / 4) + (f >= half ? 4 : 0) + f % 4;
}

/* I8 weight panel, per bk sub-block: [bk/4][NR] u32 of u8 levels, then
 * scale[NR], mn[NR] f32. Bytes per sub-block: */
static inline size_t mm_i8_block_bytes(int bk, int nr) { return (size_t)bk * nr + 2 * sizeof(float) * nr; }

/* Bytes of one packed panel of nr features x kc. */
size_t mm_panel_bytes(const mm_kernels *ks, int kc);

/* The integer levels of weight sub-block `sb` (of bk values) of row `row`
 * (of k values): value = scale * q + mn (exactly the dequantized value up to
 * f32 rounding). F16 rows are quantized to Q8_0 here (llama.cpp's
 * quantize_row_q8_0_ref), a ragged last block zero-padded. Portable; the
 * SIMD packers must agree with it. */
void mm_unpack_levels(um_dtype t, const uint8_t *row, int64_t k, int bk, int64_t sb, uint8_t *q, float *scale,
                      float *mn);
/* Sub-block size for the I8 path: 16 for Q6_K, 32 otherwise (F16 as Q8_0:
 * um_weight.q8_0_when_reduced); 0 if t has no integer path. */
int mm_i8_bk(um_dtype t);
/* Activation block for the I8 path: 256 for the K-quants (Q4_K, Q5_K,
 * Q6_K: one activation scale per weight super-block, which lets their
 * AVX-512 kernels apply it once per super-block, as llama.cpp's Q8_K),
 * 32 otherwise. */
int mm_i8_ab(um_dtype t);
/* The zero point of t's levels (mn = -zp * scale), or 0 when mn is free. */
int mm_i8_zp(um_dtype t);

/* f32 values of row r, columns [kb, kb + kc) (kb, kc whole blocks of w's type). */
void mm_row_segment_f32(const um_weight *w, int64_t r, int64_t kb, int kc, float *out);

/* y = x * W^T (+ bias) with the given kernels, or with the portable
 * reference of `kind` when ks is NULL; false when the packed operands'
 * memory could not be had. um_matmul chooses both; tests call this to
 * compare paths. */
bool mm_run(um_pool *pool, const mm_kernels *ks, mm_kind kind, const float *x, int n, const um_weight *w,
            const float *bias, float *y, float *scratch);

/* Packs all of w into ks's panels, in the order mm_run's tasks read them,
 * on pool (NULL: this thread), replacing w->packed; false, with w->packed
 * NULL, when out of memory. um_weight_pack chooses ks as um_matmul would. */
bool mm_pack_weight(um_pool *pool, const mm_kernels *ks, um_weight *w, size_t *bytes);

/* The kernels um_matmul runs `kind` products of type t on along path (the
 * AVX2 int8 ones on AVX-512 CPUs without VNNI); NULL where the path has
 * none (the scalar path: the portable reference). */
const mm_kernels *mm_choose_kernels(um_kernel_path path, mm_kind kind, um_dtype t);

/* Kernel sets per instruction set; NULL where the CPU or the build lacks one. */
const mm_kernels *mm_avx512_kernels(mm_kind kind, um_dtype t);
/* On the AVX2 path I8 is "avxvnni-i8" where the CPU has AVX-VNNI, else "avx2-i8". */
const mm_kernels *mm_avx2_kernels(mm_kind kind, um_dtype t);
/* The I8 kernels with vpdpbusd on ymm, in the VEX encoding (AVX-VNNI: what
 * mm_avx2_kernels gives where the CPU has it) or, with evex, the same
 * source in the EVEX encoding (AVX-512 VNNI + VL), which exists so that
 * the tests run that source on AVX-512 CPUs; NULL for types without
 * integer levels or where the build lacks x86-64. The caller checks the CPU. */
const mm_kernels *mm_avx2_vnni_kernels(um_dtype t, bool evex);
/* arm64 (matmul_neon.c): F32 "neon-f32" on any NEON CPU; I8 with smmla
 * ("neon-smmla-i8") where it has i8mm, else sdot ("neon-sdot-i8") where it
 * has the dot product; BF16 with bfmlalt/bfmlalb ("neon-bf16") where it has
 * bf16; NULL otherwise, and on other architectures. */
const mm_kernels *mm_neon_kernels(mm_kind kind, um_dtype t);
/* The NEON I8 kernels by instruction, sdot or (i8mm) smmla, whatever the
 * CPU has, so that the tests run both; NULL for types without integer
 * levels or off arm64. The caller checks the CPU. */
const mm_kernels *mm_neon_i8_kernels(um_dtype t, bool i8mm);
/* The NEON BF16 kernels: bfmlalt/bfmlalb ("neon-bf16", what
 * mm_neon_kernels gives), or with mmla bfmmla ("neon-bfmmla-bf16"); NULL
 * off arm64. The caller checks the CPU. */
const mm_kernels *mm_neon_bf16_kernels(bool mmla);

/* The optional oneDNN backend (matmul_onednn.c; stubs when the build lacks
 * oneDNN). It takes F32 weights (dnnl_sgemm) and BF16 weights with reduced
 * activations (the bf16 matmul primitive on activations rounded to bf16 as
 * mm_pack_act_bf16 rounds them, f32 accumulation: the MM_BF16 arithmetic).
 * mm_onednn_run returns false, with y untouched, when it does not handle the
 * case or oneDNN fails; the caller then runs our kernels. */
bool mm_onednn_handles(um_dtype t, bool reduced);
bool mm_onednn_run(um_pool *pool, const float *x, int n, const um_weight *w, const float *bias, float *y,
                   bool reduced);

#endif
