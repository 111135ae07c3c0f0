/* LLaDA: a Llama-style bidirectional transformer (ML-GSAI/LLaDA,
 * modeling_llada.py). Per layer:
 *
 *   h = x + attn_out(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = attn_norm(x)
 *   x = h + ff_out(silu(ff_proj(m)) * up_proj(m))                                m = ff_norm(h)
 *
 * then ln_f and the output head (ff_out, or the embedding when tied). The
 * attention has no causal mask; RoPE uses the rotate-half layout. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "model/llada_gguf.h"
#include "model/model.h"

#define CONFIG_MAX_BYTES (1u << 20)
#define TOKENIZER_MAX_BYTES (256u << 20)
#define LLADA_DEFAULT_MASK_ID 126336

/* ---- config.json ---------------------------------------------------------- */

/* Options of the LLaDA/OLMo config that change the computation and that this
 * forward pass does not implement: refuse them rather than compute wrongly. */
static um_status check_unsupported(const cJSON *cfg, const char *file, um_error *err) {
    static const struct {
        const char *key, *want;
    } strings[] = {{"block_type", "llama"}, {"layer_norm_type", "rms"}, {"activation_type", "silu"}};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        const char *v = um_json_get_string(cfg, strings[i].key);
        if (v && strcmp(v, strings[i].want) != 0)
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (only '%s')", file,
                           strings[i].key, v, strings[i].want);
    }
    static const struct {
        const char *key;
        bool want;
    } flags[] = {{"alibi", false},          {"rope", true},          {"input_emb_norm", false},
                 {"scale_logits", false},   {"bias_for_layer_norm", false}, {"attention_layer_norm", false},
                 {"layer_norm_with_affine", true}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        bool v = flags[i].want;
        UM_TRY(um_json_get_bool(cfg, flags[i].key, &v, file, err));
        if (v != flags[i].want)
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s = %s is not supported", file, flags[i].key,
                           v ? "true" : "false");
    }
    const cJSON *clip = cJSON_GetObjectItemCaseSensitive(cfg, "clip_qkv");
    if (clip && !cJSON_IsNull(clip))
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: clip_qkv is not supported", file);
    return UM_OK;
}

/* "<|eot_id|>" from the tokenizer's added tokens: LLaDA's config.json does
 * not carry it, but the reference sampler needs it. -1 when not found. */
static int find_eot_id(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *tok;
    if (!um_file_exists(path) || um_json_load(path, TOKENIZER_MAX_BYTES, &tok, NULL) != UM_OK)
        return -1;
    int id = -1;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        const char *content = um_json_get_string(e, "content");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (content && strcmp(content, "<|eot_id|>") == 0 && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
            v->valuedouble < 1e9)
            id = (int)v->valuedouble;
    }
    cJSON_Delete(tok);
    return id;
}

