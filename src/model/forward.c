/* The forward pass of the transformer the architectures share (model.h's
 * um_layer): per layer
 *
 *   h = x + attn_out(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = attn_norm(x)
 *   x = h + ff_out(silu(ff_proj(m)) * up_proj(m))                                m = ff_norm(h)
 *
 * then the final norm and the output head. The attention has no causal mask;
 * RoPE uses the rotate-half layout (interleaved for llama.cpp's permuted GGUF
 * rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "model/model.h"


static um_status reserve(um_model *m, int n_tok, int seq, int n_sel, um_error *err) {
    um_workspace *ws = &m->ws;
    if (n_tok <= ws->cap_tokens && seq <= ws->cap_seq && n_sel <= ws->cap_sel)
        return UM_OK;
    const um_hparams *hp = &m->hp;
    if (n_tok < ws->cap_tokens)
        n_tok = ws->cap_tokens;
    if (seq < ws->cap_seq)
        seq = ws->cap_seq;
    if (n_sel < ws->cap_sel)
        n_sel = ws->cap_sel;
    size_t t = (size_t)n_tok, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = (size_t)hp->d_ff, nt = (size_t)um_pool_threads(m->pool);
    size_t max_cols = ff > d ? ff : d;
    float **bufs[] = {&ws->x,    &ws->xn,       &ws->q,        &ws->k,      &ws->v,          &ws->att,
                      &ws->gate, &ws->up,       &ws->rope_cos, &ws->rope_sin, &ws->att_scratch, &ws->mm_scratch,
                      &ws->head_in};
    size_t sizes[] = {t * d,
                      t * d,
                      t * d,
                      t * kv,
                      t * kv,
                      t * d,
                      t * ff,
                      t * ff,
                      (size_t)seq * (size_t)hp->head_dim / 2,
                      (size_t)seq * (size_t)hp->head_dim / 2,
                      um_attention_scratch_floats((int)nt, seq, hp->n_kv_heads, hp->head_dim),
                      um_matmul_scratch_floats((int)nt, (int64_t)max_cols),
                      (size_t)n_sel * d};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        free(*bufs[i]);
        *bufs[i] = um_aligned_alloc(sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            ws->cap_tokens = ws->cap_seq = ws->cap_sel = 0;
            return um_fail(err, UM_ERR_NOMEM, "out of memory for a canvas of %d tokens", n_tok);
        }
    }
    ws->cap_tokens = n_tok;
    ws->cap_seq = seq;
    ws->cap_sel = n_sel;
    return UM_OK;
}


/* Where one row's keys and values live for the attention of one layer:
 * the cache when there is one, else this pass's workspace. */
typedef struct {
    int q0, n_q, n_kv;
    um_kv_cache *cache;
} fwd_range;

/* The elementwise steps of a layer, run on the pool over ranges of tokens,
 * so that no core idles through them (each row's result is the same). */
typedef enum { ROWS_ADD_NORM, ROWS_ROPE, ROWS_SWIGLU } rows_op;

typedef struct {
    rows_op op;
    um_model *m;
    const float *add;  /* ADD_NORM: x += add first, unless NULL */
    const float *norm; /* ADD_NORM: then xn = rmsnorm(x) with this weight, unless NULL */
    int nq;            /* ROPE: tokens per batch row, positions from cos_t / sin_t */
    const float *cos_t, *sin_t;
    int n, per;        /* tokens in all, per task */
} rows_job;

static void rows_task(void *ctx, int task, int thread) {
    const rows_job *j = ctx;
    const um_hparams *hp = &j->m->hp;
    um_workspace *ws = &j->m->ws;
    int t0 = task * j->per, t1 = t0 + j->per < j->n ? t0 + j->per : j->n, d = hp->d_model;
    int kv = hp->n_kv_heads * hp->head_dim, half = hp->head_dim / 2;
    size_t at = (size_t)t0 * d, count = (size_t)(t1 - t0) * d;
    switch (j->op) {
    case ROWS_ADD_NORM:
        for (size_t i = 0; j->add && i < count; i++)
            ws->x[at + i] += j->add[at + i];
        if (j->norm)
            um_rmsnorm(ws->xn + at, ws->x + at, j->norm, t1 - t0, d, hp->norm_eps);
        break;
    case ROWS_ROPE:
        for (int t = t0; t < t1;) { /* runs of consecutive positions within one batch row */
            int p = t % j->nq, run = t1 - t < j->nq - p ? t1 - t : j->nq - p;
            const float *c = j->cos_t + (size_t)p * half, *s = j->sin_t + (size_t)p * half;
            um_rope(ws->q + (size_t)t * d, run, hp->n_heads, hp->head_dim, hp->rope_interleaved, c, s);
            um_rope(ws->k + (size_t)t * kv, run, hp->n_kv_heads, hp->head_dim, hp->rope_interleaved, c, s);
            t += run;
        }
        break;
    case ROWS_SWIGLU:
        um_swiglu(ws->gate + (size_t)t0 * hp->d_ff, ws->up + (size_t)t0 * hp->d_ff, (int64_t)(t1 - t0) * hp->d_ff);
        break;
    }
}

