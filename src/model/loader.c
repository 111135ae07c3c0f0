/* The one model loader (loader.h): hyper-parameters, then every tensor the
 * architecture's block calls for, found by the row's name templates. */
#include "model/loader.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "kernels/quant.h"

#define CONFIG_MAX_BYTES (1u << 20)

/* ---- hyper-parameters -------------------------------------------------------- */

static um_status load_config(const um_arch *a, const char *dir, um_hparams *hp, um_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg;
    UM_TRY(um_json_load(path, CONFIG_MAX_BYTES, &cfg, err));
    um_status s = um_arch_parse_config(a, cfg, path, um_arch_hf_mask_id(a, dir), hp, err);
    cJSON_Delete(cfg);
    UM_TRY(s);
    if (hp->eot_id < 0) {
        int eot = um_hf_added_token(dir, a->eot_token);
        hp->eot_id = eot < hp->n_vocab ? eot : -1;
    }
    if (hp->eos_id < 0) {
        int eos = um_hf_added_token(dir, a->eos_token);
        eos = eos < 0 && a->default_eos_id > 0 ? a->default_eos_id : eos;
        hp->eos_id = eos < hp->n_vocab ? eos : -1;
    }
    return UM_OK;
}

/* ---- binding tensors ---------------------------------------------------------- */

typedef struct {
    um_model *m;
    const um_arch *arch;
} loader;

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
static um_status missing_tensor(const loader *L, const char *name, um_error *err) {
    const um_weights *w = &L->m->weights;
    char stored[192];
    if (w->is_gguf && um_arch_gguf_name(L->arch, name, stored, sizeof stored, NULL))
        return um_fail(err, UM_ERR_FORMAT, "%s: missing tensor '%s' (Hugging Face name %s)", um_weights_source(w),
                       stored, name);
    return um_fail(err, UM_ERR_FORMAT, "%s: missing tensor '%s'", um_weights_source(w), name);
}

/* Checks a found tensor's type and shape (want: n_dims sizes, outermost
 * first). Matrices (and stacks of them) may be F32, BF16, F16 or a llama.cpp
 * block type; vectors (norms, biases) must be floats. */
static um_status check_tensor(loader *L, const um_tensor_ref *t, int n_dims, const int64_t *want, um_error *err) {
    um_model *m = L->m;
    bool gguf = m->weights.is_gguf;
    bool ok_type = is_float_type(t->type) || (n_dims >= 2 && um_dtype_block_elems(t->type) > 1 &&
                                              t->type >= UM_Q8_0 && t->type < UM_DTYPE_COUNT);
    if (!ok_type)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s; %s must be F32, BF16 or F16%s",
                       t->file, t->name, um_dtype_name(t->type), n_dims >= 2 ? "weights" : "vectors",
                       n_dims >= 2 ? " or a llama.cpp quantized type" : "");
    bool same = t->n_dims == n_dims;
    int64_t numel = 1;
    for (int i = 0; i < n_dims; i++) {
        same &= same && t->shape[i] == want[i];
        numel *= want[i];
    }
    if (!same) {
        char got[128], exp[128];
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' has shape %s, %s %s%s", t->file, t->name,
                       shape_str(t->shape, t->n_dims, gguf, got, sizeof got),
                       gguf ? "the GGUF metadata implies" : "config.json implies",
                       shape_str(want, n_dims, gguf, exp, sizeof exp), gguf ? " (innermost dimension first)" : "");
    }
    m->n_params += numel;
    return UM_OK;
}

/* Finds name (a Hugging Face name) and checks it: a vector of d0, or a
 * [d0, d1] matrix. */
