/* Matrix multiply y = x * W^T with W in f32, bf16, f16 or one of llama.cpp's
 * quantized formats (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K).
 *
 * This file holds the portable reference (the scalar path, which every SIMD
 * path is tested against), the blocked driver the SIMD paths share, and the
 * choice between them. The blocking and the three kinds of arithmetic are
 * described in matmul_impl.h; the micro-kernels and packers live in
 * matmul_avx512.c, matmul_avx2.c and matmul_neon.c. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/matmul_impl.h"
#include "kernels/quant.h"

void um_weight_row_f32(const um_weight *w, int64_t r, float *out) { mm_row_segment_f32(w, r, 0, (int)w->cols, out); }

void mm_row_segment_f32(const um_weight *w, int64_t r, int64_t kb, int kc, float *out) {
    int64_t k = w->cols;
    switch (w->type) {
    case UM_F32:
        memcpy(out, (const float *)w->data + r * k + kb, (size_t)kc * sizeof(float));
        break;
    case UM_BF16: {
        const uint16_t *src = (const uint16_t *)w->data + r * k + kb;
        for (int i = 0; i < kc; i++)
            out[i] = um_bf16_to_f32(src[i]);
        break;
    }
    case UM_F16: {
        const uint16_t *src = (const uint16_t *)w->data + r * k + kb;
        for (int i = 0; i < kc; i++)
            out[i] = um_f16_to_f32(src[i]);
        break;
    }
    case UM_Q8_0:
    case UM_Q4_0:
    case UM_Q4_1:
    case UM_Q4_K:
    case UM_Q5_K:
    case UM_Q6_K: {
        /* llama.cpp block formats: rows are whole blocks, back to back */
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * um_row_bytes(w->type, k);
        um_dequantize_row(w->type, row + um_row_bytes(w->type, kb), out, kc);
        break;
    }
    default:
        memset(out, 0, (size_t)kc * sizeof(float)); /* unreachable: the loader admits only the types above */
        break;
    }
}

/* ---- integer levels of the quantized formats (the I8 path) ---------------- */

int mm_i8_bk(um_dtype t) {
    switch (t) {
    case UM_F16: /* as Q8_0 (um_weight.q8_0_when_reduced) */
    case UM_Q8_0:
    case UM_Q4_0:
    case UM_Q4_1:
    case UM_Q4_K:
    case UM_Q5_K:
        return 32;
    case UM_Q6_K:
        return 16;
    default:
        return 0;
    }
}

int mm_i8_zp(um_dtype t) { return t == UM_Q8_0 || t == UM_F16 ? 128 : t == UM_Q4_0 ? 8 : t == UM_Q6_K ? 32 : 0; }

static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return um_f16_to_f32(h);
}

/* Sub-block j's 6-bit scale and min in Q4_K/Q5_K (as in quant.c). */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Levels are made unsigned (vpdpbusd multiplies u8 by s8) by moving the
 * zero point into mn: Q8_0 stores q + 128, Q4_0 keeps its 0..15 nibble with
 * mn = -8 d, Q6_K its 0..63 level with mn = -32 d sc. */