um_status um_llada_parse_hparams(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab, emb = -1, max_seq = 4096;
    int64_t mask_id = LLADA_DEFAULT_MASK_ID, eos_id = -1, eot_id = -1;
    double eps = 1e-5, theta = 10000.0;
    UM_TRY(check_unsupported(cfg, file, err));
    UM_TRY(um_json_get_int(cfg, "n_layers", true, 1, 4096, &n_layers, file, err));
    UM_TRY(um_json_get_int(cfg, "d_model", true, 1, 1 << 17, &d_model, file, err));
    UM_TRY(um_json_get_int(cfg, "n_heads", true, 1, 4096, &n_heads, file, err));
    n_kv_heads = n_heads;
    UM_TRY(um_json_get_int(cfg, "n_kv_heads", false, 1, 4096, &n_kv_heads, file, err));
    UM_TRY(um_json_get_int(cfg, "mlp_hidden_size", true, 1, 1 << 20, &d_ff, file, err));
    UM_TRY(um_json_get_int(cfg, "vocab_size", true, 1, 1 << 24, &vocab, file, err));
    UM_TRY(um_json_get_int(cfg, "embedding_size", false, 1, 1 << 24, &emb, file, err));
    UM_TRY(um_json_get_int(cfg, "max_sequence_length", false, 1, 1 << 24, &max_seq, file, err));
    UM_TRY(um_json_get_int(cfg, "mask_token_id", false, 0, INT32_MAX, &mask_id, file, err));
    UM_TRY(um_json_get_int(cfg, "eos_token_id", false, 0, INT32_MAX, &eos_id, file, err));
    UM_TRY(um_json_get_int(cfg, "eot_token_id", false, 0, INT32_MAX, &eot_id, file, err));
    UM_TRY(um_json_get_double(cfg, "rms_norm_eps", false, &eps, file, err));
    UM_TRY(um_json_get_double(cfg, "rope_theta", false, &theta, file, err));
    bool tied = false, bias = false, qkv_bias = false;
    UM_TRY(um_json_get_bool(cfg, "weight_tying", &tied, file, err));
    UM_TRY(um_json_get_bool(cfg, "include_bias", &bias, file, err));
    UM_TRY(um_json_get_bool(cfg, "include_qkv_bias", &qkv_bias, file, err));

    if (n_heads % n_kv_heads != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: n_heads %lld is not a multiple of n_kv_heads %lld", file,
                       (long long)n_heads, (long long)n_kv_heads);
    if (d_model % n_heads != 0 || (d_model / n_heads) % 2 != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: d_model %lld must split into n_heads %lld heads of even size", file,
                       (long long)d_model, (long long)n_heads);
    if (emb < 0)
        emb = vocab;
    if (emb < vocab)
        return um_fail(err, UM_ERR_FORMAT, "%s: embedding_size %lld is smaller than vocab_size %lld", file,
                       (long long)emb, (long long)vocab);
    /* both are used as f32: 1e-85 would round to 0 and 1e39 to infinity. RoPE's
       frequencies are theta^(-2i/d): a theta of 1 or less makes them grow instead of
       fall, and a tiny one (5e-295 rounds to 0 in f32) overflows the angles to NaN. */
    if (!(eps >= FLT_MIN && eps < 1))
        return um_fail(err, UM_ERR_FORMAT, "%s: 'rms_norm_eps' must be in [%g, 1), got %g", file, (double)FLT_MIN, eps);
    if (!(theta > 1 && theta <= FLT_MAX))
        return um_fail(err, UM_ERR_FORMAT, "%s: 'rope_theta' must be greater than 1 and at most %g, got %g", file,
                       (double)FLT_MAX, theta);
    if (mask_id >= emb)
        return um_fail(err, UM_ERR_FORMAT, "%s: mask_token_id %lld is outside the vocabulary (%lld)", file,
                       (long long)mask_id, (long long)emb);
    hp->n_layers = (int)n_layers;
    hp->d_model = (int)d_model;
    hp->n_heads = (int)n_heads;
    hp->n_kv_heads = (int)n_kv_heads;
    hp->head_dim = (int)(d_model / n_heads);
    hp->d_ff = (int)d_ff;
    hp->n_vocab = (int)emb;
    hp->max_seq = (int)max_seq;
    hp->norm_eps = (float)eps;
    hp->rope_theta = (float)theta;
    hp->mask_id = (int)mask_id;
    hp->eos_id = eos_id < emb ? (int)eos_id : -1;
    hp->eot_id = eot_id < emb ? (int)eot_id : -1;
    hp->tied = tied;
    hp->bias = bias;
    hp->qkv_bias = qkv_bias || bias;
    return UM_OK;
}

/* ---- binding tensors ------------------------------------------------------ */

static um_status own(um_model *m, void *p, um_error *err) {
    void **o = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *o);
    if (!o) {
        free(p);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    m->owned = o;
    m->owned[m->n_owned++] = p;
    return UM_OK;
}

