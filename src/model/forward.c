/* The forward pass of the transformer the architectures share (model.h's
 * um_layer), over a batch of unlike sequences: per layer
 *
 *   h = x + attn_out(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = attn_norm(x)
 *   x = h + ff_out(silu(ff_proj(m)) * up_proj(m))                                m = ff_norm(h)
 *
 * then the final norm of the selected positions; the output head runs
 * separately (um_context_head), on as few rows as the caller needs. The
 * tokens of every entry are stacked, so each matmul reads its weights once
 * for the whole batch; only the attention runs entry by entry, each against
 * its own keys (its cache, or its own rows of this pass). The attention has no
 * causal mask; RoPE uses the rotate-half layout (interleaved for llama.cpp's
 * permuted GGUF rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "model/model.h"

/* ---- workspace ------------------------------------------------------------ */

static um_status reserve(um_context *ctx, int n_tok, int seq, int n_sel, um_error *err) {
    um_workspace *ws = &ctx->ws;
    if (n_tok <= ws->cap_tokens && seq <= ws->cap_seq && n_sel <= ws->cap_sel)
        return UM_OK;
    const um_hparams *hp = &ctx->m->hp;
    n_tok = n_tok > ws->cap_tokens ? n_tok : ws->cap_tokens;
    seq = seq > ws->cap_seq ? seq : ws->cap_seq;
    n_sel = n_sel > ws->cap_sel ? n_sel : ws->cap_sel;
    size_t t = (size_t)n_tok, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = (size_t)hp->d_ff, nt = (size_t)um_pool_threads(ctx->ex.pool), half = (size_t)hp->head_dim / 2;
    size_t max_cols = ff > d ? ff : d;
    float **bufs[] = {&ws->x,        &ws->xn,       &ws->q,           &ws->k,          &ws->v,
                      &ws->att,      &ws->gate,     &ws->up,          &ws->rope_cos,   &ws->rope_sin,
                      &ws->att_scratch, &ws->mm_scratch, &ws->head_in, (float **)&ws->pos};
    size_t sizes[] = {t * d,     t * d,  t * d, t * kv, t * kv, t * d, t * ff, t * ff, (size_t)seq * half,
                      (size_t)seq * half, um_attention_scratch_floats((int)nt, seq, hp->n_kv_heads, hp->head_dim),
                      um_matmul_scratch_floats((int)nt, (int64_t)max_cols), (size_t)n_sel * d, t};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        free(*bufs[i]);
        *bufs[i] = um_aligned_alloc((sizes[i] ? sizes[i] : 1) * sizeof(float));
        if (!*bufs[i]) {
            ws->cap_tokens = ws->cap_seq = ws->cap_sel = 0;
            return um_fail(err, UM_ERR_NOMEM, "out of memory for a batch of %d tokens", n_tok);
        }
    }
    um_rope_table(ws->rope_cos, ws->rope_sin, seq, hp->head_dim, hp->rope_theta);
    ws->cap_tokens = n_tok;
    ws->cap_seq = seq;
    ws->cap_sel = n_sel;
    return UM_OK;
}

void um_workspace_free(um_workspace *ws) {
    float *bufs[] = {ws->x,        ws->xn,         ws->q,          ws->k,        ws->v,
                     ws->att,      ws->gate,       ws->up,         ws->rope_cos, ws->rope_sin,
                     ws->att_scratch, ws->mm_scratch, ws->head_in, (float *)ws->pos, ws->head_rows,
                     ws->head_logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    memset(ws, 0, sizeof *ws);
}

/* ---- elementwise steps ------------------------------------------------------ */

/* The elementwise steps of a layer, run on the pool over ranges of tokens,
 * so that no core idles through them (each token's result is the same). */
typedef enum { ROWS_ADD_NORM, ROWS_ROPE, ROWS_SWIGLU } rows_op;

typedef struct {
    rows_op op;
    um_context *ctx;
    const float *add;  /* ADD_NORM: x += add first, unless NULL */
    const float *norm; /* ADD_NORM: then xn = rmsnorm(x) with this weight, unless NULL */
    int n, per;        /* tokens in all, per task */
} rows_job;

static void rows_task(void *arg, int task, int thread) {
    const rows_job *j = arg;
    const um_hparams *hp = &j->ctx->m->hp;
    um_workspace *ws = &j->ctx->ws;
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
        for (int t = t0; t < t1;) { /* runs of consecutive positions */
            int run = 1;
            while (t + run < t1 && ws->pos[t + run] == ws->pos[t] + run)
                run++;
            const float *c = ws->rope_cos + (size_t)ws->pos[t] * half, *s = ws->rope_sin + (size_t)ws->pos[t] * half;
            um_rope(ws->q + (size_t)t * d, run, hp->n_heads, hp->head_dim, hp->rope_interleaved, c, s);
            um_rope(ws->k + (size_t)t * kv, run, hp->n_kv_heads, hp->head_dim, hp->rope_interleaved, c, s);
            t += run;
        }
        break;
    case ROWS_SWIGLU:
        um_swiglu(j->ctx->ex.path, ws->gate + (size_t)t0 * hp->d_ff, ws->up + (size_t)t0 * hp->d_ff,
                  (int64_t)(t1 - t0) * hp->d_ff);
        break;
    }
}