static um_status take(loader *L, const char *name, int n_dims, int64_t d0, int64_t d1, um_tensor_ref *t,
                      um_error *err) {
    if (!um_weights_take(&L->m->weights, name, t))
        return missing_tensor(L, name, err);
    int64_t want[2] = {d0, d1};
    return check_tensor(L, t, n_dims, want, err);
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

/* The checkpoint name of role (layer i) with suffix: the loader asks the
 * weights by Hugging Face name, which maps to the GGUF one. */
static const char *name_of(const loader *L, um_tensor_role role, int i, const char *suffix, char *buf, size_t n) {
    if (!um_arch_tensor_name(L->arch->hf, role, i, suffix, buf, n))
        snprintf(buf, n, "(role %d of %s has no name)", (int)role, L->arch->name);
    return buf;
}

/* A weight matrix, used in place from the map (copied only when misaligned). */
static um_status bind_matrix(loader *L, um_tensor_role role, int i, int64_t rows, int64_t cols, um_weight *w,
                             um_error *err) {
    char name[192];
    um_tensor_ref t;
    UM_TRY(take(L, name_of(L, role, i, "weight", name, sizeof name), 2, rows, cols, &t, err));
    w->type = t.type;
    w->rows = rows;
    w->cols = cols;
    return aligned_data(L->m, &t, &w->data, err);
}

/* A vector (norm weight or bias), converted to an f32 copy. */
static um_status bind_vector(loader *L, um_tensor_role role, int i, const char *suffix, int64_t n, float **out,
                             um_error *err) {
    char name[192];
    um_tensor_ref t;
    UM_TRY(take(L, name_of(L, role, i, suffix, name, sizeof name), 1, n, 0, &t, err));
    float *v = um_aligned_alloc((size_t)n * sizeof(float));
    if (!v)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    UM_TRY(own(L->m, v, err));
    um_weight w = {t.type, 1, n, NULL, false, NULL};
    UM_TRY(aligned_data(L->m, &t, &w.data, err));
    um_weight_row_f32(&w, 0, v);
    *out = v;
    return UM_OK;
}

static um_status bind_linear(loader *L, um_tensor_role role, int i, int64_t rows, int64_t cols, bool has_bias,
                             um_weight *w, float **bias, um_error *err) {
    UM_TRY(bind_matrix(L, role, i, rows, cols, w, err));
    *bias = NULL;
    return has_bias ? bind_vector(L, role, i, "bias", rows, bias, err) : UM_OK;
}

/* The router, as an f32 copy (small; llama.cpp's files keep it F32): the
 * choice of experts is taken in f32 whatever the arithmetic of the rest. */
static um_status bind_router(loader *L, int i, um_weight *w, um_error *err) {
    const um_hparams *hp = &L->m->hp;
    UM_TRY(bind_matrix(L, UM_T_ROUTER, i, hp->n_expert, hp->d_model, w, err));
    float *f = um_aligned_alloc((size_t)hp->n_expert * (size_t)hp->d_model * sizeof *f);
    if (!f)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    UM_TRY(own(L->m, f, err));
    for (int r = 0; r < hp->n_expert; r++)
        um_weight_row_f32(w, r, f + (size_t)r * hp->d_model);
    *w = (um_weight){UM_F32, hp->n_expert, hp->d_model, f, false, NULL};
    return UM_OK;
}

/* Layer i's experts of one role, [rows, cols] each: one tensor per expert in
 * a checkpoint, views into the one 3-D tensor of a GGUF file. */
static um_status bind_experts(loader *L, um_tensor_role role, int i, int64_t rows, int64_t cols, um_weight **out,
                              um_error *err) {
    um_model *m = L->m;
    int n = m->hp.n_expert;
    um_weight *w = calloc((size_t)n, sizeof *w);
    if (!w)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    UM_TRY(own(m, w, err));
    *out = w;
    char name[192];
    um_tensor_ref t;
    const void *data;
    if (!m->weights.is_gguf) {
        for (int e = 0; e < n; e++) {
            um_arch_expert_name(L->arch->hf, role, i, e, "weight", name, sizeof name);
            UM_TRY(take(L, name, 2, rows, cols, &t, err));
            UM_TRY(aligned_data(m, &t, &data, err));
            w[e] = (um_weight){t.type, rows, cols, data, false, NULL};
        }
        return UM_OK;
    }
    um_arch_tensor_name(L->arch->gguf, role, i, "weight", name, sizeof name);
    if (!um_weights_take_stored(&m->weights, name, &t))
        return um_fail(err, UM_ERR_FORMAT, "%s: missing tensor '%s'", um_weights_source(&m->weights), name);
    int64_t want[3] = {n, rows, cols};
    UM_TRY(check_tensor(L, &t, 3, want, err));
    UM_TRY(aligned_data(m, &t, &data, err));
    size_t per = um_row_bytes(t.type, cols) * (size_t)rows;
    for (int e = 0; e < n; e++)
        w[e] = (um_weight){t.type, rows, cols, (const char *)data + (size_t)e * per, false, NULL};
    return UM_OK;
}

/* The mixture-of-experts FFN: the router (and its expert bias), every
 * expert's three matrices, and the shared expert as the layer's dense FFN. */
static um_status bind_moe(loader *L, int i, um_error *err) {
    const um_hparams *hp = &L->m->hp;
    um_layer *l = &L->m->layers[i];
    um_moe_weights *moe = &l->moe;
    int64_t d = hp->d_model, ff = hp->d_ff_exp, sh = hp->d_ff_shexp;
    moe->n_expert = hp->n_expert;
    moe->n_used = hp->n_expert_used;
    moe->route = hp->route;
    UM_TRY(bind_router(L, i, &moe->router, err));
    if (hp->expert_bias) {
        float *bias;
        UM_TRY(bind_vector(L, UM_T_EXP_BIAS, i, "bias", hp->n_expert, &bias, err));
        moe->bias = bias;
    }
    if (sh > 0) {
        UM_TRY(bind_matrix(L, UM_T_GATE_SHEXP, i, sh, d, &l->w_gate, err));
        UM_TRY(bind_matrix(L, UM_T_UP_SHEXP, i, sh, d, &l->w_up, err));
        UM_TRY(bind_matrix(L, UM_T_DOWN_SHEXP, i, d, sh, &l->w_down, err));
    }
    UM_TRY(bind_experts(L, UM_T_GATE_EXP, i, ff, d, &moe->gate, err));
    UM_TRY(bind_experts(L, UM_T_UP_EXP, i, ff, d, &moe->up, err));
    return bind_experts(L, UM_T_DOWN_EXP, i, d, ff, &moe->down, err);
}

/* A layer with a dense FFN: every layer of a dense model, the first ones of some MoE models (LLaDA2). */
static bool is_dense_layer(const um_hparams *hp, int i) { return hp->ffn == UM_FFN_DENSE || i < hp->n_dense_layers; }

/* q, k and v from one stacked matrix (LLaDA2's query_key_value): views of its rows. */
static um_status bind_qkv(loader *L, int i, um_error *err) {
    const um_hparams *hp = &L->m->hp;
    um_layer *l = &L->m->layers[i];
    int64_t d = hp->d_model, q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    um_weight all;
    UM_TRY(bind_matrix(L, UM_T_QKV, i, q + 2 * kv, d, &all, err));
    size_t row = um_row_bytes(all.type, d);
    l->wq = (um_weight){all.type, q, d, all.data, false, NULL};
    l->wk = (um_weight){all.type, kv, d, (const char *)all.data + (size_t)q * row, false, NULL};
    l->wv = (um_weight){all.type, kv, d, (const char *)all.data + (size_t)(q + kv) * row, false, NULL};
    if (hp->qkv_bias)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: q/k/v biases with a fused query_key_value are not supported",
                       um_weights_source(&L->m->weights));
    return UM_OK;
}