/* "[d0, d1]"; reversed: innermost first, as GGUF and llama.cpp's tools list them. */
static const char *shape_str(const int64_t *shape, int n_dims, bool reversed, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < n_dims && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[reversed ? n_dims - 1 - i : i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

static bool is_float_type(um_dtype t) { return t == UM_F32 || t == UM_BF16 || t == UM_F16; }

/* A GGUF file names its tensors llama.cpp's way: the message gives the name
 * a user finds in the file (and in llama.cpp's tools), then the Hugging Face one. */
static um_status missing_tensor(const um_weights *w, const char *name, um_error *err) {
    char stored[128];
    if (w->is_gguf && w->gguf_name(name, stored, sizeof stored))
        return um_fail(err, UM_ERR_FORMAT, "%s: missing tensor '%s' (Hugging Face name %s)", um_weights_source(w),
                       stored, name);
    return um_fail(err, UM_ERR_FORMAT, "%s: missing tensor '%s'", um_weights_source(w), name);
}

/* Finds name and checks its type and shape. Matrices may be F32, BF16, F16 or
 * a llama.cpp block type; vectors (norms, biases) must be floats. */
static um_status take(um_model *m, const char *name, int n_dims, int64_t d0, int64_t d1, um_tensor_ref *t,
                      um_error *err) {
    const char *implied = m->weights.is_gguf ? "the GGUF metadata implies" : "config.json implies";
    if (!um_weights_take(&m->weights, name, t))
        return missing_tensor(&m->weights, name, err);
    bool ok_type = is_float_type(t->type) || (n_dims == 2 && um_dtype_block_elems(t->type) > 1 &&
                                              t->type >= UM_Q8_0 && t->type < UM_DTYPE_COUNT);
    if (!ok_type)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s; %s must be F32, BF16 or F16%s",
                       t->file, t->name, um_dtype_name(t->type), n_dims == 2 ? "weights" : "vectors",
                       n_dims == 2 ? " or a llama.cpp quantized type" : "");
    if (t->n_dims != n_dims || t->shape[0] != d0 || (n_dims == 2 && t->shape[1] != d1)) {
        bool gguf = m->weights.is_gguf;
        int64_t want[2] = {d0, d1};
        char got[128], exp[64];
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' has shape %s, %s %s%s", t->file, t->name,
                       shape_str(t->shape, t->n_dims, gguf, got, sizeof got), implied,
                       shape_str(want, n_dims, gguf, exp, sizeof exp), gguf ? " (innermost dimension first)" : "");
    }
    m->n_params += n_dims == 2 ? d0 * d1 : d0;
    return UM_OK;
}

/* t's data in place, or an aligned copy when the file leaves it misaligned
 * for its element type: safetensors does not require alignment (an odd header
 * length misaligns everything), and the kernels read whole elements. Block
 * types are read through memcpy and need no alignment. */
static um_status aligned_data(um_model *m, const um_tensor_ref *t, const void **out, um_error *err) {
    size_t align = um_dtype_size(t->type);
    *out = t->data;
    if (align == 0 || ((uintptr_t)t->data % align) == 0)
        return UM_OK;
    void *copy = um_aligned_alloc(t->nbytes);
    if (!copy)
        return um_fail(err, UM_ERR_NOMEM, "%s: out of memory copying '%s'", t->file, t->name);
    memcpy(copy, t->data, t->nbytes);
    UM_TRY(own(m, copy, err));
    *out = copy;
    return UM_OK;
}

/* A weight matrix, used in place from the map (copied only when misaligned). */
static um_status bind_matrix(um_model *m, const char *name, int64_t rows, int64_t cols, um_weight *w, um_error *err) {
    um_tensor_ref t;
    UM_TRY(take(m, name, 2, rows, cols, &t, err));
    w->type = t.type;
    w->rows = rows;
    w->cols = cols;
    return aligned_data(m, &t, &w->data, err);
}

/* A vector (norm weight or bias), converted to an f32 copy. */
static um_status bind_vector(um_model *m, const char *name, int64_t n, float **out, um_error *err) {
    um_tensor_ref t;
    UM_TRY(take(m, name, 1, n, 0, &t, err));
    float *v = um_aligned_alloc((size_t)n * sizeof(float));
    if (!v)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    UM_TRY(own(m, v, err));
    um_weight w = {t.type, 1, n, NULL, false};
    UM_TRY(aligned_data(m, &t, &w.data, err));
    um_weight_row_f32(&w, 0, v);
    *out = v;
    return UM_OK;
}

static um_status bind_linear(um_model *m, const char *prefix, const char *name, int64_t rows, int64_t cols,
                             bool has_bias, um_weight *w, float **bias, um_error *err) {
    char key[256];
    snprintf(key, sizeof key, "%s.%s.weight", prefix, name);
    UM_TRY(bind_matrix(m, key, rows, cols, w, err));
    *bias = NULL;
    if (!has_bias)
        return UM_OK;
    snprintf(key, sizeof key, "%s.%s.bias", prefix, name);
    return bind_vector(m, key, rows, bias, err);
}

