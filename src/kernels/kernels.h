/* The CPU kernels the model calls: matmul per weight type, RMSNorm, RoPE,
 * bidirectional attention, SwiGLU. Activations are f32 and row-major;
 * weights keep the checkpoint's type and PyTorch layout [out, in]. */
#ifndef UM_KERNELS_H
#define UM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/pool.h"
#include "kernels/cpu.h"

typedef struct {
    um_dtype type; /* F32, F16, BF16 or a llama.cpp block type (quant.h) */
    int64_t rows;  /* output features */
    int64_t cols;  /* input features */
    const void *data;
    /* F16 only: with reduced activations, quantize the rows to Q8_0 as the
     * matmul packs them (llama.cpp's rule, blocks of 32, the last one
     * zero-padded when cols is not a multiple of 32) and take the int8 path.
     * The loaders set it on the F16 matrices of quantized files, which are
     * F16 only because their rows are not whole blocks (um_matmul_reduced). */
    bool q8_0_when_reduced;
    /* The matrix already packed into one kernel set's panels (um_weight_pack),
     * or NULL: the matmul then packs panels from data on every product. */
    const struct um_packed_weight *packed;
} um_weight;

/* Row r of w as f32. */
void um_weight_row_f32(const um_weight *w, int64_t r, float *out);

/* How the ops run: on which threads, in which arithmetic, on which
 * instruction set. A context (model/context.h) holds one; the process
 * defaults (UNMASK_ACTIVATIONS, UNMASK_KERNEL) are um_exec_defaults'. */
typedef struct {
    um_pool *pool;
    bool reduced;        /* reduced-precision activations (um_matmul_reduced) */
    um_kernel_path path; /* instruction-set path (kernels/cpu.h) */
    um_kernel_lib lib;   /* matmul library backend (oneDNN) */
} um_exec;

/* The process defaults on pool: the environment's, or what the setters below chose. */
um_exec um_exec_defaults(um_pool *pool);

/* y[n][w.rows] = x[n][w.cols] * w^T (+ bias[w.rows] when bias != NULL).
 * scratch holds um_matmul_scratch_floats(threads, w.cols) floats; f32 data
 * must be 4-byte aligned. False, with y unspecified, when the memory for the
 * packed operands could not be had: never a silent change of arithmetic. */
bool um_matmul(const um_exec *ex, const float *x, int n, const um_weight *w, const float *bias, float *y,
               float *scratch);
size_t um_matmul_scratch_floats(int n_threads, int64_t max_cols);

/* Packs w once into the panels um_matmul's kernels under ex would build
 * from it on every product (llama.cpp's "repack"), on ex's pool, and keeps
 * them in w->packed: products under any exec with that kernel set then skip
 * the packing, with the same bits; others pack as before. A no-op (true)
 * where ex runs no packing kernels (the scalar path, oneDNN); false, with w
 * unchanged, when the memory could not be had. *bytes gets the packed size
 * (0 when nothing was packed). */
bool um_weight_pack(um_weight *w, const um_exec *ex, size_t *bytes);
/* The bytes um_weight_pack would take for w under ex (0: it packs nothing). */
size_t um_weight_packed_size(const um_weight *w, const um_exec *ex);
/* Frees w->packed (NULL is fine). */
void um_weight_unpack(um_weight *w);
/* y[i] = x * w[i]^T (+ bias[i]) for i < count: the products of one input
 * (a layer's q, k and v; gate and up). Where the weights have one type, the
 * activations are rounded once and all the products' tasks share one pass
 * of the pool; else one um_matmul each. The results are um_matmul's. */
bool um_matmul_many(const um_exec *ex, const float *x, int n, int count, const um_weight *const *w,
                    const float *const *bias, float *const *y, float *scratch);

/* Reduced-precision activations: when on, BF16 weights meet activations
 * rounded to bf16 (vdpbf16ps, bfmmla on arm64) and quantized weights meet activations
 * quantized to int8 per 32 values, per 256 for the K-quants (vpdpbusd, or
 * vpmaddubsw on AVX2; sdot or smmla on arm64), where the CPU has those instructions: 2-4x the f32
 * speed, with the rounding of
 * llama.cpp (int8) and of PyTorch's bf16 inference instead of f32 results.
 * On by default, as in those engines: the weights' own rounding is larger.
 * UNMASK_ACTIVATIONS=f32 turns it off (every product in f32, the reference's
 * arithmetic). F16 weights take the bf16 arithmetic too, rounded to bf16
 * themselves: exact for weights that came from bf16 checkpoints (LLaDA's and
 * Dream's all did), 3 bits short of f16 otherwise. In a quantized file the
 * F16 matrices are those llama.cpp's quantizer could not quantize because
 * their rows are not whole blocks, such as llada-1b's ffn_down (5634
 * inputs); they carry q8_0_when_reduced and take the int8 path as Q8_0
 * (what the quantizer would have written for rows of whole blocks), at
 * twice the bf16 speed. F32 weights always meet f32 activations. The
 * instruction-set path is UNMASK_KERNEL (kernels/cpu.h). */
bool um_matmul_reduced(void);
void um_matmul_set_reduced(bool on);
/* The kernel um_matmul uses for weights of type t under ex ("avx512-f32", ...). */
const char *um_matmul_kernel_name(const um_exec *ex, um_dtype t);

