/* LLaDA (ML-GSAI/LLaDA, modeling_llada.py): its config.json and the
 * binding of its tensors. The forward pass is model/forward.c. */
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

