/* Norms, RoPE, activation and attention: the non-matmul operations of the
 * transformer, written to match the PyTorch reference's arithmetic (f32
 * storage, f32 or wider accumulation). */
#include <math.h>
#include <stdlib.h>

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

void um_rope_table(float *cos_t, float *sin_t, int seq, int head_dim, float theta) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
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
void um_rope(float *x, int seq, int n_heads, int head_dim, bool interleaved, const float *cos_t,
             const float *sin_t) {
    int half = head_dim / 2, stride = interleaved ? 2 : 1, offset = interleaved ? 1 : half;
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

void um_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

#define Q_TILE 16

typedef struct {
    const float *q, *k, *v;
    float *out;
    int n_q, n_kv, n_heads, n_kv_heads, head_dim, n_tiles;
    float *scores; /* n_kv floats per thread */
} attn_job;

/* One task: one head, Q_TILE queries. */
static void attention_task(void *ctx, int task, int thread) {
    const attn_job *j = ctx;
    int h = task / j->n_tiles, q0 = (task % j->n_tiles) * Q_TILE;
    int q1 = q0 + Q_TILE < j->n_q ? q0 + Q_TILE : j->n_q;
    int hd = j->head_dim, kvh = h / (j->n_heads / j->n_kv_heads);
    int64_t qs = (int64_t)j->n_heads * hd, kvs = (int64_t)j->n_kv_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *sc = j->scores + (int64_t)thread * j->n_kv;
    for (int i = q0; i < q1; i++) {
        const float *qi = j->q + i * qs + (int64_t)h * hd;
        float mx = -INFINITY;
        for (int t = 0; t < j->n_kv; t++) {
            const float *kt = j->k + t * kvs + (int64_t)kvh * hd;
            float d = 0;
            for (int e = 0; e < hd; e++)
                d += qi[e] * kt[e];
            sc[t] = d * scale;
            if (sc[t] > mx)
                mx = sc[t];
        }
        float sum = 0;
        for (int t = 0; t < j->n_kv; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        float inv = 1.0f / sum;
        float *oi = j->out + i * qs + (int64_t)h * hd;
        for (int e = 0; e < hd; e++)
            oi[e] = 0;
        for (int t = 0; t < j->n_kv; t++) {
            const float *vt = j->v + t * kvs + (int64_t)kvh * hd;
            float p = sc[t] * inv;
            for (int e = 0; e < hd; e++)
                oi[e] += p * vt[e];
        }
    }
}

void um_attention(um_pool *pool, const float *q, int n_q, const float *k, const float *v, int n_kv, float *out,
                  int n_heads, int n_kv_heads, int head_dim, float *scores) {
    int n_tiles = (n_q + Q_TILE - 1) / Q_TILE;
    attn_job job = {q, k, v, out, n_q, n_kv, n_heads, n_kv_heads, head_dim, n_tiles, scores};
    um_pool_run(pool, n_heads * n_tiles, attention_task, &job);
}