void mm_unpack_levels(um_dtype t, const uint8_t *row, int64_t k, int bk, int64_t sb, uint8_t *q, float *scale,
                      float *mn) {
    switch (t) {
    case UM_F16: { /* quantized here, as llama.cpp's Q8_0 of the row zero-padded to whole blocks */
        float x[32] = {0};
        for (int64_t j = 32 * sb; j < k && j < 32 * sb + 32; j++)
            x[j - 32 * sb] = f16(row + 2 * j);
        um_block_q8_0 b;
        um_quantize_row(UM_Q8_0, x, &b, 32);
        mm_unpack_levels(UM_Q8_0, (const uint8_t *)&b, 32, 32, 0, q, scale, mn);
        break;
    }
    case UM_Q8_0: {
        const uint8_t *b = row + sb * sizeof(um_block_q8_0);
        float d = f16(b);
        for (int j = 0; j < 32; j++)
            q[j] = (uint8_t)(b[2 + j] ^ 0x80);
        *scale = d;
        *mn = -128.0f * d;
        break;
    }
    case UM_Q4_0:
    case UM_Q4_1: {
        size_t bytes = t == UM_Q4_0 ? sizeof(um_block_q4_0) : sizeof(um_block_q4_1);
        const uint8_t *b = row + sb * bytes, *qs = b + (t == UM_Q4_0 ? 2 : 4);
        float d = f16(b);
        for (int j = 0; j < 16; j++) {
            q[j] = qs[j] & 0xf;
            q[j + 16] = qs[j] >> 4;
        }
        *scale = d;
        *mn = t == UM_Q4_0 ? -8.0f * d : f16(b + 2);
        break;
    }
    case UM_Q4_K:
    case UM_Q5_K: {
        bool q5 = t == UM_Q5_K;
        const uint8_t *b = row + (sb / 8) * (q5 ? sizeof(um_block_q5_K) : sizeof(um_block_q4_K));
        int j = (int)(sb % 8), sc, m;
        const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (q5 ? 48 : 16) + 32 * (j / 2);
        scale_min_k4(j, scales, &sc, &m);
        for (int l = 0; l < 32; l++) {
            q[l] = (uint8_t)((j % 2 ? qs[l] >> 4 : qs[l] & 0xf) | (q5 ? ((qh[l] >> j) & 1) << 4 : 0));
        }
        *scale = f16(b) * (float)sc;
        *mn = -(f16(b + 2) * (float)m);
        break;
    }
    case UM_Q6_K: {
        const uint8_t *b = row + (sb / 16) * sizeof(um_block_q6_K);
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *scales = (const int8_t *)(b + 192);
        int s = (int)(sb % 16);
        for (int i = 0; i < 16; i++) {
            int v = 16 * s + i, half = v / 128, g = (v % 128) / 32, l = v % 32;
            int lo = (ql[half * 64 + l + (g & 1) * 32] >> (4 * (g >> 1))) & 0xf;
            int hi = (qh[half * 32 + l] >> (2 * g)) & 3;
            q[i] = (uint8_t)(lo | hi << 4);
        }
        float d = f16(b + 208) * (float)scales[s];
        *scale = d;
        *mn = -32.0f * d;
        break;
    }
    default:
        memset(q, 0, (size_t)bk);
        *scale = *mn = 0;
        break;
    }
}

/* ---- activations ------------------------------------------------------------ */

int mm_i8_ab(um_dtype t) { return t == UM_Q4_K || t == UM_Q5_K || t == UM_Q6_K ? 256 : 32; }

/* One activation block (n = 32 or 256 values) to int8: dx = max|x| / 127,
 * q = round(x / dx) to nearest even (computed as x * (127 / max|x|), the
 * same multiply in every path, so every path gets the same levels).
 * Returns dx. */
static inline float quantize_act(const float *x, int n, int8_t *q) {
    float amax = 0;
    for (int j = 0; j < n; j++)
        amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax; /* NaN is skipped, as by a vector max */
    float id = amax > 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < n; j++) {
        float v = x[j] * id;
        q[j] = v == v ? (int8_t)nearbyintf(v) : 0; /* NaN (from NaN or inf * 0) to 0, as vcvtps2dq + vpmovdb do */
    }
    return amax / 127.0f;
}

void mm_pack_act_f32(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                     float *sc) {
    float *af = (float *)a;
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t i = 0; i < k; i++)
            af[i * mr + t] = valid ? xr[i] : 0.0f;
    }
}

void mm_pack_act_bf16(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                      float *sc) {
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t p = 0; p < (k + 1) / 2; p++) {
            uint32_t lo = valid ? um_f32_to_bf16(xr[2 * p]) : 0;
            uint32_t hi = valid && 2 * p + 1 < k ? um_f32_to_bf16(xr[2 * p + 1]) : 0;
            a[p * mr + t] = lo | hi << 16;
        }
    }
}

void mm_pack_act_i8(const float *x, int n, int64_t k, int t0, int mr, int bk, int ab, int zp, uint32_t *a,
                    float *sc) {
    for (int t = 0; t < mr; t++) {
        const float *xr = x + (int64_t)(t0 + t) * k;
        bool valid = t0 + t < n;
        for (int64_t b0 = 0; b0 < k; b0 += ab) {
            int8_t q[256] = {0}; /* a ragged last block (F16 as Q8_0) is zero-padded */
            float dx = valid ? quantize_act(xr + b0, (int)(k - b0 < ab ? k - b0 : ab), q) : 0.0f;
            for (int i = 0; i < ab / 4; i++) {
                uint32_t u;
                memcpy(&u, q + 4 * i, 4);
                a[(b0 / 4 + i) * mr + t] = u;
            }
            for (int s = 0; s < ab / bk; s++) {
                int sum = 0;
                for (int i = 0; i < bk; i++)
                    sum += q[s * bk + i];
                mm_store_act_scales(sc, b0 / bk + s, mr, t, dx, sum, zp);
            }
        }
    }
}

typedef struct {
    const float *x;
    int n, mr, bk, ab, zp;
    int64_t k;
    uint32_t *a;    /* packed values */
    float *sc;      /* I8 scales */
    size_t a_block; /* u32 per block of mr tokens */
    size_t sc_block;
    mm_act_fn fn;
} act_job;