static um_status bind_layer(um_model *m, int i, um_error *err) {
    const um_hparams *hp = &m->hp;
    um_layer *l = &m->layers[i];
    char p[128], key[256];
    int64_t d = hp->d_model, kv = (int64_t)hp->n_kv_heads * hp->head_dim, ff = hp->d_ff;
    snprintf(p, sizeof p, "model.transformer.blocks.%d", i);
    snprintf(key, sizeof key, "%s.attn_norm.weight", p);
    UM_TRY(bind_vector(m, key, d, &l->attn_norm, err));
    snprintf(key, sizeof key, "%s.ff_norm.weight", p);
    UM_TRY(bind_vector(m, key, d, &l->ffn_norm, err));
    UM_TRY(bind_linear(m, p, "q_proj", d, d, hp->qkv_bias, &l->wq, &l->bq, err));
    UM_TRY(bind_linear(m, p, "k_proj", kv, d, hp->qkv_bias, &l->wk, &l->bk, err));
    UM_TRY(bind_linear(m, p, "v_proj", kv, d, hp->qkv_bias, &l->wv, &l->bv, err));
    UM_TRY(bind_linear(m, p, "attn_out", d, d, hp->bias, &l->wo, &l->bo, err));
    UM_TRY(bind_linear(m, p, "ff_proj", ff, d, hp->bias, &l->w_gate, &l->b_gate, err));
    UM_TRY(bind_linear(m, p, "up_proj", ff, d, hp->bias, &l->w_up, &l->b_up, err));
    UM_TRY(bind_linear(m, p, "ff_out", d, ff, hp->bias, &l->w_down, &l->b_down, err));
    return UM_OK;
}

/* Matrix i of the forward's 7 per layer and the output head (i == 7 * n_layers). */
static um_weight *matrix_at(um_model *m, int i) {
    if (i == 7 * m->hp.n_layers)
        return &m->output;
    um_layer *l = &m->layers[i / 7];
    um_weight *ws[7] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
    return ws[i % 7];
}

/* Names the weight type ("q8_0", or "mixed"), and marks the F16 matrices of
 * a quantized file for the int8 path (um_weight.q8_0_when_reduced): they are
 * what llama.cpp's quantizer (and unmask convert) leave F16 because their
 * rows are not whole blocks, in a file whose user chose quantized weights. */
static void classify_weights(um_model *m) {
    int n = 7 * m->hp.n_layers + 1;
    um_dtype t = m->tok_embd.type;
    bool mixed = false, quantized = um_dtype_block_elems(t) > 1;
    for (int i = 0; i < n; i++) {
        mixed |= matrix_at(m, i)->type != t;
        quantized |= um_dtype_block_elems(matrix_at(m, i)->type) > 1;
    }
    for (int i = 0; i < n; i++)
        matrix_at(m, i)->q8_0_when_reduced = quantized && matrix_at(m, i)->type == UM_F16;
    snprintf(m->weight_type, sizeof m->weight_type, "%s", mixed ? "mixed" : um_dtype_name(t));
    for (char *c = m->weight_type; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
}

/* Binds every tensor the hyper-parameters call for, then insists nothing
 * else is in the file. */
static um_status bind_all(um_model *m, um_error *err) {
    const um_hparams *hp = &m->hp;
    snprintf(m->arch, sizeof m->arch, "llada");
    UM_TRY(bind_matrix(m, "model.transformer.wte.weight", hp->n_vocab, hp->d_model, &m->tok_embd, err));
    m->layers = calloc((size_t)hp->n_layers, sizeof *m->layers);
    if (!m->layers)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < hp->n_layers; i++)
        UM_TRY(bind_layer(m, i, err));
    UM_TRY(bind_vector(m, "model.transformer.ln_f.weight", hp->d_model, &m->out_norm, err));
    if (hp->tied) {
        m->output = m->tok_embd;
    } else {
        UM_TRY(bind_linear(m, "model.transformer", "ff_out", hp->n_vocab, hp->d_model, hp->bias, &m->output,
                           &m->b_output, err));
    }
    UM_TRY(um_weights_check_all_taken(&m->weights, err));
    classify_weights(m);
    return UM_OK;
}

um_status um_llada_load_hf(um_model *m, const char *dir, um_error *err) {
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    cJSON *cfg;
    UM_TRY(um_json_load(cfg_path, CONFIG_MAX_BYTES, &cfg, err));
    um_status s = um_llada_parse_hparams(cfg, cfg_path, &m->hp, err);
    cJSON_Delete(cfg);
    UM_TRY(s);
    if (m->hp.eot_id < 0)
        m->hp.eot_id = find_eot_id(dir);
    UM_TRY(um_weights_open_hf(&m->weights, dir, err));
    return bind_all(m, err);
}

um_status um_llada_load_gguf(um_model *m, const char *path, um_error *err) {
    UM_TRY(um_weights_open_gguf(&m->weights, path, um_llada_gguf_name, err));
    UM_TRY(um_llada_hparams_from_gguf(&m->weights.gguf, &m->hp, err));
    return bind_all(m, err);
}

/* ---- forward pass --------------------------------------------------------- */

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
