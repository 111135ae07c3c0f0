/* Norms, RoPE, activation and attention: the non-matmul operations of the
 * transformer, written to match the PyTorch reference's arithmetic (f32
 * storage, f32 or wider accumulation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"

void um_rmsnorm(float *out, const float *x, const float *weight, int n, int d, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (int64_t)t * d;
        float *yr = out + (int64_t)t * d;
        double ss = 0;
        for (int i = 0; i < d; i++)
            ss += (double)xr[i] * xr[i];
        float inv = 1.0f / sqrtf((float)(ss / d) + eps);
        for (int i = 0; i < d; i++)
            yr[i] = weight[i] * (xr[i] * inv);
    }
}

void um_rope_table(float *cos_t, float *sin_t, int seq, int rot_dim, float theta) {
    int half = rot_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)rot_dim);
        for (int p = 0; p < seq; p++) {
            float angle = (float)p * inv_freq;
            cos_t[(int64_t)p * half + i] = cosf(angle);
            sin_t[(int64_t)p * half + i] = sinf(angle);
        }
    }
}

/* Rotate-half pairs dimension i with i + half; the interleaved layout (the
 * q/k rows llama.cpp's converter writes) pairs 2i with 2i + 1. Either way
 * pair i turns by the angle position * inv_freq[i]. */
void um_rope(float *x, int seq, int n_heads, int head_dim, int rot_dim, bool interleaved, const float *cos_t,
             const float *sin_t) {
    int half = rot_dim / 2, stride = interleaved ? 2 : 1, offset = interleaved ? 1 : half;
    for (int p = 0; p < seq; p++) {
        const float *c = cos_t + (int64_t)p * half, *s = sin_t + (int64_t)p * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((int64_t)p * n_heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float *va = v + i * stride, *vb = va + offset;
                float a = *va, b = *vb;
                *va = a * c[i] - b * s[i];
                *vb = b * c[i] + a * s[i];
            }
        }
    }
}

/* Attention in the manner of FlashAttention (Dao et al. 2022), on the CPU: a
 * task takes one head and Q_TILE queries, walks the keys K_TILE at a time and
 * keeps a running maximum m, normalizer l and unnormalized output O per
 * query, rescaling them by exp(m_old - m_new) whenever the maximum grows. A
 * K tile and a V tile serve all Q_TILE queries from cache, and scores never
 * exceed Q_TILE x K_TILE floats. Both products, scores = (scale q) K^T and
 * O += P V, run on um_gemm_acc, the register-tiled kernel of the path in use;
 * each sum runs over its terms in order.
 *
 * Once per call each kv head's keys are copied into tiles of [head_dim][K_TILE]
 * (transposed, so score rows are contiguous sums along keys) and its values
 * into [n_kv][head_dim], both contiguous: read in place, the rows of a tile lie
 * n_kv or n_kv_heads * head_dim floats apart, often a power of two, and all
 * fall into the same few L1 sets. Q_TILE is a multiple of every path's
 * register tile (4 or 6 rows), so no query row takes the untiled loop.
 *
 * Reduced (bf16), the operands of both products are bf16 pairs for
 * um_gemm_acc_bf16: the scaled queries [Q_TILE][hd/2] and the probabilities
 * [Q_TILE][K_TILE/2] paired along their rows, the key tiles [hd/2][K_TILE]
 * paired along head_dim, the values [n_kv/2][hd] paired along keys (a
 * zero half past the last key). */
enum { Q_TILE = 24, K_TILE = 64 };

typedef struct {
    const float *q, *k, *v;
    float *out;
    int n_q, n_kv, n_heads, n_kv_heads, head_dim, n_tiles;
    bool bf16;
    um_kernel_path path;
    float *k_t;  /* [n_kv_heads][key tiles][head_dim][K_TILE], or the bf16 pairs (above) in the same room */
    float *v_c;  /* [n_kv_heads][n_kv][head_dim], or the bf16 pairs */
    float *work; /* per thread: attn_thread_floats */
} attn_job;

/* Per thread: scores S, output O, the scaled queries [Q_TILE][hd], m, the
 * normalizers' partial sums l, and the bf16 pairs of the queries and
 * probabilities. */