static void pack_activations_task(void *ctx, int tb, int thread) {
    const act_job *j = ctx;
    j->fn(j->x, j->n, j->k, tb * j->mr, j->mr, j->bk, j->ab, j->zp, j->a + (size_t)tb * j->a_block,
          j->sc ? j->sc + (size_t)tb * j->sc_block : NULL);
}

/* ---- the blocked driver ----------------------------------------------------- */

size_t mm_panel_bytes(const mm_kernels *ks, int kc) {
    switch (ks->kind) {
    case MM_F32:
        return (size_t)kc * ks->nr * (size_t)ks->f32_bytes;
    case MM_BF16:
        return (size_t)((kc + 1) / 2) * ks->nr * sizeof(uint32_t);
    case MM_I8:
        return (size_t)((kc + ks->bk - 1) / ks->bk) * mm_i8_block_bytes(ks->bk, ks->nr);
    }
    return 0;
}

/* The I8 path works on whole blocks of 32: a row whose length is not a
 * multiple (F16 as Q8_0 only) is zero-padded, in activations and panels. */
static int64_t i8_padded(int64_t k) { return (k + 31) / 32 * 32; }

/* One of the products that share their activations (um_matmul_many): its
 * weight, bias and output, and its first task in the job's list. */
typedef struct {
    const um_weight *w;
    const float *bias;
    float *y;
    int first_task;
} mm_part;

#define MM_MAX_PARTS 4

typedef struct {
    const mm_kernels *ks;
    const float *x;
    int n;
    const uint32_t *a;
    const float *a_sc;
    size_t a_block, sc_block;
    uint8_t *panels;
    size_t panels_bytes; /* per thread */
    int n_threads, n_tasks, n_parts;
    mm_part parts[MM_MAX_PARTS];
} mm_job;

/* Task `task` of the job: its part, and its features [*f0, *f0 + *nf). */
static const mm_part *task_features(const mm_job *j, int task, int64_t *f0, int *nf) {
    int i = 0;
    while (i + 1 < j->n_parts && task >= j->parts[i + 1].first_task)
        i++;
    const mm_part *part = &j->parts[i];
    int64_t m = part->w->rows;
    *f0 = (int64_t)(task - part->first_task) * j->ks->nc;
    *nf = (int)(m - *f0 < j->ks->nc ? m - *f0 : j->ks->nc);
    return part;
}

/* The weight bytes a task's next k block will pack: rows [r0, r0 + nr),
 * bytes [off, off + len) of each. The pack starts on 16 rows at once, each
 * row's block in a line of its own that nothing has asked for, and waited
 * on memory there: a pattern the hardware prefetcher does not follow. So
 * the task asks for those lines, a few at a time, while it runs the
 * micro-kernels of the current block, and the pack finds them in L2. In its
 * last block it asks for the first block of task + threads, the one it
 * most likely takes next (the pool hands tasks out in order). */
typedef struct {
    const uint8_t *base;
    size_t row_bytes, lines_per_row;
    size_t next, total; /* lines asked for, lines in all */
    size_t row, line;   /* of the next one (counted, not divided: a division per line cost 2% of a forward) */
} next_block;

static next_block next_block_at(const um_weight *w, int64_t r0, int64_t nr, int64_t kb, int64_t kc) {
    size_t rb = um_row_bytes(w->type, w->cols), off = um_row_bytes(w->type, kb), len = um_row_bytes(w->type, kc);
    size_t first = off & ~(size_t)63, lines = (off + len - first + 63) / 64;
    return (next_block){(const uint8_t *)w->data + (size_t)r0 * rb + first, rb, lines, 0, lines * (size_t)nr, 0, 0};
}

static next_block after_block(const mm_job *j, int task, const um_weight *w, int64_t f0, int nf, int64_t kb) {
    int64_t k = w->cols, kc = j->ks->kc;
    if (kb + kc < k)
        return next_block_at(w, f0, nf, kb + kc, k - (kb + kc) < kc ? k - (kb + kc) : kc);
    if (task + j->n_threads >= j->n_tasks)
        return (next_block){0};
    int64_t g0;
    int ng;
    const mm_part *next = task_features(j, task + j->n_threads, &g0, &ng);
    return next_block_at(next->w, g0, ng, 0, next->w->cols < kc ? next->w->cols : kc);
}

static void prefetch_lines(next_block *nb, size_t count) {
    for (size_t end = nb->next + count < nb->total ? nb->next + count : nb->total; nb->next < end; nb->next++) {
        __builtin_prefetch(nb->base + nb->row * nb->row_bytes + 64 * nb->line, 0, 2);
        if (++nb->line == nb->lines_per_row) {
            nb->line = 0;
            nb->row++;
        }
    }
}

/* ---- weights packed once (um_weight_pack) ------------------------------------ */

