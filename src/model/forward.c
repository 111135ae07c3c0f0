/* The forward pass of the transformer the architectures share (model.h's
 * um_layer), over a batch of unlike sequences: per layer
 *
 *   h = x + attn_out(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = attn_norm(x)
 *   x = h + ff_out(silu(ff_proj(m)) * up_proj(m))                                m = ff_norm(h)
 *
 * then the final norm of the selected positions; the output head runs
 * separately, on as few rows as the caller needs (um_context_pick,
 * um_context_logits). The tokens of every entry are stacked, so each matmul
 * reads its weights once for the whole batch; only the attention runs entry
 * by entry, each against its own keys (its cache, or its own rows of this
 * pass). Every operation goes through the context's backend
 * (backend/backend.h), on tensors in its buffers: nothing here touches an
 * activation. The attention has no causal mask; RoPE uses the rotate-half
 * layout (interleaved for llama.cpp's permuted GGUF rows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "model/model.h"

/* ---- workspace ------------------------------------------------------------ */

static um_tensor tensor(um_buffer *b, um_dtype type, int64_t rows, int64_t cols) {
    return (um_tensor){b, 0, type, rows, cols};
}

/* The widest dense FFN of the model: its layers', or MoE's dense layers' and shared expert's. */
static size_t ffn_width(const um_hparams *hp) {
    size_t dense = hp->ffn == UM_FFN_DENSE || hp->n_dense_layers > 0 ? (size_t)hp->d_ff : 0;
    return dense > (size_t)hp->d_ff_shexp ? dense : (size_t)hp->d_ff_shexp;
}

/* Room for n_tok tokens and n_out outputs (grown, never shrunk). */
static um_status reserve(um_context *ctx, int n_tok, int n_out, um_error *err) {
    um_workspace *ws = &ctx->ws;
    if (n_tok <= ws->cap_tokens && n_out <= ws->cap_out)
        return UM_OK;
    const um_hparams *hp = &ctx->m->hp;
    n_tok = n_tok > ws->cap_tokens ? n_tok : ws->cap_tokens;
    n_out = n_out > ws->cap_out ? n_out : ws->cap_out;
    um_workspace_free(ctx->be, ws);
    size_t t = (size_t)n_tok, d = (size_t)hp->d_model, kv = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t ff = ffn_width(hp); /* the experts' buffers are the backend's */
    um_buffer *bufs[] = {&ws->x, &ws->xn, &ws->q, &ws->k, &ws->v, &ws->att, &ws->gate, &ws->up, &ws->ids, &ws->pos,
                         &ws->states};
    size_t floats[] = {t * d, t * d, t * d, t * kv, t * kv, t * d, t * ff, t * ff, t, t, (size_t)n_out * d};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        um_status s = ctx->be->ops->alloc(ctx->be, bufs[i], floats[i] * sizeof(float), err);
        if (s != UM_OK) {
            um_workspace_free(ctx->be, ws);
            return s;
        }
    }
    ws->cap_tokens = n_tok;
    ws->cap_out = n_out;
    return UM_OK;
}

void um_workspace_free(um_backend *be, um_workspace *ws) {
    um_buffer *bufs[] = {&ws->x, &ws->xn, &ws->q, &ws->k, &ws->v, &ws->att, &ws->gate, &ws->up, &ws->ids, &ws->pos,
                         &ws->states};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]->data)
            be->ops->release(be, bufs[i]);
    memset(ws, 0, sizeof *ws);
}

/* The activations of n tokens, as tensors. */
typedef struct {
    um_tensor x, xn, q, k, v, att, gate, up, ids, pos;
} acts;

static acts activations(um_context *ctx, int n) {
    const um_hparams *hp = &ctx->m->hp;
    um_workspace *ws = &ctx->ws;
    int64_t d = hp->d_model, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    int64_t ff = (int64_t)ffn_width(hp);
    return (acts){tensor(&ws->x, UM_F32, n, d),    tensor(&ws->xn, UM_F32, n, d),   tensor(&ws->q, UM_F32, n, d),
                  tensor(&ws->k, UM_F32, n, kv),   tensor(&ws->v, UM_F32, n, kv),   tensor(&ws->att, UM_F32, n, d),
                  tensor(&ws->gate, UM_F32, n, ff), tensor(&ws->up, UM_F32, n, ff), tensor(&ws->ids, UM_I32, n, 1),
                  tensor(&ws->pos, UM_I32, n, 1)};
}