static void run_rows(um_model *m, rows_job j) {
    int tasks = 4 * um_pool_threads(m->pool);
    j.m = m;
    j.per = (j.n + tasks - 1) / tasks;
    um_pool_run(m->pool, (j.n + j.per - 1) / j.per, rows_task, &j);
}

static void layer_forward(um_model *m, int layer, int n_rows, const fwd_range *fr) {
    const um_hparams *hp = &m->hp;
    const um_layer *l = &m->layers[layer];
    um_workspace *ws = &m->ws;
    int nq = fr->n_q, n = n_rows * nq, d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim, half = hp->head_dim / 2;
    float *scr = ws->mm_scratch;
    const float *cos_t = ws->rope_cos + (size_t)fr->q0 * half, *sin_t = ws->rope_sin + (size_t)fr->q0 * half;
    /* attention rounds its operands as the layer's matmuls round their activations (F32 weights never) */
    bool reduced_attention = um_matmul_reduced() && l->wq.type != UM_F32;

    run_rows(m, (rows_job){.op = ROWS_ADD_NORM, .norm = l->attn_norm, .n = n});
    const um_weight *qkv[] = {&l->wq, &l->wk, &l->wv};
    const float *qkv_bias[] = {l->bq, l->bk, l->bv};
    float *qkv_out[] = {ws->q, ws->k, ws->v};
    um_matmul_many(m->pool, ws->xn, n, 3, qkv, qkv_bias, qkv_out, scr);
    run_rows(m, (rows_job){.op = ROWS_ROPE, .nq = nq, .cos_t = cos_t, .sin_t = sin_t, .n = n});
    for (int r = 0; r < n_rows; r++) {
        float *q = ws->q + (size_t)r * nq * d, *k = ws->k + (size_t)r * nq * kv, *v = ws->v + (size_t)r * nq * kv;
        if (fr->cache) {
            um_kv_cache *c = fr->cache;
            size_t base = ((size_t)layer * c->n_rows + r) * c->seq * kv;
            memcpy(c->k + base + (size_t)fr->q0 * kv, k, (size_t)nq * kv * sizeof(float));
            memcpy(c->v + base + (size_t)fr->q0 * kv, v, (size_t)nq * kv * sizeof(float));
            k = c->k + base;
            v = c->v + base;
        }
        um_attention(m->pool, q, nq, k, v, fr->n_kv, ws->att + (size_t)r * nq * d, hp->n_heads, hp->n_kv_heads,
                     hp->head_dim, reduced_attention, ws->att_scratch);
    }
    um_matmul(m->pool, ws->att, n, &l->wo, l->bo, ws->q, scr);
    run_rows(m, (rows_job){.op = ROWS_ADD_NORM, .add = ws->q, .norm = l->ffn_norm, .n = n});
    const um_weight *gate_up[] = {&l->w_gate, &l->w_up};
    const float *gate_up_bias[] = {l->b_gate, l->b_up};
    float *gate_up_out[] = {ws->gate, ws->up};
    um_matmul_many(m->pool, ws->xn, n, 2, gate_up, gate_up_bias, gate_up_out, scr);
    run_rows(m, (rows_job){.op = ROWS_SWIGLU, .n = n});
    um_matmul(m->pool, ws->gate, n, &l->w_down, l->b_down, ws->q, scr);
    run_rows(m, (rows_job){.op = ROWS_ADD_NORM, .add = ws->q, .n = n});
}

um_status um_kv_cache_init(um_kv_cache *c, const um_model *m, int n_rows, int seq, um_error *err) {
    memset(c, 0, sizeof *c);
    const um_hparams *hp = &m->hp;
    size_t n;
    if (n_rows <= 0 || seq <= 0 ||
        !um_mul_size((size_t)hp->n_layers * (size_t)n_rows, (size_t)seq * (size_t)hp->n_kv_heads * hp->head_dim, &n) ||
        !um_mul_size(n, sizeof(float), &n))
        return um_fail(err, UM_ERR_ARG, "KV cache of %d rows of %d positions is too large", n_rows, seq);
    c->k = um_aligned_alloc(n);
    c->v = um_aligned_alloc(n);
    if (!c->k || !c->v) {
        um_kv_cache_free(c);
        return um_fail(err, UM_ERR_NOMEM, "out of memory for a KV cache of %d positions (%.1f MiB)", seq,
                       2.0 * (double)n / (1 << 20));
    }
    c->n_layers = hp->n_layers;
    c->n_rows = n_rows;
    c->seq = seq;
    c->kv_dim = hp->n_kv_heads * hp->head_dim;
    return UM_OK;
}