static size_t attn_thread_floats(int head_dim) {
    return (size_t)Q_TILE * K_TILE + 2 * (size_t)Q_TILE * head_dim + Q_TILE * (1 + UM_SOFTMAX_LANES) +
           (size_t)Q_TILE * (head_dim + K_TILE) / 2;
}

static size_t key_tiles_floats(int n_kv, int head_dim) {
    return (size_t)(n_kv + K_TILE - 1) / K_TILE * K_TILE * head_dim;
}

size_t um_attention_scratch_floats(int n_threads, int n_kv, int n_kv_heads, int head_dim) {
    return (key_tiles_floats(n_kv, head_dim) + (size_t)(n_kv + 1) * head_dim) * n_kv_heads +
           (size_t)n_threads * attn_thread_floats(head_dim);
}

/* For kv head g = task: its key tiles, k_t[g][t / K_TILE][c][t % K_TILE] =
 * k[t][g hd + c], and its values, v_c[g][t][c] = v[t][g hd + c]; reduced,
 * the same values in bf16, key tiles paired along c and values along t
 * (each u32 a pair, its low half the even index). */
static void copy_kv_task(void *ctx, int g, int thread) {
    const attn_job *j = ctx;
    int hd = j->head_dim;
    int64_t kvs = (int64_t)j->n_kv_heads * hd;
    float *kt = j->k_t + (int64_t)g * key_tiles_floats(j->n_kv, hd), *vc = j->v_c + (int64_t)g * (j->n_kv + 1) * hd;
    if (j->bf16) {
        uint32_t *kp = (uint32_t *)kt, *vp = (uint32_t *)vc, pairs[K_TILE];
        float both[2 * K_TILE];
        memset(kp, 0, key_tiles_floats(j->n_kv, hd) * sizeof(float)); /* keys past n_kv score 0 */
        for (int t = 0; t < j->n_kv; t++) /* a key's pairs go down its column of the tile */
            for (int c0 = 0; c0 < hd; c0 += 2 * K_TILE) {
                int nc = hd - c0 < 2 * K_TILE ? hd - c0 : 2 * K_TILE;
                um_bf16_pairs(j->path, pairs, j->k + t * kvs + (int64_t)g * hd + c0, nc);
                uint32_t *col = kp + ((int64_t)(t / K_TILE) * hd + c0) / 2 * K_TILE + t % K_TILE;
                for (int p = 0; p < nc / 2; p++)
                    col[p * K_TILE] = pairs[p];
            }
        for (int t = 0; t < j->n_kv; t += 2) /* two keys' values interleaved, then paired */
            for (int c0 = 0; c0 < hd; c0 += K_TILE) {
                int nc = hd - c0 < K_TILE ? hd - c0 : K_TILE;
                const float *v0 = j->v + t * kvs + (int64_t)g * hd + c0, *v1 = v0 + kvs;
                for (int c = 0; c < nc; c++) {
                    both[2 * c] = v0[c];
                    both[2 * c + 1] = t + 1 < j->n_kv ? v1[c] : 0.0f;
                }
                um_bf16_pairs(j->path, vp + (int64_t)(t / 2) * hd + c0, both, 2 * nc);
            }
        return;
    }
    for (int t = 0; t < j->n_kv; t++) {
        const float *kr = j->k + t * kvs + (int64_t)g * hd;
        float *tile = kt + (int64_t)(t / K_TILE) * hd * K_TILE + t % K_TILE;
        for (int c = 0; c < hd; c++)
            tile[c * K_TILE] = kr[c];
        memcpy(vc + (int64_t)t * hd, j->v + t * kvs + (int64_t)g * hd, (size_t)hd * sizeof(float));
    }
}