/* A weight's panels for one kernel set, laid out in the order the tasks
 * read them: [task: nc features][k block][panel of nr features], each
 * panel as the set's pack writes it. A task reads one contiguous stretch. */
struct um_packed_weight {
    const mm_kernels *ks;
    uint8_t *data;
    size_t task_bytes;  /* one task's panels, all of k */
    size_t block_bytes; /* one task's panels of a whole k block */
    size_t bytes;
};

/* Task `task`'s panels of the k block at kb, where w was packed for ks; else NULL. */
static const uint8_t *packed_panels(const um_weight *w, const mm_kernels *ks, int64_t f0, int64_t kb) {
    const struct um_packed_weight *pw = w->packed;
    if (!pw || pw->ks != ks)
        return NULL;
    return pw->data + (size_t)(f0 / ks->nc) * pw->task_bytes + (size_t)(kb / ks->kc) * pw->block_bytes;
}

/* The panels of features [f0, f0 + nf) for the k block at kb into dst. */
static void pack_panels(const mm_kernels *ks, const um_weight *w, int64_t f0, int nf, int64_t kb, uint8_t *dst) {
    int kc = (int)(w->cols - kb < ks->kc ? w->cols - kb : ks->kc);
    size_t pb = mm_panel_bytes(ks, kc);
    for (int p = 0; p * ks->nr < nf; p++)
        ks->pack(w, f0 + (int64_t)p * ks->nr, kb, kc, dst + p * pb);
}

typedef struct {
    const mm_kernels *ks;
    const um_weight *w;
    struct um_packed_weight *pw;
} pack_job;

static void pack_weight_task(void *ctx, int task, int thread) {
    (void)thread;
    const pack_job *j = ctx;
    int64_t f0 = (int64_t)task * j->ks->nc, m = j->w->rows;
    int nf = (int)(m - f0 < j->ks->nc ? m - f0 : j->ks->nc);
    uint8_t *dst = j->pw->data + (size_t)task * j->pw->task_bytes;
    for (int64_t kb = 0; kb < j->w->cols; kb += j->ks->kc, dst += j->pw->block_bytes)
        pack_panels(j->ks, j->w, f0, nf, kb, dst);
}

/* The sizes of w's panels for ks, all but data. */
static struct um_packed_weight packed_layout(const mm_kernels *ks, const um_weight *w) {
    struct um_packed_weight pw = {ks, NULL, 0, 0, 0};
    int64_t k = w->cols, n_tasks = (w->rows + ks->nc - 1) / ks->nc;
    pw.block_bytes = mm_panel_bytes(ks, ks->kc) * (size_t)(ks->nc / ks->nr);
    for (int64_t kb = 0; kb < k; kb += ks->kc)
        pw.task_bytes += mm_panel_bytes(ks, (int)(k - kb < ks->kc ? k - kb : ks->kc)) * (size_t)(ks->nc / ks->nr);
    pw.bytes = ((pw.task_bytes * (size_t)n_tasks) + 63) & ~(size_t)63;
    return pw;
}

bool mm_pack_weight(um_pool *pool, const mm_kernels *ks, um_weight *w, size_t *bytes) {
    um_weight_unpack(w);
    int64_t n_tasks = (w->rows + ks->nc - 1) / ks->nc;
    struct um_packed_weight *pw = malloc(sizeof *pw);
    if (!pw)
        return false;
    *pw = packed_layout(ks, w);
    pw->data = aligned_alloc(64, pw->bytes ? pw->bytes : 64);
    if (!pw->data) {
        free(pw);
        return false;
    }
    pack_job job = {ks, w, pw};
    if (pool)
        um_pool_run(pool, (int)n_tasks, pack_weight_task, &job);
    else
        for (int t = 0; t < n_tasks; t++)
            pack_weight_task(&job, t, 0);
    w->packed = pw;
    if (bytes)
        *bytes = pw->bytes;
    return true;
}

void um_weight_unpack(um_weight *w) {
    struct um_packed_weight *pw = (struct um_packed_weight *)w->packed;
    if (pw) {
        free(pw->data);
        free(pw);
    }
    w->packed = NULL;
}