/* A block: two norms, attention's four projections (and QK-norm weights),
 * the gated FFN's three matrices or the experts. */
static um_status bind_layer(loader *L, int i, um_error *err) {
    const um_hparams *hp = &L->m->hp;
    um_layer *l = &L->m->layers[i];
    int64_t d = hp->d_model, q = (int64_t)hp->n_heads * hp->head_dim, kv = (int64_t)hp->n_kv_heads * hp->head_dim;
    int64_t ff = hp->d_ff;
    const struct {
        um_tensor_role role;
        int64_t rows, cols;
        bool bias;
        um_weight *w;
        float **b;
    } linear[] = {
        {UM_T_Q, q, d, hp->qkv_bias, &l->wq, &l->bq},           {UM_T_K, kv, d, hp->qkv_bias, &l->wk, &l->bk},
        {UM_T_V, kv, d, hp->qkv_bias, &l->wv, &l->bv},          {UM_T_ATTN_OUT, d, q, hp->bias, &l->wo, &l->bo},
        {UM_T_GATE, ff, d, hp->bias, &l->w_gate, &l->b_gate}, {UM_T_UP, ff, d, hp->bias, &l->w_up, &l->b_up},
        {UM_T_DOWN, d, ff, hp->bias, &l->w_down, &l->b_down},
    };
    UM_TRY(bind_vector(L, UM_T_ATTN_NORM, i, "weight", d, &l->attn_norm, err));
    UM_TRY(bind_vector(L, UM_T_FFN_NORM, i, "weight", d, &l->ffn_norm, err));
    if (hp->qk_norm) {
        UM_TRY(bind_vector(L, UM_T_Q_NORM, i, "weight", hp->head_dim, &l->q_norm, err));
        UM_TRY(bind_vector(L, UM_T_K_NORM, i, "weight", hp->head_dim, &l->k_norm, err));
    }
    bool dense = is_dense_layer(hp, i), fused = L->arch->hf->name[UM_T_QKV] != NULL;
    if (fused)
        UM_TRY(bind_qkv(L, i, err));
    for (size_t k = fused ? 3 : 0; k < (dense ? sizeof linear / sizeof *linear : 4); k++)
        UM_TRY(bind_linear(L, linear[k].role, i, linear[k].rows, linear[k].cols, linear[k].bias, linear[k].w,
                           linear[k].b, err));
    return dense ? UM_OK : bind_moe(L, i, err);
}