static void run_rows(um_context *ctx, rows_job j) {
    int tasks = 4 * um_pool_threads(ctx->ex.pool);
    j.ctx = ctx;
    j.per = (j.n + tasks - 1) / tasks;
    if (j.n > 0)
        um_pool_run(ctx->ex.pool, (j.n + j.per - 1) / j.per, rows_task, &j);
}

/* ---- one layer -------------------------------------------------------------- */

static um_status oom(um_error *err, const char *what) {
    return um_fail(err, UM_ERR_NOMEM, "out of memory for the %s's packed operands", what);
}

/* Each entry's queries against its keys: its cache (this pass's keys and
 * values written in first) or its own rows of this pass. */
static void attend(um_context *ctx, int layer, const um_batch_entry *e, int n, bool reduced) {
    const um_hparams *hp = &ctx->m->hp;
    um_workspace *ws = &ctx->ws;
    int d = hp->d_model, kv = hp->n_kv_heads * hp->head_dim;
    size_t row = 0;
    for (int i = 0; i < n; row += (size_t)(e[i].q1 - e[i].q0), i++) {
        int nq = e[i].q1 - e[i].q0;
        float *q = ws->q + row * d, *k = ws->k + row * kv, *v = ws->v + row * kv;
        if (e[i].cache) {
            um_kv_cache *c = e[i].cache;
            size_t base = (size_t)layer * c->seq * kv;
            memcpy(c->k + base + (size_t)e[i].q0 * kv, k, (size_t)nq * kv * sizeof(float));
            memcpy(c->v + base + (size_t)e[i].q0 * kv, v, (size_t)nq * kv * sizeof(float));
            k = c->k + base;
            v = c->v + base;
        }
        um_attention(&ctx->ex, q, nq, k, v, e[i].n_kv, ws->att + row * d, hp->n_heads, hp->n_kv_heads, hp->head_dim,
                     reduced, ws->att_scratch);
    }
}

static um_status layer_forward(um_context *ctx, int layer, const um_batch_entry *e, int n_entries, int n,
                               um_error *err) {
    const um_layer *l = &ctx->m->layers[layer];
    um_workspace *ws = &ctx->ws;
    const um_exec *ex = &ctx->ex;
    float *scr = ws->mm_scratch;
    /* attention rounds its operands as the layer's matmuls round their activations (F32 weights never) */
    bool reduced_attention = ex->reduced && l->wq.type != UM_F32;

    run_rows(ctx, (rows_job){.op = ROWS_ADD_NORM, .norm = l->attn_norm, .n = n});
    const um_weight *qkv[] = {&l->wq, &l->wk, &l->wv};
    const float *qkv_bias[] = {l->bq, l->bk, l->bv};
    float *qkv_out[] = {ws->q, ws->k, ws->v};
    if (!um_matmul_many(ex, ws->xn, n, 3, qkv, qkv_bias, qkv_out, scr))
        return oom(err, "q/k/v projection");
    run_rows(ctx, (rows_job){.op = ROWS_ROPE, .n = n});
    attend(ctx, layer, e, n_entries, reduced_attention);
    if (!um_matmul(ex, ws->att, n, &l->wo, l->bo, ws->q, scr))
        return oom(err, "attention output");
    run_rows(ctx, (rows_job){.op = ROWS_ADD_NORM, .add = ws->q, .norm = l->ffn_norm, .n = n});
    const um_weight *gate_up[] = {&l->w_gate, &l->w_up};
    const float *gate_up_bias[] = {l->b_gate, l->b_up};
    float *gate_up_out[] = {ws->gate, ws->up};
    if (!um_matmul_many(ex, ws->xn, n, 2, gate_up, gate_up_bias, gate_up_out, scr))
        return oom(err, "feed-forward input");
    run_rows(ctx, (rows_job){.op = ROWS_SWIGLU, .n = n});
    if (!um_matmul(ex, ws->gate, n, &l->w_down, l->b_down, ws->q, scr))
        return oom(err, "feed-forward output");
    run_rows(ctx, (rows_job){.op = ROWS_ADD_NORM, .add = ws->q, .n = n});
    return UM_OK;
}