static void mm_task(void *ctx, int task, int thread) {
    const mm_job *j = ctx;
    const mm_kernels *ks = j->ks;
    int64_t f0;
    int nf;
    const mm_part *part = task_features(j, task, &f0, &nf);
    const um_weight *w = part->w;
    int64_t m = w->rows, k = w->cols;
    int np = (nf + ks->nr - 1) / ks->nr;
    uint8_t *buf = j->panels + (size_t)thread * j->panels_bytes;
    mm_tile tile = {0};
    tile.ldc = m;
    for (int64_t kb = 0; kb < k; kb += ks->kc) {
        int kc = (int)(k - kb < ks->kc ? k - kb : ks->kc);
        size_t pb = mm_panel_bytes(ks, kc);
        const uint8_t *panels = packed_panels(w, ks, f0, kb);
        next_block nb = {0}; /* packed panels stream in order: the hardware prefetcher follows them */
        if (!panels) {
            pack_panels(ks, w, f0, nf, kb, buf);
            panels = buf;
            nb = after_block(j, task, w, f0, nf, kb);
        }
        tile.kc = ks->kind == MM_I8 ? (int)i8_padded(kc) : kc;
        tile.accumulate = kb > 0;
        int n_tb = (j->n + ks->mr - 1) / ks->mr;
        size_t per_tb = (nb.total + n_tb - 1) / n_tb;
        for (int t0 = 0; t0 < j->n; t0 += ks->mr) {
            int tb = t0 / ks->mr;
            prefetch_lines(&nb, per_tb);
            tile.mr = j->n - t0 < ks->mr ? j->n - t0 : ks->mr;
            if (!j->a) { /* F32 activations read in place */
                tile.a = j->x + (int64_t)t0 * k + kb;
                tile.lda = k;
            } else {
                tile.a = j->a + tb * j->a_block + (size_t)(kb / mm_act_per_u32(ks)) * ks->mr;
                if (ks->kind == MM_I8)
                    tile.a_sc = j->a_sc + tb * j->sc_block + (size_t)(kb / ks->bk) * MM_SC_ROWS * ks->mr;
            }
            for (int p = 0; p < np; p++) {
                int64_t f = f0 + (int64_t)p * ks->nr;
                tile.b = panels + p * pb;
                tile.c = part->y + (int64_t)t0 * m + f;
                tile.nr = (int)(m - f < ks->nr ? m - f : ks->nr);
                tile.bias = part->bias ? part->bias + f : NULL;
                ks->kernel(&tile);
            }
        }
    }
}

/* Scratch slots of the pool used here. */
enum { SLOT_ACTIVATIONS = 0, SLOT_PANELS = 1, SLOT_REFERENCE = 2 };

/* Packs x once for ks (every part has the same type and columns), then runs
 * the parts' tasks as one list. False, with nothing computed, when the
 * pool's scratch cannot be had. */
static bool mm_blocked(um_pool *pool, const mm_kernels *ks, const float *x, int n, const mm_part *parts,
                       int n_parts) {
    int nt = um_pool_threads(pool);
    const um_weight *w = parts[0].w;
    int64_t k = w->cols;
    mm_job job = {ks, x, n, NULL, NULL, 0, 0, NULL, 0, nt, 0, n_parts, {{0}}};
    for (int i = 0; i < n_parts; i++) {
        job.parts[i] = parts[i];
        job.parts[i].first_task = job.n_tasks;
        job.n_tasks += (int)((parts[i].w->rows + ks->nc - 1) / ks->nc);
    }
    int kc = (int)(k < ks->kc ? k : ks->kc);
    job.panels_bytes = (mm_panel_bytes(ks, kc) * (size_t)(ks->nc / ks->nr) + 63) & ~(size_t)63;
    job.panels = um_pool_scratch(pool, SLOT_PANELS, job.panels_bytes * (size_t)nt);
    if (!job.panels)
        return false;
    int n_tb = (n + ks->mr - 1) / ks->mr;
    if (ks->pack_act) {
        act_job aj = {x, n, ks->mr, ks->bk, ks->kind == MM_I8 ? mm_i8_ab(w->type) : 0, ks->zp, k, NULL, NULL, 0, 0,
                      ks->pack_act};
        int64_t kp = ks->kind == MM_I8 ? i8_padded(k) : k;
        aj.a_block = (size_t)((kp + mm_act_per_u32(ks) - 1) / mm_act_per_u32(ks)) * ks->mr;
        aj.sc_block = ks->kind == MM_I8 ? (size_t)(i8_padded(k) / ks->bk) * MM_SC_ROWS * ks->mr : 0;
        size_t a_bytes = ((aj.a_block * sizeof(uint32_t) + aj.sc_block * sizeof(float)) + 63) & ~(size_t)63;
        uint8_t *buf = um_pool_scratch(pool, SLOT_ACTIVATIONS, a_bytes * (size_t)n_tb);
        if (!buf)
            return false;
        aj.a = (uint32_t *)buf;
        aj.sc = ks->kind == MM_I8 ? (float *)(buf + aj.a_block * sizeof(uint32_t) * (size_t)n_tb) : NULL;
        um_pool_run(pool, n_tb, pack_activations_task, &aj);
        job.a = aj.a;
        job.a_sc = aj.sc;
        job.a_block = aj.a_block;
        job.sc_block = aj.sc_block;
    }
    um_pool_run(pool, job.n_tasks, mm_task, &job);
    return true;
}