/* One task: one head, Q_TILE queries, all keys tile by tile. */
static void attention_task(void *ctx, int task, int thread) {
    const attn_job *j = ctx;
    int h = task / j->n_tiles, q0 = (task % j->n_tiles) * Q_TILE;
    int nq = q0 + Q_TILE < j->n_q ? Q_TILE : j->n_q - q0;
    int hd = j->head_dim, g = h / (j->n_heads / j->n_kv_heads);
    int64_t qs = (int64_t)j->n_heads * hd;
    float *S = j->work + (int64_t)thread * attn_thread_floats(hd), *O = S + Q_TILE * K_TILE;
    float *qt = O + Q_TILE * hd, *m = qt + Q_TILE * hd, *l = m + Q_TILE;
    uint32_t *qp = (uint32_t *)(l + Q_TILE * UM_SOFTMAX_LANES), *pp = qp + Q_TILE * hd / 2; /* bf16 pairs */
    const float *q = j->q + q0 * qs + (int64_t)h * hd;
    const float *k_t = j->k_t + (int64_t)g * key_tiles_floats(j->n_kv, hd);
    const float *v = j->v_c + (int64_t)g * (j->n_kv + 1) * hd;
    float scale = 1.0f / sqrtf((float)hd);
    memset(l, 0, sizeof(float) * Q_TILE * UM_SOFTMAX_LANES);
    for (int i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        for (int c = 0; c < hd; c++) {
            qt[i * hd + c] = q[i * qs + c] * scale;
            O[i * hd + c] = 0;
        }
        if (j->bf16)
            um_bf16_pairs(j->path, qp + i * hd / 2, qt + i * hd, hd);
    }
    for (int k0 = 0; k0 < j->n_kv; k0 += K_TILE) {
        int nk = k0 + K_TILE < j->n_kv ? K_TILE : j->n_kv - k0;
        memset(S, 0, sizeof(float) * Q_TILE * K_TILE);
        if (j->bf16)
            um_gemm_acc_bf16(j->path, S, K_TILE, qp, hd / 2, (const uint32_t *)k_t + (int64_t)k0 * hd / 2, K_TILE, nq, nk,
                             hd / 2);
        else
            um_gemm_acc(j->path, S, K_TILE, qt, hd, 1, k_t + (int64_t)k0 * hd, K_TILE, nq, nk, hd);
        um_softmax_step(j->path, S, K_TILE, nq, nk, m, l, O, hd);
        for (int i = 0; j->bf16 && i < nq; i++)
            um_bf16_pairs(j->path, pp + i * K_TILE / 2, S + i * K_TILE, nk);
        if (j->bf16)
            um_gemm_acc_bf16(j->path, O, hd, pp, K_TILE / 2, (const uint32_t *)v + (int64_t)k0 / 2 * hd, hd, nq, hd,
                             (nk + 1) / 2);
        else
            um_gemm_acc(j->path, O, hd, S, K_TILE, 1, v + (int64_t)k0 * hd, hd, nq, hd, nk);
    }
    for (int i = 0; i < nq; i++) {
        float sum = 0;
        for (int x = 0; x < UM_SOFTMAX_LANES; x++)
            sum += l[i * UM_SOFTMAX_LANES + x];
        float inv = 1.0f / sum, *oi = j->out + (q0 + i) * qs + (int64_t)h * hd;
        for (int c = 0; c < hd; c++)
            oi[c] = O[i * hd + c] * inv;
    }
}

void um_attention(const um_exec *ex, const float *q, int n_q, const float *k, const float *v, int n_kv, float *out,
                  int n_heads, int n_kv_heads, int head_dim, bool reduced, float *scratch) {
    int n_tiles = (n_q + Q_TILE - 1) / Q_TILE;
    float *v_c = scratch + key_tiles_floats(n_kv, head_dim) * n_kv_heads;
    um_kernel_path path = ex->path;
    bool bf16 = reduced && head_dim % 2 == 0 && (path == UM_PATH_SCALAR || um_kernel_path_bf16_dot(path));
    attn_job job = {q, k, v, out, n_q, n_kv, n_heads, n_kv_heads, head_dim, n_tiles, bf16, path, scratch, v_c,
                    v_c + (size_t)(n_kv + 1) * head_dim * n_kv_heads};
    um_pool_run(ex->pool, n_kv_heads, copy_kv_task, &job);
    um_pool_run(ex->pool, n_heads * n_tiles, attention_task, &job);
}