/* ---- one layer -------------------------------------------------------------- */

/* Layer l's keys or values in c, all positions. */
static um_tensor cache_layer(um_kv_cache *c, um_buffer *b, int l) {
    um_tensor t = tensor(b, UM_F32, c->seq, c->kv_dim);
    return um_tensor_rows(&t, (int64_t)l * c->seq, c->seq);
}

/* Each entry's queries against its keys: its cache (this pass's keys and
 * values written in first) or its own rows of this pass. */
static um_status attend(um_context *ctx, int layer, const um_batch_entry *e, int n, const acts *a, bool reduced,
                        um_error *err) {
    const um_hparams *hp = &ctx->m->hp;
    um_backend *be = ctx->be;
    um_attn_shape shape = {hp->n_heads, hp->n_kv_heads, hp->head_dim, reduced};
    int64_t row = 0;
    for (int i = 0; i < n; row += e[i].q1 - e[i].q0, i++) {
        int nq = e[i].q1 - e[i].q0;
        um_tensor q = um_tensor_rows(&a->q, row, nq), out = um_tensor_rows(&a->att, row, nq);
        um_tensor k = um_tensor_rows(&a->k, row, nq), v = um_tensor_rows(&a->v, row, nq);
        if (e[i].cache) {
            um_tensor ck = cache_layer(e[i].cache, &e[i].cache->k, layer), cv = cache_layer(e[i].cache, &e[i].cache->v, layer);
            um_tensor ck_dst = um_tensor_rows(&ck, e[i].q0, nq), cv_dst = um_tensor_rows(&cv, e[i].q0, nq);
            UM_TRY(be->ops->copy_rows(be, &ck_dst, NULL, &k, NULL, nq, err));
            UM_TRY(be->ops->copy_rows(be, &cv_dst, NULL, &v, NULL, nq, err));
            k = ck;
            v = cv;
        }
        /* block-causal: the queries of each block against the keys up to the block's end */
        for (int p0 = e[i].q0, p1; p0 < e[i].q1; p0 = p1) {
            int keys = e[i].n_kv;
            p1 = e[i].q1;
            if (e[i].block > 0) {
                int end = (p0 / e[i].block + 1) * e[i].block;
                p1 = end < p1 ? end : p1;
                keys = end < keys ? end : keys;
            }
            um_tensor qb = um_tensor_rows(&q, p0 - e[i].q0, p1 - p0), ob = um_tensor_rows(&out, p0 - e[i].q0, p1 - p0);
            UM_TRY(be->ops->attention(be, &qb, &k, &v, keys, &ob, &shape, err));
        }
    }
    return UM_OK;
}

/* QK-norm: each head's slice of q and k normalized with one weight for all heads. */
static um_status qk_norm(um_context *ctx, const um_layer *l, const acts *a, um_error *err) {
    const um_hparams *hp = &ctx->m->hp;
    um_backend *be = ctx->be;
    um_tensor q = a->q, k = a->k;
    q.rows *= hp->n_heads;
    k.rows *= hp->n_kv_heads;
    q.cols = k.cols = hp->head_dim;
    UM_TRY(be->ops->add_rmsnorm(be, &q, NULL, l->q_norm, hp->norm_eps, &q, err));
    return be->ops->add_rmsnorm(be, &k, NULL, l->k_norm, hp->norm_eps, &k, err);
}