/* ---- the portable reference ------------------------------------------------- */

#define ROW_BLOCK 16
#define LANES 16

/* Four dot products of one weight row against four activation rows, with 16
 * independent partial sums per row (vectorizable without reassociation). */
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
    mm_kind kind;
    const float *x; /* F32 and BF16 (already rounded to bf16) */
    int n;
    const um_weight *w;
    const float *bias;
    float *y;
    float *scratch; /* per thread: one converted row (k floats; I8: k levels + scales) */
    size_t scratch_floats;
    /* I8: activations row-major */
    const int8_t *xq;
    const float *xs; /* [n][k/bk][2]: dx, dx * sum */
    const int32_t *xsum; /* [n][k/bk]: sum */
    int bk, zp;
} ref_job;

/* Rows [16 task, 16 task + 16): each converted once, then dotted with every token. */
static void ref_task(void *ctx, int task, int thread) {
    const ref_job *j = ctx;
    const um_weight *w = j->w;
    int64_t k = w->cols, m = w->rows, r0 = (int64_t)task * ROW_BLOCK;
    int64_t nr = m - r0 < ROW_BLOCK ? m - r0 : ROW_BLOCK;
    float *buf = j->scratch + (size_t)thread * j->scratch_floats;
    for (int64_t r = r0; r < r0 + nr; r++) {
        float b = j->bias ? j->bias[r] : 0.0f;
        if (j->kind != MM_I8) {
            um_weight_row_f32(w, r, buf);
            if (j->kind == MM_BF16 && w->type != UM_BF16) /* f16 weights meet bf16 ones */
                for (int64_t i = 0; i < k; i++)
                    buf[i] = um_bf16_to_f32(um_f32_to_bf16(buf[i]));
            for (int t = 0; t < j->n; t += 4) {
                /* past the last token, repeat it: the extra results are dropped */
                const float *x0 = j->x + (int64_t)t * k;
                const float *x1 = t + 1 < j->n ? x0 + k : x0;
                const float *x2 = t + 2 < j->n ? x0 + 2 * k : x0;
                const float *x3 = t + 3 < j->n ? x0 + 3 * k : x0;
                float out[4];
                dot_1x4(buf, x0, x1, x2, x3, k, out);
                for (int i = 0; i < 4 && t + i < j->n; i++)
                    j->y[(int64_t)(t + i) * m + r] = out[i] + b;
            }
            continue;
        }
        /* I8: the integer levels, then exact integer sums per sub-block */
        int bk = j->bk;
        int64_t kq = i8_padded(k), nsb = kq / bk;
        uint8_t *q = (uint8_t *)buf;
        float *scale = buf + kq / 4, *mn = scale + nsb;
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * um_row_bytes(w->type, k);
        for (int64_t s = 0; s < nsb; s++)
            mm_unpack_levels(w->type, row, k, bk, s, q + s * bk, &scale[s], &mn[s]);
        for (int t = 0; t < j->n; t++) {
            const int8_t *xq = j->xq + (int64_t)t * kq;
            const float *xs = j->xs + (int64_t)t * nsb * 2;
            const int32_t *xsum = j->xsum + (int64_t)t * nsb;
            float acc = 0;
            for (int64_t s = 0; s < nsb; s++) {
                int32_t isum = 0;
                for (int i = 0; i < bk; i++)
                    isum += q[s * bk + i] * xq[s * bk + i];
                if (j->zp) { /* value = scale * (q - zp): the offset's share is exact in integers */
                    acc += (float)(isum - j->zp * xsum[s]) * (scale[s] * xs[2 * s]);
                } else {
                    acc += (float)isum * (scale[s] * xs[2 * s]);
                    acc += mn[s] * xs[2 * s + 1];
                }
            }
            j->y[(int64_t)t * m + r] = acc + b;
        }
    }
}

size_t um_matmul_scratch_floats(int n_threads, int64_t max_cols) {
    /* the reference path's converted row (the I8 levels and scales take less) */
    return (size_t)n_threads * (size_t)(max_cols + 16);
}