/* ---- the batch ---------------------------------------------------------------- */

um_status um_kv_cache_init(um_kv_cache *c, const um_model *m, int seq, um_error *err) {
    memset(c, 0, sizeof *c);
    const um_hparams *hp = &m->hp;
    size_t n;
    if (seq <= 0 || !um_mul_size((size_t)hp->n_layers, (size_t)seq * (size_t)hp->n_kv_heads * hp->head_dim, &n) ||
        !um_mul_size(n, sizeof(float), &n))
        return um_fail(err, UM_ERR_ARG, "KV cache of %d positions is too large", seq);
    c->k = um_aligned_alloc(n);
    c->v = um_aligned_alloc(n);
    if (!c->k || !c->v) {
        um_kv_cache_free(c);
        return um_fail(err, UM_ERR_NOMEM, "out of memory for a KV cache of %d positions (%.1f MiB)", seq,
                       2.0 * (double)n / (1 << 20));
    }
    c->n_layers = hp->n_layers;
    c->seq = seq;
    c->kv_dim = hp->n_kv_heads * hp->head_dim;
    return UM_OK;
}

void um_kv_cache_free(um_kv_cache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

static um_status check_entry(const um_model *m, const um_batch_entry *e, int i, um_error *err) {
    const um_hparams *hp = &m->hp;
    if (e->len <= 0 || !e->tokens)
        return um_fail(err, UM_ERR_ARG, "forward: entry %d is empty (%d tokens)", i, e->len);
    if (e->len > hp->max_seq)
        return um_fail(err, UM_ERR_ARG, "forward: %d tokens exceed the model's max_sequence_length %d", e->len,
                       hp->max_seq);
    if (e->q0 < 0 || e->q1 <= e->q0 || e->q1 > e->len || e->n_kv < 1 || e->n_kv > e->len)
        return um_fail(err, UM_ERR_ARG, "forward: positions [%d, %d) against %d keys do not fit %d tokens", e->q0,
                       e->q1, e->n_kv, e->len);
    if (!e->cache && (e->q0 != 0 || e->q1 != e->len || e->n_kv != e->len))
        return um_fail(err, UM_ERR_ARG, "forward: a pass over part of a sequence needs a KV cache");
    if (e->cache && (e->cache->n_layers != hp->n_layers || e->cache->seq < e->len ||
                     e->cache->kv_dim != hp->n_kv_heads * hp->head_dim))
        return um_fail(err, UM_ERR_ARG, "forward: the KV cache of entry %d does not fit %d tokens", i, e->len);
    for (int t = 0; t < e->len; t++)
        if (e->tokens[t] < 0 || e->tokens[t] >= hp->n_vocab)
            return um_fail(err, UM_ERR_ARG, "token id %d at position %d is outside the vocabulary [0, %d)",
                           e->tokens[t], t, hp->n_vocab);
    for (int s = 0; e->sel && s < e->n_sel; s++)
        if (e->sel[s] < e->q0 || e->sel[s] >= e->q1)
            return um_fail(err, UM_ERR_ARG, "forward: logits requested for position %d outside [%d, %d)", e->sel[s],
                           e->q0, e->q1);
    return UM_OK;
}

um_status um_forward_batch(um_context *ctx, const um_batch_entry *e, int n_entries, um_error *err) {
    const um_model *m = ctx->m;
    const um_hparams *hp = &m->hp;
    if (n_entries <= 0)
        return um_fail(err, UM_ERR_ARG, "forward: an empty batch");
    int64_t n = 0, n_sel = 0;
    int max_len = 0;
    for (int i = 0; i < n_entries; i++) {
        UM_TRY(check_entry(m, &e[i], i, err));
        n += e[i].q1 - e[i].q0;
        n_sel += e[i].sel ? e[i].n_sel : e[i].q1 - e[i].q0;
        max_len = e[i].len > max_len ? e[i].len : max_len;
    }
    if (n > INT32_MAX / 2 || n_sel > INT32_MAX / 2)
        return um_fail(err, UM_ERR_ARG, "forward: a batch of %lld tokens is too large", (long long)n);
    UM_TRY(reserve(ctx, (int)n, max_len, (int)n_sel, err));
    um_workspace *ws = &ctx->ws;
    int d = hp->d_model;
    size_t row = 0;
    for (int i = 0; i < n_entries; i++)
        for (int p = e[i].q0; p < e[i].q1; p++, row++) {
            um_weight_row_f32(&m->tok_embd, e[i].tokens[p], ws->x + row * d);
            ws->pos[row] = p;
        }
    for (int l = 0; l < hp->n_layers; l++)
        UM_TRY(layer_forward(ctx, l, e, n_entries, (int)n, err));

    size_t out = 0;
    row = 0;
    for (int i = 0; i < n_entries; row += (size_t)(e[i].q1 - e[i].q0), i++) {
        int k = e[i].sel ? e[i].n_sel : e[i].q1 - e[i].q0;
        for (int s = 0; s < k; s++, out++) {
            int at = e[i].sel ? e[i].sel[s] - e[i].q0 : s;
            memcpy(ws->head_in + out * d, ws->x + (row + (size_t)at) * d, (size_t)d * sizeof(float));
        }
    }
    ws->n_out = (int)out;
    um_rmsnorm(ws->head_in, ws->head_in, m->out_norm, (int)out, d, hp->norm_eps);
    return UM_OK;
}

/* The output head over n rows of normalized states. */
static um_status head(um_context *ctx, const float *states, int n, float *logits, um_error *err) {
    if (n > 0 && !um_matmul(&ctx->ex, states, n, &ctx->m->output, ctx->m->b_output, logits, ctx->ws.mm_scratch))
        return oom(err, "output head");
    return UM_OK;
}

um_status um_context_head(um_context *ctx, const int32_t *rows, int n, float **logits, um_error *err) {
    um_workspace *ws = &ctx->ws;
    const um_hparams *hp = &ctx->m->hp;
    if (n < 0 || n > UM_HEAD_CHUNK)
        return um_fail(err, UM_ERR_ARG, "head: %d rows at once (at most %d)", n, UM_HEAD_CHUNK);
    if (!ws->head_logits) {
        ws->head_rows = um_aligned_alloc((size_t)UM_HEAD_CHUNK * hp->d_model * sizeof(float));
        ws->head_logits = um_aligned_alloc((size_t)UM_HEAD_CHUNK * hp->n_vocab * sizeof(float));
        if (!ws->head_rows || !ws->head_logits) {
            free(ws->head_rows);
            free(ws->head_logits);
            ws->head_rows = ws->head_logits = NULL;
            return um_fail(err, UM_ERR_NOMEM, "out of memory for %d rows of logits", UM_HEAD_CHUNK);
        }
    }
    for (int i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= ws->n_out)
            return um_fail(err, UM_ERR_ARG, "head: row %d of %d outputs", rows[i], ws->n_out);
        memcpy(ws->head_rows + (size_t)i * hp->d_model, ws->head_in + (size_t)rows[i] * hp->d_model,
               (size_t)hp->d_model * sizeof(float));
    }
    *logits = ws->head_logits;
    return head(ctx, ws->head_rows, n, ws->head_logits, err);
}

um_status um_model_forward(um_context *ctx, const int32_t *tokens, int n_rows, int seq, const int32_t *sel, int n_sel,
                           float *logits, um_error *err) {
    if (n_rows <= 0 || seq <= 0)
        return um_fail(err, UM_ERR_ARG, "forward: empty input (%d rows of %d tokens)", n_rows, seq);
    um_batch_entry *e = calloc((size_t)n_rows, sizeof *e);
    if (!e)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int r = 0; r < n_rows; r++)
        e[r] = (um_batch_entry){tokens + (size_t)r * seq, seq, 0, seq, seq, NULL, sel, sel ? n_sel : 0};
    um_status s = um_forward_batch(ctx, e, n_rows, err);
    free(e);
    UM_TRY(s);
    return head(ctx, ctx->ws.head_in, ctx->ws.n_out, logits, err);
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
