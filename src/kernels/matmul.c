/* Matrix multiply y = x * W^T with W in f32, bf16, f16 or one of llama.cpp's
 * quantized formats (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K).
 *
 * Work is split over blocks of output rows (weight rows); each task converts
 * its block of weight rows to f32 once and reuses it for every token, so the
 * conversion cost is amortized over the canvas. The inner dot products keep
 * 16 independent partial sums so the compiler can vectorize them without
 * reassociating, and are compiled for AVX-512, AVX2 and baseline x86-64 with
 * runtime dispatch. Speed is the CPU-speed issue's job; this is the clear,
 * correct baseline. */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quant.h"

#define ROW_BLOCK 16
#define LANES 16

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(UM_NO_CLONES)
#define UM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define UM_CLONES
#endif

void um_weight_row_f32(const um_weight *w, int64_t r, float *out) {
    int64_t k = w->cols;
    switch (w->type) {
    case UM_F32:
        memcpy(out, (const float *)w->data + r * k, (size_t)k * sizeof(float));
        break;
    case UM_BF16: {
        const uint16_t *src = (const uint16_t *)w->data + r * k;
        for (int64_t i = 0; i < k; i++)
            out[i] = um_bf16_to_f32(src[i]);
        break;
    }
    case UM_F16: {
        const uint16_t *src = (const uint16_t *)w->data + r * k;
        for (int64_t i = 0; i < k; i++)
            out[i] = um_f16_to_f32(src[i]);
        break;
    }
    case UM_Q8_0:
    case UM_Q4_0:
    case UM_Q4_1:
    case UM_Q4_K:
    case UM_Q5_K:
    case UM_Q6_K:
        /* llama.cpp block formats: rows are whole blocks, back to back */
        um_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * um_row_bytes(w->type, k), out, k);
        break;
    default:
        memset(out, 0, (size_t)k * sizeof(float)); /* unreachable: the loader admits only the types above */
        break;
    }
}

/* Four dot products of one weight row against four activation rows. */
UM_CLONES
static void dot_1x4(const float *w, const float *x0, const float *x1, const float *x2, const float *x3, int64_t k,
                    float out[4]) {
    float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= k; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            float wv = w[i + j];
            a0[j] += wv * x0[i + j];
            a1[j] += wv * x1[i + j];
            a2[j] += wv * x2[i + j];
            a3[j] += wv * x3[i + j];
        }
    }
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int j = 0; j < LANES; j++) {
        s0 += a0[j];
        s1 += a1[j];
        s2 += a2[j];
        s3 += a3[j];
    }
    for (; i < k; i++) {
        s0 += w[i] * x0[i];
        s1 += w[i] * x1[i];
        s2 += w[i] * x2[i];
        s3 += w[i] * x3[i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

typedef struct {
    const float *x;
    int n;
    const um_weight *w;
    const float *bias;
    float *y;
    float *scratch; /* ROW_BLOCK converted weight rows per thread */
} matmul_job;

static void matmul_task(void *ctx, int task, int thread) {
    const matmul_job *job = ctx;
    const um_weight *w = job->w;
    int64_t k = w->cols, m = w->rows, r0 = (int64_t)task * ROW_BLOCK;
    int64_t nr = m - r0 < ROW_BLOCK ? m - r0 : ROW_BLOCK;
    const float *wb;
    if (w->type == UM_F32) {
        wb = (const float *)w->data + r0 * k; /* the loader guarantees f32 data is aligned */
    } else {
        float *buf = job->scratch + (size_t)thread * ROW_BLOCK * (size_t)k;
        for (int64_t r = 0; r < nr; r++)
            um_weight_row_f32(w, r0 + r, buf + r * k);
        wb = buf;
    }
    for (int t = 0; t < job->n; t += 4) {
        /* past the last token, repeat it: the extra results are dropped */
        const float *x0 = job->x + (int64_t)t * k;
        const float *x1 = t + 1 < job->n ? x0 + k : x0;
        const float *x2 = t + 2 < job->n ? x0 + 2 * k : x0;
        const float *x3 = t + 3 < job->n ? x0 + 3 * k : x0;
        for (int64_t r = 0; r < nr; r++) {
            float out[4];
            dot_1x4(wb + r * k, x0, x1, x2, x3, k, out);
            float b = job->bias ? job->bias[r0 + r] : 0.0f;
            for (int j = 0; j < 4 && t + j < job->n; j++)
                job->y[(int64_t)(t + j) * m + r0 + r] = out[j] + b;
        }
    }
}

size_t um_matmul_scratch_floats(int n_threads, int64_t max_cols) {
    return (size_t)n_threads * ROW_BLOCK * (size_t)max_cols;
}

void um_matmul(um_pool *pool, const float *x, int n, const um_weight *w, const float *bias, float *y,
               float *scratch) {
    matmul_job job = {x, n, w, bias, y, scratch};
    um_pool_run(pool, (int)((w->rows + ROW_BLOCK - 1) / ROW_BLOCK), matmul_task, &job);
}