static bool mm_reference(um_pool *pool, mm_kind kind, const float *x, int n, const um_weight *w, const float *bias,
                         float *y, float *scratch) {
    int64_t k = w->cols;
    ref_job job = {kind, x, n, w, bias, y, scratch, (size_t)k + 16, NULL, NULL, NULL, 0, mm_i8_zp(w->type)};
    void *tmp = NULL;
    if (kind == MM_BF16) {
        float *xr = tmp = malloc((size_t)n * (size_t)k * sizeof(float));
        if (!xr) {
            return false;
        } else {
            for (int64_t i = 0; i < (int64_t)n * k; i++)
                xr[i] = um_bf16_to_f32(um_f32_to_bf16(x[i]));
            job.x = xr;
        }
    } else if (kind == MM_I8) {
        int bk = job.bk = mm_i8_bk(w->type);
        int64_t kq = i8_padded(k), nsb = kq / bk;
        int8_t *xq = tmp = calloc(1, (size_t)n * (size_t)kq + (size_t)n * (size_t)nsb * 3 * sizeof(float));
        if (!xq) {
            return false;
        } else {
            float *xs = (float *)(xq + (size_t)n * (size_t)kq);
            int32_t *xsum = (int32_t *)(xs + (size_t)n * (size_t)nsb * 2);
            int ab = mm_i8_ab(w->type);
            for (int t = 0; t < n; t++)
                for (int64_t b = 0; b < kq / ab; b++) { /* a ragged last block stays zero-padded (calloc) */
                    int8_t *q = xq + (int64_t)t * kq + ab * b;
                    float dx = quantize_act(x + (int64_t)t * k + ab * b, (int)(k - ab * b < ab ? k - ab * b : ab), q);
                    for (int s = 0; s < ab / bk; s++) {
                        int sum = 0;
                        for (int i = 0; i < bk; i++)
                            sum += q[s * bk + i];
                        int64_t sbi = (int64_t)t * nsb + b * (ab / bk) + s;
                        xs[2 * sbi] = dx;
                        xs[2 * sbi + 1] = dx * (float)sum;
                        xsum[sbi] = sum;
                    }
                }
            job.xq = xq;
            job.xs = xs;
            job.xsum = xsum;
        }
    }
    um_pool_run(pool, (int)((w->rows + ROW_BLOCK - 1) / ROW_BLOCK), ref_task, &job);
    free(tmp);
    return true;
}

/* ---- choosing a path ---------------------------------------------------------- */

static atomic_int reduced_mode = -1;

bool um_matmul_reduced(void) {
    int r = atomic_load(&reduced_mode);
    if (r < 0) {
        const char *env = getenv("UNMASK_ACTIVATIONS");
        r = !(env && strcmp(env, "f32") == 0);
        if (env && *env && strcmp(env, "reduced") != 0 && strcmp(env, "f32") != 0)
            fprintf(stderr, "unmask: UNMASK_ACTIVATIONS=%s is not f32 or reduced; using reduced\n", env);
        atomic_store(&reduced_mode, r);
    }
    return r;
}

void um_matmul_set_reduced(bool on) { atomic_store(&reduced_mode, on ? 1 : 0); }

/* The kind of arithmetic for w on the given path. */
static mm_kind choose_kind(um_kernel_path path, const um_weight *w, bool reduced) {
    if (!reduced)
        return MM_F32;
    const um_cpu_features *f = um_cpu_features_get();
    bool scalar = path == UM_PATH_SCALAR;
    um_dtype t = w->type;
    bool levels = mm_i8_bk(t) > 0 && (t != UM_F16 || w->q8_0_when_reduced);
    bool neon = path == UM_PATH_NEON;
    if (levels && (scalar || path == UM_PATH_AVX2 || path == UM_PATH_AVX512 || (neon && f->neon_dot)))
        return MM_I8; /* AVX-512 without VNNI: the AVX2 kernels (mm_choose_kernels) */
    if ((t == UM_BF16 || t == UM_F16) && (scalar || um_kernel_path_bf16_dot(path)))
        return MM_BF16;
    return MM_F32;
}

const mm_kernels *mm_choose_kernels(um_kernel_path path, mm_kind kind, um_dtype t) {
    switch (path) {
    case UM_PATH_AVX512:
        /* without VNNI, int8 products on vpmaddubsw: AVX2's, which any AVX-512 CPU runs */
        if (kind == MM_I8 && !um_cpu_features_get()->avx512_vnni)
            return mm_avx2_kernels(kind, t);
        return mm_avx512_kernels(kind, t);
    case UM_PATH_AVX2:
        return mm_avx2_kernels(kind, t);
    case UM_PATH_NEON:
        return mm_neon_kernels(kind, t);
    default:
        return NULL;
    }
}

/* Whether oneDNN's bf16 matmul is the default for BF16 weights with reduced
 * activations on AVX-512 BF16 CPUs (UNMASK_KERNEL unset or auto). Set from
 * bench/gemm_libs.sh and `unmask bench --kernels --reduced` (README,
 * Performance): see there for the numbers behind it. */
#define ONEDNN_DEFAULT_BF16_REDUCED 0