/* The gated FFN of l's w_gate, w_up and w_down on the normalized rows xn, into out. */
static um_status dense_ffn(um_context *ctx, const um_layer *l, const acts *a, const um_tensor *out, um_error *err) {
    um_backend *be = ctx->be;
    um_tensor gate = a->gate, up = a->up;
    gate.cols = up.cols = l->w_gate.rows;
    const um_weight *gate_up[] = {&l->w_gate, &l->w_up};
    const float *gate_up_bias[] = {l->b_gate, l->b_up};
    const um_tensor *gate_up_out[] = {&gate, &up};
    UM_TRY(be->ops->matmul(be, &a->xn, 2, gate_up, gate_up_bias, gate_up_out, err));
    UM_TRY(be->ops->swiglu(be, &gate, &up, err));
    const um_weight *down[] = {&l->w_down};
    const float *b_down[] = {l->b_down};
    const um_tensor *down_out[] = {out};
    return be->ops->matmul(be, &gate, 1, down, b_down, down_out, err);
}

/* The FFN of the normalized rows xn, into out: dense, or the experts (plus
 * the shared expert's output, summed as upstream does before the residual;
 * att is free by then and holds it). */
static um_status ffn(um_context *ctx, const um_layer *l, const acts *a, const um_tensor *out, um_error *err) {
    um_backend *be = ctx->be;
    if (l->moe.n_expert == 0)
        return dense_ffn(ctx, l, a, out, err);
    UM_TRY(be->ops->moe(be, &a->xn, &l->moe, out, err));
    if (!l->w_gate.data)
        return UM_OK;
    UM_TRY(dense_ffn(ctx, l, a, &a->att, err));
    return be->ops->add_rmsnorm(be, out, &a->att, NULL, 0, NULL, err);
}

static um_status layer_forward(um_context *ctx, int layer, const um_batch_entry *e, int n_entries, const acts *a,
                               um_error *err) {
    const um_hparams *hp = &ctx->m->hp;
    const um_layer *l = &ctx->m->layers[layer];
    um_backend *be = ctx->be;
    /* attention rounds its operands as the layer's matmuls round their activations (F32 weights never) */
    bool reduced_attention = be->reduced && l->wq.type != UM_F32;
    um_rope_shape rs = {hp->n_heads, hp->n_kv_heads, hp->head_dim, hp->rope_theta, hp->rope_interleaved, hp->rope_dim};

    UM_TRY(be->ops->add_rmsnorm(be, &a->x, NULL, l->attn_norm, hp->norm_eps, &a->xn, err));
    const um_weight *qkv[] = {&l->wq, &l->wk, &l->wv};
    const float *qkv_bias[] = {l->bq, l->bk, l->bv};
    const um_tensor *qkv_out[] = {&a->q, &a->k, &a->v};
    UM_TRY(be->ops->matmul(be, &a->xn, 3, qkv, qkv_bias, qkv_out, err));
    if (hp->qk_norm)
        UM_TRY(qk_norm(ctx, l, a, err));
    UM_TRY(be->ops->rope(be, &a->q, &a->k, &a->pos, &rs, err));
    UM_TRY(attend(ctx, layer, e, n_entries, a, reduced_attention, err));
    const um_weight *wo[] = {&l->wo};
    const float *bo[] = {l->bo};
    const um_tensor *o_out[] = {&a->q};
    UM_TRY(be->ops->matmul(be, &a->att, 1, wo, bo, o_out, err));
    UM_TRY(be->ops->add_rmsnorm(be, &a->x, &a->q, l->ffn_norm, hp->norm_eps, &a->xn, err));
    UM_TRY(ffn(ctx, l, a, &a->q, err));
    return be->ops->add_rmsnorm(be, &a->x, &a->q, NULL, 0, NULL, err);
}

/* ---- the batch ---------------------------------------------------------------- */