/* out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * weight, for n rows of d. out may be x. */
void um_rmsnorm(float *out, const float *x, const float *weight, int n, int d, float eps);

/* cos/sin tables [seq][rot_dim/2] for positions 0..seq-1, computed in f32
 * as the reference does (inv_freq = 1 / theta^(2i/rot_dim)); rot_dim is the
 * rotated part of a head (all of it but for partial RoPE, LLaDA2's half). */
void um_rope_table(float *cos_t, float *sin_t, int seq, int rot_dim, float theta);

/* RoPE in place on the first rot_dim dimensions of each head of
 * x[seq][n_heads][head_dim] (the rest pass through). Rotate-half (the
 * checkpoint's layout): dimension j pairs with j + rot_dim/2; interleaved
 * (llama.cpp's permuted q/k rows in GGUF files): 2j pairs with 2j + 1. */
void um_rope(float *x, int seq, int n_heads, int head_dim, int rot_dim, bool interleaved, const float *cos_t,
             const float *sin_t);

/* Bidirectional multi-head attention of n_q queries against n_kv keys and
 * values of one sequence: q[n_q][n_heads*hd], k/v[n_kv][n_kv_heads*hd] ->
 * out[n_q][n_heads*hd]. Query head h reads key/value head h / (n_heads /
 * n_kv_heads). No mask: every query sees all n_kv keys. Positions are already
 * applied (RoPE), so the queries may be any subset of the sequence (a KV-cached
 * step passes its block against the whole canvas). Tiled with an online
 * softmax (FlashAttention's), parallel over heads and query tiles; scratch
 * holds um_attention_scratch_floats(threads, n_kv, n_kv_heads, head_dim).
 * Reduced: both products take bf16 operands (queries, keys, values and the
 * probabilities rounded to nearest even; products exact, sums in f32), as
 * PyTorch's bf16 inference does, where the path has bf16 dot products
 * (AVX-512 BF16, arm64 bf16) and on the scalar path, which is the reference; elsewhere
 * f32 (as the matmuls: um_matmul_reduced). */
void um_attention(const um_exec *ex, const float *q, int n_q, const float *k, const float *v, int n_kv, float *out,
                  int n_heads, int n_kv_heads, int head_dim, bool reduced, float *scratch);
size_t um_attention_scratch_floats(int n_threads, int n_kv, int n_kv_heads, int head_dim);

/* C[i][x] += sum_k A[i * a_i + k * a_k] B[k][x] for i < m, x < n, k < kk;
 * B and C row-major with row strides ldb and ldc. One thread: for small
 * products inside a pool task (training's attention, kernels/gemm_acc.c). */
void um_gemm_acc(um_kernel_path path, float *C, int ldc, const float *A, int a_i, int a_k, const float *B, int ldb, int m, int n, int kk);
/* The same on bf16 pairs: C[i][x] += sum_p A[i][p] . B[p][x], A [m][kp] and
 * B [kp][n] u32 (row strides lda, ldb), each two bf16 values (low half the
 * even k); the products exact, the sums in f32 (vdpbf16ps where the path has
 * it, bfmlalt/bfmlalb on arm64 bf16, else its exact emulation). */
void um_gemm_acc_bf16(um_kernel_path path, float *C, int ldc, const uint32_t *A, int lda, const uint32_t *B, int ldb, int m, int n,
                      int kp);
/* dst[i] = the bf16 pair (src[2i], src[2i + 1]) for 2i < n, rounded to
 * nearest even (a zero high half past n). */
void um_bf16_pairs(um_kernel_path path, uint32_t *dst, const float *src, int n);

/* s[x] = exp(s[x] - shift) for x < n, returning their sum (kernels/exp_row.c:
 * vectorized, within 2 ulp of expf; results below 1.2e-38 stay there). */
float um_exp_row(um_kernel_path path, float *s, int n, float shift);
/* The sum over x < n of e = exp((double)s[x] - shift), and with weighted
 * the sum of e (s[x] - shift) where e > 0, in double (kernels/exp_f64.c:
 * vectorized, within a few ulp of exp; 0 below exp(-708)); the same bits
 * on every path. */
double um_exp_sum_f64(um_kernel_path path, const float *s, int n, float shift, double *weighted);
/* One key tile of attention's online softmax, rows i < nq of the scores S
 * (nk each, rows lds apart), vectorized with um_exp_row's exp (a scalar
 * row max alone, a chain of dependent compares, took as long as the
 * exponentials): the running max m[i] grows to cover the row,
 * the row becomes exp(s - m[i]), and the normalizer and output row O[i]
 * (hd values) are rescaled by exp(old m - new m). The normalizer of row i is
 * kept as UM_SOFTMAX_LANES partial sums, l[i * UM_SOFTMAX_LANES ...] (start
 * at 0, add them up at the end), so that no tile reduces across lanes. */
#define UM_SOFTMAX_LANES 16
void um_softmax_step(um_kernel_path path, float *S, int lds, int nq, int nk, float *m, float *l, float *O, int hd);

/* gate[i] = silu(gate[i]) * up[i], with um_exp_row's exp. */
void um_swiglu(um_kernel_path path, float *gate, const float *up, int64_t n);

#endif