/* Whether um_matmul hands weights of type t to the oneDNN backend under ex. */
static bool use_onednn(const um_exec *ex, um_dtype t) {
    switch (ex->lib) {
    case UM_LIB_ONEDNN:
        return mm_onednn_handles(t, ex->reduced);
    case UM_LIB_AUTO:
        return ONEDNN_DEFAULT_BF16_REDUCED && um_onednn_available() && t == UM_BF16 && ex->reduced &&
               ex->path == UM_PATH_AVX512 && um_cpu_features_get()->avx512_bf16;
    default:
        return false;
    }
}

um_exec um_exec_defaults(um_pool *pool) {
    um_exec ex = {pool, um_matmul_reduced(), um_kernel_path_get(), um_kernel_lib_get()};
    return ex;
}

const char *um_matmul_kernel_name(const um_exec *ex, um_dtype t) {
    if (use_onednn(ex, t))
        return t == UM_F32 ? "onednn-f32" : "onednn-bf16";
    um_weight w = {t, 0, 0, NULL, false, NULL};
    mm_kind kind = choose_kind(ex->path, &w, ex->reduced);
    const mm_kernels *ks = mm_choose_kernels(ex->path, kind, t);
    if (ks)
        return ks->name;
    return kind == MM_BF16 ? "scalar-bf16" : kind == MM_I8 ? "scalar-i8" : "scalar-f32";
}

/* The blocked kernels where the path has them, else the reference; false
 * when either could not have its buffers. */
bool mm_run(um_pool *pool, const mm_kernels *ks, mm_kind kind, const float *x, int n, const um_weight *w,
            const float *bias, float *y, float *scratch) {
    if (n <= 0 || w->rows <= 0)
        return true;
    mm_part part = {w, bias, y, 0};
    if (ks)
        return mm_blocked(pool, ks, x, n, &part, 1);
    return mm_reference(pool, kind, x, n, w, bias, y, scratch);
}

bool um_matmul(const um_exec *ex, const float *x, int n, const um_weight *w, const float *bias, float *y,
               float *scratch) {
    if (use_onednn(ex, w->type) && mm_onednn_run(ex->pool, x, n, w, bias, y, ex->reduced))
        return true; /* else (oneDNN could not have its buffers) our kernels, in the same arithmetic */
    mm_kind kind = choose_kind(ex->path, w, ex->reduced);
    return mm_run(ex->pool, mm_choose_kernels(ex->path, kind, w->type), kind, x, n, w, bias, y, scratch);
}

/* The kernels um_matmul runs w on under ex, where packing w once for them
 * pays; NULL where it does not, or where they pack nothing (the scalar
 * path, oneDNN). */
static const mm_kernels *kernels_to_pack_for(const um_weight *w, const um_exec *ex) {
    if (use_onednn(ex, w->type) || w->rows <= 0)
        return NULL;
    mm_kind kind = choose_kind(ex->path, w, ex->reduced);
    const mm_kernels *ks = mm_choose_kernels(ex->path, kind, w->type);
    /* f32 panels of 16-bit or quantized weights would hold twice their
     * bytes or more: there the products stay bound by memory, and packing
     * them on the fly costs less than reading the larger panels */
    if (ks && kind == MM_F32 && ks->f32_bytes * w->cols > (int64_t)um_row_bytes(w->type, w->cols))
        return NULL;
    return ks;
}

size_t um_weight_packed_size(const um_weight *w, const um_exec *ex) {
    const mm_kernels *ks = kernels_to_pack_for(w, ex);
    return ks ? packed_layout(ks, w).bytes : 0;
}

bool um_weight_pack(um_weight *w, const um_exec *ex, size_t *bytes) {
    if (bytes)
        *bytes = 0;
    const mm_kernels *ks = kernels_to_pack_for(w, ex);
    return !ks || mm_pack_weight(ex->pool, ks, w, bytes);
}

bool um_matmul_many(const um_exec *ex, const float *x, int n, int count, const um_weight *const *w,
                    const float *const *bias, float *const *y, float *scratch) {
    bool alike = count >= 1 && count <= MM_MAX_PARTS && n > 0 && !use_onednn(ex, w[0]->type);
    mm_part parts[MM_MAX_PARTS];
    for (int i = 0; alike && i < count; i++) {
        alike = w[i]->type == w[0]->type && w[i]->cols == w[0]->cols && w[i]->rows > 0 &&
                w[i]->q8_0_when_reduced == w[0]->q8_0_when_reduced;
        parts[i] = (mm_part){w[i], bias[i], y[i], 0};
    }
    mm_kind kind = alike ? choose_kind(ex->path, w[0], ex->reduced) : MM_F32;
    const mm_kernels *ks = alike ? mm_choose_kernels(ex->path, kind, w[0]->type) : NULL;
    if (ks)
        return mm_blocked(ex->pool, ks, x, n, parts, count);
    for (int i = 0; i < count; i++)
        if (!um_matmul(ex, x, n, w[i], bias[i], y[i], scratch))
            return false;
    return true;
}