um_status um_kv_cache_init(um_kv_cache *c, um_backend *be, const um_model *m, int seq, um_error *err) {
    memset(c, 0, sizeof *c);
    const um_hparams *hp = &m->hp;
    size_t n;
    if (seq <= 0 || !um_mul_size((size_t)hp->n_layers, (size_t)seq * (size_t)hp->n_kv_heads * hp->head_dim, &n) ||
        !um_mul_size(n, sizeof(float), &n))
        return um_fail(err, UM_ERR_ARG, "KV cache of %d positions is too large", seq);
    c->ops = be->ops;
    um_status s = be->ops->alloc(be, &c->k, n, err);
    if (s == UM_OK)
        s = be->ops->alloc(be, &c->v, n, err);
    if (s != UM_OK) {
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
    if (c->ops && c->k.data)
        c->ops->release(NULL, &c->k);
    if (c->ops && c->v.data)
        c->ops->release(NULL, &c->v);
    memset(c, 0, sizeof *c);
}

static um_status check_entry(const um_context *ctx, const um_batch_entry *e, int i, um_error *err) {
    const um_hparams *hp = &ctx->m->hp;
    if (e->len <= 0 || !e->tokens)
        return um_fail(err, UM_ERR_ARG, "forward: entry %d is empty (%d tokens)", i, e->len);
    if (e->len > hp->max_seq)
        return um_fail(err, UM_ERR_ARG, "forward: %d tokens exceed the model's max_sequence_length %d", e->len,
                       hp->max_seq);
    if (e->q0 < 0 || e->q1 <= e->q0 || e->q1 > e->len || e->n_kv < 1 || e->n_kv > e->len)
        return um_fail(err, UM_ERR_ARG, "forward: positions [%d, %d) against %d keys do not fit %d tokens", e->q0,
                       e->q1, e->n_kv, e->len);
    if (e->block < 0)
        return um_fail(err, UM_ERR_ARG, "forward: entry %d has a block length of %d", i, e->block);
    if (!e->cache && (e->q0 != 0 || e->q1 != e->len || e->n_kv != e->len))
        return um_fail(err, UM_ERR_ARG, "forward: a pass over part of a sequence needs a KV cache");
    if (e->cache && (e->cache->ops != ctx->be->ops || e->cache->n_layers != hp->n_layers || e->cache->seq < e->len ||
                     e->cache->kv_dim != hp->n_kv_heads * hp->head_dim))
        return um_fail(err, UM_ERR_ARG, "forward: the KV cache of entry %d does not fit %d tokens on this backend", i,
                       e->len);
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

/* The batch's token ids and positions, and the rows of its selected outputs (host lists). */
static um_status stage_inputs(um_context *ctx, const um_batch_entry *e, int n_entries, const acts *a,
                              int32_t *out_rows, um_error *err) {
    int64_t n = a->ids.rows;
    int32_t *ids = malloc((size_t)n * 2 * sizeof *ids), *pos = ids ? ids + n : NULL;
    if (!ids)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    int row = 0, out = 0;
    for (int i = 0; i < n_entries; i++) {
        int k = e[i].sel ? e[i].n_sel : e[i].q1 - e[i].q0;
        for (int s = 0; s < k; s++)
            out_rows[out++] = row + (e[i].sel ? e[i].sel[s] - e[i].q0 : s);
        for (int p = e[i].q0; p < e[i].q1; p++, row++) {
            ids[row] = e[i].tokens[p];
            pos[row] = p;
        }
    }
    um_status s = ctx->be->ops->upload(ctx->be, &a->ids, ids, err);
    if (s == UM_OK)
        s = ctx->be->ops->upload(ctx->be, &a->pos, pos, err);
    free(ids);
    return s;
}

um_status um_forward_batch(um_context *ctx, const um_batch_entry *e, int n_entries, um_error *err) {
    const um_model *m = ctx->m;
    const um_hparams *hp = &m->hp;
    um_backend *be = ctx->be;
    if (n_entries <= 0)
        return um_fail(err, UM_ERR_ARG, "forward: an empty batch");
    int64_t n = 0, n_out = 0;
    for (int i = 0; i < n_entries; i++) {
        UM_TRY(check_entry(ctx, &e[i], i, err));
        n += e[i].q1 - e[i].q0;
        n_out += e[i].sel ? e[i].n_sel : e[i].q1 - e[i].q0;
    }
    if (n > INT32_MAX / 2 || n_out > INT32_MAX / 2)
        return um_fail(err, UM_ERR_ARG, "forward: a batch of %lld tokens is too large", (long long)n);
    UM_TRY(reserve(ctx, (int)n, (int)n_out, err));
    acts a = activations(ctx, (int)n);
    int32_t *out_rows = malloc((size_t)(n_out > 0 ? n_out : 1) * sizeof *out_rows);
    if (!out_rows)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_status s = stage_inputs(ctx, e, n_entries, &a, out_rows, err);
    if (s == UM_OK)
        s = be->ops->get_rows(be, &m->tok_embd, &a.ids, &a.x, err);
    for (int i = 0, row = 0; s == UM_OK && i < n_entries; row += e[i].q1 - e[i].q0, i++)
        if (e[i].embd) {
            um_tensor x = um_tensor_rows(&a.x, row, e[i].q1 - e[i].q0);
            s = be->ops->upload(be, &x, e[i].embd + (size_t)e[i].q0 * hp->d_model, err);
        }
    for (int l = 0; s == UM_OK && l < hp->n_layers; l++)
        s = layer_forward(ctx, l, e, n_entries, &a, err);
    um_tensor states = tensor(&ctx->ws.states, UM_F32, n_out, hp->d_model);
    if (s == UM_OK)
        s = be->ops->copy_rows(be, &states, NULL, &a.x, out_rows, (int)n_out, err);
    if (s == UM_OK)
        s = be->ops->add_rmsnorm(be, &states, NULL, m->out_norm, hp->norm_eps, &states, err);
    free(out_rows);
    ctx->ws.n_out = s == UM_OK ? (int)n_out : 0;
    return s;
}

static um_tensor outputs(um_context *ctx) {
    return tensor(&ctx->ws.states, UM_F32, ctx->ws.n_out, ctx->m->hp.d_model);
}

um_status um_context_pick(um_context *ctx, const um_pick_request *req, int n, um_pick *out, um_error *err) {
    um_tensor states = outputs(ctx);
    return ctx->be->ops->pick(ctx->be, &states, &ctx->m->output, ctx->m->b_output, req, n, out, err);
}

um_status um_context_logits(um_context *ctx, float *logits, um_error *err) {
    um_tensor states = outputs(ctx);
    return ctx->be->ops->logits(ctx->be, &states, &ctx->m->output, ctx->m->b_output, logits, err);
}

um_status um_model_forward(um_context *ctx, const int32_t *tokens, int n_rows, int seq, const int32_t *sel, int n_sel,
                           float *logits, um_error *err) {
    if (n_rows <= 0 || seq <= 0)
        return um_fail(err, UM_ERR_ARG, "forward: empty input (%d rows of %d tokens)", n_rows, seq);
    um_batch_entry *e = calloc((size_t)n_rows, sizeof *e);
    if (!e)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int r = 0; r < n_rows; r++)
        e[r] = (um_batch_entry){tokens + (size_t)r * seq, seq, 0, seq, seq, NULL, sel, sel ? n_sel : 0, NULL, 0};
    um_status s = um_forward_batch(ctx, e, n_rows, err);
    free(e);
    UM_TRY(s);
    return um_context_logits(ctx, logits, err);
}

double um_model_forward_flops(const um_model *m, int n_rows, int seq, int n_sel) {
    const um_hparams *hp = &m->hp;
    double d = hp->d_model, kv = (double)hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    if (hp->ffn == UM_FFN_MOE) /* the experts a token runs, and the router */
        ff = (double)hp->d_ff_exp * hp->n_expert_used + hp->n_expert / 3.0;
    if (hp->ffn == UM_FFN_MOE) /* the dense layers and the shared expert, spread over the layers */
        ff += ((double)hp->n_dense_layers * hp->d_ff + (double)(hp->n_layers - hp->n_dense_layers) * hp->d_ff_shexp) /
              hp->n_layers;
    double per_layer_params = d * d * 2 + 2 * d * kv + 3 * d * ff;
    double tokens = (double)n_rows * seq;
    double matmul = 2.0 * per_layer_params * tokens * hp->n_layers;
    double attention = 4.0 * (double)n_rows * seq * seq * d * hp->n_layers;
    double head = 2.0 * (double)n_rows * n_sel * d * hp->n_vocab;
    return matmul + attention + head;
}