/* The matrices the forward multiplies by (the router aside: an f32 copy)
 * and the output head, into out (when not NULL); returns their count. */
static int matrices(um_model *m, um_weight **out) {
    int n = 0;
    for (int i = 0; i < m->hp.n_layers; i++) {
        um_layer *l = &m->layers[i];
        um_weight *attn[] = {&l->wq, &l->wk, &l->wv, &l->wo}, *dense[] = {&l->w_gate, &l->w_up, &l->w_down};
        for (int k = 0; k < 4; k++, n++)
            if (out)
                out[n] = attn[k];
        for (int k = 0; (is_dense_layer(&m->hp, i) || m->hp.d_ff_shexp > 0) && k < 3; k++, n++)
            if (out)
                out[n] = dense[k];
        for (int e = 0; !is_dense_layer(&m->hp, i) && e < m->hp.n_expert; e++, n += 3)
            if (out) {
                out[n] = &l->moe.gate[e];
                out[n + 1] = &l->moe.up[e];
                out[n + 2] = &l->moe.down[e];
            }
    }
    if (out)
        out[n] = &m->output;
    return n + 1;
}

/* matrices() as a malloc'd list of *n; NULL when out of memory. */
static um_weight **matrix_list(um_model *m, int *n) {
    *n = matrices(m, NULL);
    um_weight **w = malloc((size_t)*n * sizeof *w);
    if (w)
        matrices(m, w);
    return w;
}

/* Names the weight type ("q8_0", or "mixed"), and marks the F16 matrices of
 * a quantized file for the int8 path (um_weight.q8_0_when_reduced): they are
 * what llama.cpp's quantizer (and unmask convert) leave F16 because their
 * rows are not whole blocks, in a file whose user chose quantized weights. */