void um_kv_cache_free(um_kv_cache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

um_status um_model_forward_range(um_model *m, const int32_t *tokens, int n_rows, int seq, int q0, int q1, int n_kv,
                                 um_kv_cache *cache, const int32_t *sel, int n_sel, float *logits, um_error *err) {
    const um_hparams *hp = &m->hp;
    if (n_rows <= 0 || seq <= 0)
        return um_fail(err, UM_ERR_ARG, "forward: empty input (%d rows of %d tokens)", n_rows, seq);
    if (seq > hp->max_seq)
        return um_fail(err, UM_ERR_ARG, "forward: %d tokens exceed the model's max_sequence_length %d", seq,
                       hp->max_seq);
    if ((int64_t)n_rows * seq > INT32_MAX / 2)
        return um_fail(err, UM_ERR_ARG, "forward: %d rows of %d tokens is too large", n_rows, seq);
    if (q0 < 0 || q1 <= q0 || q1 > seq || n_kv < 1 || n_kv > seq)
        return um_fail(err, UM_ERR_ARG, "forward: positions [%d, %d) against %d keys do not fit %d tokens", q0, q1,
                       n_kv, seq);
    if (!cache && (q0 != 0 || q1 != seq || n_kv != seq))
        return um_fail(err, UM_ERR_ARG, "forward: a pass over part of the sequence needs a KV cache");
    if (cache && (cache->n_layers != hp->n_layers || cache->n_rows != n_rows || cache->seq < seq ||
                  cache->kv_dim != hp->n_kv_heads * hp->head_dim))
        return um_fail(err, UM_ERR_ARG, "forward: the KV cache does not fit %d rows of %d tokens", n_rows, seq);
    for (int64_t i = 0; i < (int64_t)n_rows * seq; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return um_fail(err, UM_ERR_ARG, "token id %d at position %lld is outside the vocabulary [0, %d)",
                           tokens[i], (long long)(i % seq), hp->n_vocab);
    if (!sel)
        n_sel = q1 - q0;
    for (int i = 0; sel && i < n_sel; i++)
        if (sel[i] < q0 || sel[i] >= q1)
            return um_fail(err, UM_ERR_ARG, "forward: logits requested for position %d outside [%d, %d)", sel[i], q0,
                           q1);
    int nq = q1 - q0, n = n_rows * nq, d = hp->d_model;
    UM_TRY(reserve(m, n, seq, n_rows * n_sel, err));
    um_workspace *ws = &m->ws;

    for (int r = 0; r < n_rows; r++)
        for (int i = 0; i < nq; i++)
            um_weight_row_f32(&m->tok_embd, tokens[(size_t)r * seq + q0 + i], ws->x + ((size_t)r * nq + i) * d);
    um_rope_table(ws->rope_cos, ws->rope_sin, seq, hp->head_dim, hp->rope_theta);
    fwd_range fr = {q0, nq, n_kv, cache};
    for (int i = 0; i < hp->n_layers; i++)
        layer_forward(m, i, n_rows, &fr);

    for (int r = 0; r < n_rows; r++)
        for (int i = 0; i < n_sel; i++) {
            int pos = sel ? sel[i] - q0 : i;
            memcpy(ws->head_in + ((size_t)r * n_sel + i) * d, ws->x + ((size_t)r * nq + pos) * d,
                   (size_t)d * sizeof(float));
        }
    if (n_sel > 0) {
        um_rmsnorm(ws->head_in, ws->head_in, m->out_norm, n_rows * n_sel, d, hp->norm_eps);
        um_matmul(m->pool, ws->head_in, n_rows * n_sel, &m->output, m->b_output, logits, ws->mm_scratch);
    }
    return UM_OK;
}

um_status um_model_forward(um_model *m, const int32_t *tokens, int n_rows, int seq, const int32_t *sel, int n_sel,
                           float *logits, um_error *err) {
    return um_model_forward_range(m, tokens, n_rows, seq, 0, seq, seq, NULL, sel, n_sel, logits, err);
}

double um_model_forward_flops(const um_model *m, int n_rows, int seq, int n_sel) {
    const um_hparams *hp = &m->hp;
    double d = hp->d_model, kv = (double)hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    double per_layer_params = d * d * 2 + 2 * d * kv + 3 * d * ff;
    double tokens = (double)n_rows * seq;
    double matmul = 2.0 * per_layer_params * tokens * hp->n_layers;
    double attention = 4.0 * (double)n_rows * seq * seq * d * hp->n_layers;
    double head = 2.0 * (double)n_rows * n_sel * d * hp->n_vocab;
    return matmul + attention + head;
}