static um_status classify_weights(um_model *m, um_error *err) {
    int n;
    um_weight **w = matrix_list(m, &n);
    if (!w)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_dtype t = m->tok_embd.type;
    bool mixed = false, quantized = um_dtype_block_elems(t) > 1;
    for (int i = 0; i < n; i++) {
        mixed |= w[i]->type != t;
        quantized |= um_dtype_block_elems(w[i]->type) > 1;
    }
    for (int i = 0; i < n; i++)
        w[i]->q8_0_when_reduced = quantized && w[i]->type == UM_F16;
    free(w);
    snprintf(m->weight_type, sizeof m->weight_type, "%s", mixed ? "mixed" : um_dtype_name(t));
    for (char *c = m->weight_type; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    return UM_OK;
}

/* Binds every tensor the hyper-parameters call for, then insists nothing
 * else is in the file. */
static um_status bind_all(loader *L, um_error *err) {
    um_model *m = L->m;
    const um_hparams *hp = &m->hp;
    UM_TRY(bind_matrix(L, UM_T_EMBD, 0, hp->n_vocab, hp->d_model, &m->tok_embd, err));
    m->layers = calloc((size_t)hp->n_layers, sizeof *m->layers);
    if (!m->layers)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < hp->n_layers; i++)
        UM_TRY(bind_layer(L, i, err));
    UM_TRY(bind_vector(L, UM_T_OUT_NORM, 0, "weight", hp->d_model, &m->out_norm, err));
    if (hp->tied)
        m->output = m->tok_embd;
    else
        UM_TRY(bind_linear(L, UM_T_OUTPUT, 0, hp->n_vocab, hp->d_model, hp->bias, &m->output, &m->b_output, err));
    UM_TRY(um_weights_check_all_taken(&m->weights, err));
    return classify_weights(m, err);
}

size_t um_model_packed_size(um_model *m, const um_exec *ex) {
    int n;
    um_weight **w = matrix_list(m, &n);
    if (!w)
        return SIZE_MAX;
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += um_weight_packed_size(w[i], ex);
    free(w);
    return bytes;
}

um_status um_model_repack(um_model *m, const um_exec *ex, um_error *err) {
    int n;
    um_weight **w = matrix_list(m, &n);
    if (!w)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    m->repacked = true;
    for (int i = 0; i < n; i++) {
        size_t bytes;
        if (!um_weight_pack(w[i], ex, &bytes)) {
            free(w);
            return um_fail(err, UM_ERR_NOMEM,
                           "out of memory packing the weights for the kernels (%.0f MiB packed so far); "
                           "--no-repack multiplies them as stored",
                           (double)m->repacked_bytes / (1 << 20));
        }
        m->repacked_bytes += bytes;
        /* the products read the panels now: the file's pages of the
         * matrix can go (a mapped file's are read again if ever needed) */
        if (bytes)
            um_weights_release(&m->weights, w[i]->data, um_row_bytes(w[i]->type, w[i]->cols) * (size_t)w[i]->rows);
    }
    free(w);
    return UM_OK;
}

void um_model_unpack(um_model *m) {
    if (!m->repacked)
        return;
    int n;
    um_weight **w = matrix_list(m, &n);
    if (!w)
        return; /* cannot happen in practice; the panels then leak with the model */
    for (int i = 0; i < n; i++)
        um_weight_unpack(w[i]);
    free(w);
    m->repacked = false;
}

um_status um_model_load(um_model *m, const um_arch *a, const char *path, bool is_gguf, um_error *err) {
    snprintf(m->arch, sizeof m->arch, "%s", a->name);
    if (is_gguf) {
        UM_TRY(um_weights_open_gguf(&m->weights, path, a, err));
        UM_TRY(um_arch_read_gguf(a, &m->weights.gguf, &m->hp, err));
    } else {
        UM_TRY(load_config(a, path, &m->hp, err));
        UM_TRY(um_weights_open_hf(&m->weights, path, err));
    }
    loader L = {m, a};
    return bind_all(&L, err);
}
