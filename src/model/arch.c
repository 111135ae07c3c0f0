/* The architecture table, tensor-name templates, the GGUF key list and the
 * one hyper-parameter validator (see arch.h). */
#include "model/arch.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"

const um_arch *const um_archs[] = {&um_arch_llada, &um_arch_dream, &um_arch_llada_moe, &um_arch_llada2, NULL};

const um_arch *um_arch_by_hf_name(const char *name) {
    for (int i = 0; name && um_archs[i]; i++)
        for (const char *const *n = um_archs[i]->hf_names; *n; n++)
            if (strcmp(*n, name) == 0)
                return um_archs[i];
    return NULL;
}

const um_arch *um_arch_by_gguf_name(const char *name) {
    for (int i = 0; name && um_archs[i]; i++)
        if (strcmp(um_archs[i]->gguf_name, name) == 0)
            return um_archs[i];
    return NULL;
}

const char *um_arch_list(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; um_archs[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", um_archs[i]->name);
    return buf;
}

um_status um_arch_find(const char *name, bool is_gguf, const char *file, const um_arch **out, um_error *err) {
    *out = is_gguf ? um_arch_by_gguf_name(name) : um_arch_by_hf_name(name);
    if (*out)
        return UM_OK;
    char list[256];
    return um_fail(err, UM_ERR_UNSUPPORTED, "%s: unsupported architecture '%s' (supported: %s)", file, name,
                   um_arch_list(list, sizeof list));
}

/* model_type must name a row when present; architectures[] then picks
 * among rows: LLaDA-MoE's model_type is dense LLaDA's "llada", and its class
 * name (LLaDAMoEModelLM) is what tells them apart. */
um_status um_arch_from_config(const cJSON *cfg, const char *file, const um_arch **out, um_error *err) {
    const char *type = um_json_get_string(cfg, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), *a;
    if (type)
        UM_TRY(um_arch_find(type, false, file, out, err));
    if (!cJSON_IsArray(archs))
        archs = NULL;
    cJSON_ArrayForEach(a, archs) {
        const um_arch *row = cJSON_IsString(a) ? um_arch_by_hf_name(a->valuestring) : NULL;
        if (row) {
            *out = row;
            return UM_OK;
        }
        if (!type && cJSON_IsString(a))
            type = a->valuestring;
    }
    if (!type)
        return um_fail(err, UM_ERR_FORMAT, "%s: no 'model_type' or 'architectures' to say what model this is", file);
    return um_arch_find(type, false, file, out, err);
}

/* ---- names ------------------------------------------------------------------ */

const um_tensor_names um_llama_cpp_tensor_names = {.name = {
    [UM_T_EMBD] = "token_embd",
    [UM_T_OUT_NORM] = "output_norm",
    [UM_T_OUTPUT] = "output",
    [UM_T_ATTN_NORM] = "blk.%d.attn_norm",
    [UM_T_Q] = "blk.%d.attn_q",
    [UM_T_K] = "blk.%d.attn_k",
    [UM_T_V] = "blk.%d.attn_v",
    [UM_T_ATTN_OUT] = "blk.%d.attn_output",
    [UM_T_FFN_NORM] = "blk.%d.ffn_norm",
    [UM_T_GATE] = "blk.%d.ffn_gate",
    [UM_T_UP] = "blk.%d.ffn_up",
    [UM_T_DOWN] = "blk.%d.ffn_down",
    [UM_T_Q_NORM] = "blk.%d.attn_q_norm",
    [UM_T_K_NORM] = "blk.%d.attn_k_norm",
    [UM_T_ROUTER] = "blk.%d.ffn_gate_inp",
    [UM_T_GATE_EXP] = "blk.%d.ffn_gate_exps",
    [UM_T_UP_EXP] = "blk.%d.ffn_up_exps",
    [UM_T_DOWN_EXP] = "blk.%d.ffn_down_exps",
    [UM_T_QKV] = "blk.%d.attn_qkv",
    [UM_T_EXP_BIAS] = "blk.%d.exp_probs_b",
    [UM_T_GATE_SHEXP] = "blk.%d.ffn_gate_shexp",
    [UM_T_UP_SHEXP] = "blk.%d.ffn_up_shexp",
    [UM_T_DOWN_SHEXP] = "blk.%d.ffn_down_shexp",
}};

/* tmpl with its one conversion spec ("%d" or "%s") replaced by value. */
static bool expand(const char *tmpl, const char *spec, const char *value, char *out, size_t n) {
    const char *at = strstr(tmpl, spec);
    int len = at ? snprintf(out, n, "%.*s%s%s", (int)(at - tmpl), tmpl, value, at + 2) : snprintf(out, n, "%s", tmpl);
    return len >= 0 && (size_t)len < n;
}

bool um_arch_tensor_name(const um_tensor_names *t, um_tensor_role role, int layer, const char *suffix, char *out,
                         size_t n) {
    char num[16], stem[192];
    const char *tmpl = t->name[role];
    suffix = t->suffix[role] ? t->suffix[role] : suffix;
    snprintf(num, sizeof num, "%d", layer);
    if (!tmpl || !expand(tmpl, "%d", num, stem, sizeof stem))
        return false;
    int len = snprintf(out, n, "%s.%s", stem, suffix);
    return len >= 0 && (size_t)len < n;
}

bool um_arch_expert_name(const um_tensor_names *t, um_tensor_role role, int layer, int expert, const char *suffix,
                         char *out, size_t n) {
    char num[16], stem[192], full[192];
    const char *tmpl = t->name[role];
    snprintf(num, sizeof num, "%d", layer);
    if (!tmpl || !expand(tmpl, "%d", num, stem, sizeof stem))
        return false;
    snprintf(num, sizeof num, "%d", expert);
    if (!expand(stem, "%d", num, full, sizeof full))
        return false;
    int len = snprintf(out, n, "%s.%s", full, suffix);
    return len >= 0 && (size_t)len < n;
}

/* Whether stem (len bytes) is tmpl with a layer number for its %d: digits
 * without a leading zero, so each name maps to one name and back. */
static bool match(const char *tmpl, const char *stem, size_t len, int *layer) {
    const char *at = strstr(tmpl, "%d");
    if (!at)
        return strlen(tmpl) == len && memcmp(tmpl, stem, len) == 0;
    size_t pre = (size_t)(at - tmpl), post = strlen(at + 2), digits = 0;
    if (len < pre + post + 1 || memcmp(tmpl, stem, pre) != 0 || memcmp(at + 2, stem + len - post, post) != 0)
        return false;
    long v = 0;
    for (size_t i = pre; i < len - post; i++, digits++) {
        if (stem[i] < '0' || stem[i] > '9' || digits >= 6)
            return false;
        v = v * 10 + (stem[i] - '0');
    }
    if (digits > 1 && stem[pre] == '0')
        return false;
    *layer = (int)v;
    return true;
}

bool um_arch_hf_expert(const um_arch *a, const char *name, um_tensor_role *role, int *layer, int *expert) {
    const char *dot = strrchr(name, '.');
    if (!dot || strcmp(dot, ".weight") != 0)
        return false;
    for (int r = UM_T_GATE_EXP; r <= UM_T_DOWN_EXP; r++) {
        const char *tmpl = a->hf->name[r], *at = tmpl ? strstr(tmpl, "%d") : NULL;
        size_t pre = at ? (size_t)(at - tmpl) : 0;
        if (!at || strncmp(name, tmpl, pre) != 0)
            continue;
        const char *p = name + pre, *q = p;
        while (q < dot && *q >= '0' && *q <= '9' && q - p < 6)
            q++;
        /* the layer, then the rest of the template with its one %d (the expert) */
        if (q == p || (q - p > 1 && *p == '0') || !match(at + 2, q, (size_t)(dot - q), expert))
            continue;
        *layer = atoi(p);
        *role = (um_tensor_role)r;
        return true;
    }
    return false;
}

/* name in the from vocabulary, rewritten in the to vocabulary. */
static bool map_name(const um_tensor_names *from, const um_tensor_names *to, const char *name, char *out, size_t n,
                     um_tensor_role *role) {
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    bool plain = strcmp(dot, ".weight") == 0 || strcmp(dot, ".bias") == 0;
    for (int r = 0; r < UM_T_COUNT; r++) {
        int layer = 0;
        const char *own = from->suffix[r];
        if (own ? strcmp(dot + 1, own) != 0 : !plain)
            continue;
        if (!from->name[r] || !to->name[r] || !match(from->name[r], name, (size_t)(dot - name), &layer))
            continue;
        if (role)
            *role = (um_tensor_role)r;
        /* a role with a suffix of its own is a bias (the only kind there is) */
        return um_arch_tensor_name(to, (um_tensor_role)r, layer, own ? "bias" : dot + 1, out, n);
    }
    return false;
}

bool um_arch_gguf_name(const um_arch *a, const char *hf_name, char *out, size_t n, um_tensor_role *role) {
    return map_name(a->hf, a->gguf, hf_name, out, n, role);
}

bool um_arch_hf_name(const um_arch *a, const char *gguf_name, char *out, size_t n, um_tensor_role *role) {
    return map_name(a->gguf, a->hf, gguf_name, out, n, role);
}

int64_t um_rope_pairs_source_row(int64_t r, int head_dim) {
    /* The converter reshapes each head's rows as (2, head_dim/2) and swaps
     * the axes: GGUF row 2i + j of a head is checkpoint row j*head_dim/2 + i. */
    int64_t head = r / head_dim, within = r % head_dim, half = head_dim / 2;
    return head * head_dim + (within % 2) * half + within / 2;
}

float um_f32(double v) {
    if (v > FLT_MAX)
        return INFINITY;
    if (v < -FLT_MAX)
        return -INFINITY;
    return (float)v;
}

/* ---- validation ---------------------------------------------------------------- */

/* LLaDA2's router groups, dense layers and shared expert. */
static um_status validate_routing(const um_hparams *hp, const um_hparam_names *nm, const char *src, um_error *err) {
    const um_moe_router *r = &hp->route;
    if (hp->n_dense_layers < 0 || hp->n_dense_layers > hp->n_layers)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [0, %s %d]", src, nm->n_dense_layers,
                       hp->n_dense_layers, nm->n_layers, hp->n_layers);
    if (hp->d_ff_shexp < 0 || hp->d_ff_shexp > UM_MAX_D_FF)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [0, %d]", src, nm->d_ff_shexp, hp->d_ff_shexp,
                       UM_MAX_D_FF);
    if (r->n_group == 0 && r->n_group_used == 0)
        return UM_OK;
    if (r->n_group < 1 || r->n_group > hp->n_expert || hp->n_expert % r->n_group != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d does not divide %s %d into groups", src, nm->n_group,
                       r->n_group, nm->n_expert, hp->n_expert);
    if (r->n_group_used < 1 || r->n_group_used > r->n_group)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [1, %s %d]", src, nm->n_group_used,
                       r->n_group_used, nm->n_group, r->n_group);
    int allowed = r->n_group_used * (hp->n_expert / r->n_group);
    if (hp->n_expert_used > allowed)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d exceeds the %d experts that %s %d of %d groups allow", src,
                       nm->n_expert_used, hp->n_expert_used, allowed, nm->n_group_used, r->n_group_used, r->n_group);
    return UM_OK;
}

static um_status validate_experts(const um_hparams *hp, const um_hparam_names *nm, const char *src, um_error *err) {
    if (hp->n_expert < 1 || hp->n_expert > UM_MOE_MAX_EXPERTS)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [1, %d]", src, nm->n_expert, hp->n_expert,
                       UM_MOE_MAX_EXPERTS);
    if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d does not fit %s %d (it must be in [1, %d])", src,
                       nm->n_expert_used, hp->n_expert_used, nm->n_expert, hp->n_expert, hp->n_expert);
    if (hp->d_ff_exp < 1 || hp->d_ff_exp > UM_MAX_D_FF)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [1, %d]", src, nm->d_ff_exp, hp->d_ff_exp,
                       UM_MAX_D_FF);
    if (!(hp->route.scale > 0 && hp->route.scale <= 1e6f))
        return um_fail(err, UM_ERR_FORMAT, "%s: the experts' weight scale %g is outside (0, 1e6]", src,
                       (double)hp->route.scale);
    return validate_routing(hp, nm, src, err);
}

um_status um_hparams_validate(const um_hparams *hp, const um_hparam_names *nm, const char *src, um_error *err) {
    const struct {
        const char *name;
        int v, hi;
    } ranges[] = {{nm->n_layers, hp->n_layers, UM_MAX_LAYERS}, {nm->d_model, hp->d_model, UM_MAX_D_MODEL},
                  {nm->n_heads, hp->n_heads, UM_MAX_HEADS},    {nm->n_kv_heads, hp->n_kv_heads, UM_MAX_HEADS},
                  {nm->d_ff, hp->d_ff, UM_MAX_D_FF},          {nm->n_vocab, hp->n_vocab, UM_MAX_VOCAB},
                  {nm->max_seq, hp->max_seq, UM_MAX_SEQ}};
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (ranges[i].v < 1 || ranges[i].v > ranges[i].hi)
            return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [1, %d]", src, ranges[i].name, ranges[i].v,
                           ranges[i].hi);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s %d is not a multiple of %s %d", src, nm->n_heads, hp->n_heads,
                       nm->n_kv_heads, hp->n_kv_heads);
    /* RoPE rotates pairs of a head's values */
    if (hp->d_model % hp->n_heads != 0 || (hp->d_model / hp->n_heads) % 2 != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s %d must split into %s %d heads of even size", src, nm->d_model,
                       hp->d_model, nm->n_heads, hp->n_heads);
    /* an f32 epsilon below the normal range is lost in the variance's sum;
       RoPE's frequencies are theta^(-2i/d): a theta of 1 or less makes them
       grow instead of fall, and infinity makes them NaN */
    if (!(hp->norm_eps >= FLT_MIN && hp->norm_eps < 1))
        return um_fail(err, UM_ERR_FORMAT, "%s: %s must be in (0, 1) and at least %g as f32, got %g", src,
                       nm->norm_eps, (double)FLT_MIN, (double)hp->norm_eps);
    if (!(hp->rope_theta > 1 && hp->rope_theta <= FLT_MAX))
        return um_fail(err, UM_ERR_FORMAT, "%s: %s must be greater than 1 and at most %g, got %g", src, nm->rope_theta,
                       (double)FLT_MAX, (double)hp->rope_theta);
    if (hp->vocab_size > hp->n_vocab)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s %d is smaller than %s %d", src, nm->n_vocab, hp->n_vocab,
                       nm->vocab_size, hp->vocab_size);
    if (hp->mask_id < 0 || hp->mask_id >= hp->n_vocab)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s %d is outside the vocabulary (%d)", src, nm->mask_id, hp->mask_id,
                       hp->n_vocab);
    int head_dim = hp->d_model / hp->n_heads;
    if (hp->rope_dim != 0 && (hp->rope_dim < 2 || hp->rope_dim > head_dim || hp->rope_dim % 2 != 0))
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d must be even and in [2, the head size %d]", src, nm->rope_dim,
                       hp->rope_dim, head_dim);
    if (hp->attn_mask == UM_ATTN_BLOCK_CAUSAL && (hp->diffusion_block < 1 || hp->diffusion_block > hp->max_seq))
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %d is outside [1, %s %d]", src, nm->diffusion_block,
                       hp->diffusion_block, nm->max_seq, hp->max_seq);
    return hp->ffn == UM_FFN_MOE ? validate_experts(hp, nm, src, err) : UM_OK;
}

/* What every source leaves to be derived once valid. */
static void complete(um_hparams *hp) {
    hp->head_dim = hp->d_model / hp->n_heads;
    if (hp->rope_dim == 0)
        hp->rope_dim = hp->head_dim;
    if (hp->vocab_size <= 0)
        hp->vocab_size = hp->n_vocab;
    if (hp->eos_id >= hp->n_vocab)
        hp->eos_id = -1;
    if (hp->eot_id >= hp->n_vocab)
        hp->eot_id = -1;
}

static void start(const um_arch *a, um_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->qkv_bias = a->block.qkv_bias;
    hp->bias = a->block.bias;
    hp->qk_norm = a->block.qk_norm;
    hp->ffn = a->block.ffn;
    hp->attn_mask = a->block.attn_mask;
    hp->logit_shift = a->block.logit_shift;
    hp->route = a->block.route;
    hp->diffusion_block = a->block.diffusion_block;
    hp->expert_bias = a->block.expert_bias;
    if (hp->route.scale == 0)
        hp->route.scale = 1;
    hp->mask_id = hp->eos_id = hp->eot_id = -1;
}

um_status um_arch_read_transformers_config(const cJSON *cfg, const char *file, int max_seq, double eps,
                                           um_hparams *hp, um_error *err) {
    int64_t n_layers, d_model, n_heads, n_kv_heads, vocab, seq = max_seq, eos_id = -1;
    double theta = 10000.0;
    bool tied = false;
    UM_TRY(um_json_get_int(cfg, "num_hidden_layers", true, 1, UM_MAX_LAYERS, &n_layers, file, err));
    UM_TRY(um_json_get_int(cfg, "hidden_size", true, 1, UM_MAX_D_MODEL, &d_model, file, err));
    UM_TRY(um_json_get_int(cfg, "num_attention_heads", true, 1, UM_MAX_HEADS, &n_heads, file, err));
    n_kv_heads = n_heads;
    UM_TRY(um_json_get_int(cfg, "num_key_value_heads", false, 1, UM_MAX_HEADS, &n_kv_heads, file, err));
    UM_TRY(um_json_get_int(cfg, "vocab_size", true, 1, UM_MAX_VOCAB, &vocab, file, err));
    UM_TRY(um_json_get_int(cfg, "max_position_embeddings", false, 1, UM_MAX_SEQ, &seq, file, err));
    UM_TRY(um_json_get_int(cfg, "eos_token_id", false, 0, INT32_MAX, &eos_id, file, err));
    UM_TRY(um_json_get_double(cfg, "rms_norm_eps", false, &eps, file, err));
    UM_TRY(um_json_get_double(cfg, "rope_theta", false, &theta, file, err));
    UM_TRY(um_json_get_bool(cfg, "tie_word_embeddings", &tied, file, err));
    hp->n_layers = (int)n_layers;
    hp->d_model = (int)d_model;
    hp->n_heads = (int)n_heads;
    hp->n_kv_heads = (int)n_kv_heads;
    hp->vocab_size = hp->n_vocab = (int)vocab;
    hp->max_seq = (int)seq;
    hp->eos_id = (int)eos_id;
    hp->norm_eps = um_f32(eps);
    hp->rope_theta = um_f32(theta);
    hp->tied = tied;
    return UM_OK;
}

um_status um_arch_parse_config(const um_arch *a, const cJSON *cfg, const char *file, int mask_id, um_hparams *hp,
                               um_error *err) {
    start(a, hp);
    hp->rope_interleaved = a->block.rope_hf == UM_ROPE_PAIRS;
    UM_TRY(a->parse_config(cfg, file, hp, err));
    if (hp->mask_id < 0)
        hp->mask_id = mask_id;
    UM_TRY(um_hparams_validate(hp, a->config_names, file, err));
    complete(hp);
    return UM_OK;
}

int um_hf_added_token(const char *dir, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *tok;
    if (!text || !um_file_exists(path) || um_json_load(path, 256u << 20, &tok, NULL) != UM_OK)
        return -1;
    int id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tok, "added_tokens")) {
        const char *content = um_json_get_string(e, "content");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (content && strcmp(content, text) == 0 && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
            v->valuedouble < 1e9)
            id = (int)v->valuedouble;
    }
    cJSON_Delete(tok);
    return id;
}

int um_arch_hf_mask_id(const um_arch *a, const char *dir) {
    int id = a->mask_token ? um_hf_added_token(dir, a->mask_token) : -1;
    return id >= 0 ? id : a->default_mask_id;
}

/* ---- GGUF keys ------------------------------------------------------------------- */

typedef enum {
    KEY_INT,       /* an int field of um_hparams, stored as UINT32 */
    KEY_FLOAT,     /* a float field, stored as FLOAT32 */
    KEY_BOOL,      /* a bool field, stored as BOOL */
    KEY_GATING,    /* the router's scoring function: llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE (1 softmax, 2 sigmoid) */
    KEY_FILE_TYPE, /* general.file_type: the writer's, where the converter puts it */
    KEY_ROPE_DIM,  /* the rotated dimensions of a head (rope_dim) */
    KEY_CAUSAL,    /* true for a causal mask: the block's attn_mask */
    KEY_SHIFT,     /* whether logits are shifted by a position: the block's logit_shift */
} key_kind;

static const struct {
    const char *tmpl; /* %s: general.architecture */
    key_kind kind;
    size_t field; /* offset of the KEY_INT/KEY_FLOAT field */
    bool required;
    bool experts; /* required of mixture-of-experts models, not read for others */
} gguf_keys[UM_KEY_COUNT] = {
    [UM_KEY_BLOCK_COUNT] = {"%s.block_count", KEY_INT, offsetof(um_hparams, n_layers), true},
    [UM_KEY_CONTEXT_LENGTH] = {"%s.context_length", KEY_INT, offsetof(um_hparams, max_seq), false},
    [UM_KEY_HEAD_COUNT] = {"%s.attention.head_count", KEY_INT, offsetof(um_hparams, n_heads), true},
    [UM_KEY_HEAD_COUNT_KV] = {"%s.attention.head_count_kv", KEY_INT, offsetof(um_hparams, n_kv_heads), false},
    [UM_KEY_ROPE_FREQ_BASE] = {"%s.rope.freq_base", KEY_FLOAT, offsetof(um_hparams, rope_theta), false},
    [UM_KEY_RMS_EPS] = {"%s.attention.layer_norm_rms_epsilon", KEY_FLOAT, offsetof(um_hparams, norm_eps), true},
    [UM_KEY_FILE_TYPE] = {"general.file_type", KEY_FILE_TYPE, 0, false},
    [UM_KEY_VOCAB_SIZE] = {"%s.vocab_size", KEY_INT, offsetof(um_hparams, vocab_size), false},
    [UM_KEY_ROPE_DIM] = {"%s.rope.dimension_count", KEY_ROPE_DIM, 0, false},
    [UM_KEY_EMBEDDING_LENGTH] = {"%s.embedding_length", KEY_INT, offsetof(um_hparams, d_model), true},
    [UM_KEY_FFN_LENGTH] = {"%s.feed_forward_length", KEY_INT, offsetof(um_hparams, d_ff), true},
    [UM_KEY_CAUSAL] = {"%s.attention.causal", KEY_CAUSAL, 0, false},
    [UM_KEY_SHIFT_LOGITS] = {"diffusion.shift_logits", KEY_SHIFT, 0, false},
    [UM_KEY_EXPERT_COUNT] = {"%s.expert_count", KEY_INT, offsetof(um_hparams, n_expert), false, true},
    [UM_KEY_EXPERT_USED_COUNT] = {"%s.expert_used_count", KEY_INT, offsetof(um_hparams, n_expert_used), false, true},
    [UM_KEY_EXPERT_FFN_LENGTH] = {"%s.expert_feed_forward_length", KEY_INT, offsetof(um_hparams, d_ff_exp), false,
                                  true},
    [UM_KEY_MASK_ID] = {"tokenizer.ggml.mask_token_id", KEY_INT, offsetof(um_hparams, mask_id), false},
    [UM_KEY_LEADING_DENSE] = {"%s.leading_dense_block_count", KEY_INT, offsetof(um_hparams, n_dense_layers), false},
    [UM_KEY_EXPERT_SHARED_FFN_LENGTH] = {"%s.expert_shared_feed_forward_length", KEY_INT,
                                         offsetof(um_hparams, d_ff_shexp), false},
    [UM_KEY_EXPERT_WEIGHTS_SCALE] = {"%s.expert_weights_scale", KEY_FLOAT, offsetof(um_hparams, route.scale), false},
    [UM_KEY_EXPERT_SHARED_COUNT] = {"%s.expert_shared_count", KEY_INT, offsetof(um_hparams, n_shared_experts), false},
    [UM_KEY_EXPERT_WEIGHTS_NORM] = {"%s.expert_weights_norm", KEY_BOOL, offsetof(um_hparams, route.renormalize),
                                    false},
    [UM_KEY_EXPERT_GATING_FUNC] = {"%s.expert_gating_func", KEY_GATING, 0, false},
    [UM_KEY_EXPERT_GROUP_COUNT] = {"%s.expert_group_count", KEY_INT, offsetof(um_hparams, route.n_group), false},
    [UM_KEY_EXPERT_GROUP_USED_COUNT] = {"%s.expert_group_used_count", KEY_INT,
                                        offsetof(um_hparams, route.n_group_used), false},
    [UM_KEY_DIFFUSION_BLOCK] = {"%s.diffusion.block_length", KEY_INT, offsetof(um_hparams, diffusion_block), false},
};

const char *um_gguf_key_name(um_gguf_key_id id, const char *arch, char *out, size_t n) {
    expand(gguf_keys[id].tmpl, "%s", arch, out, n);
    return out;
}

static int *int_field(um_hparams *hp, um_gguf_key_id id) { return (int *)((char *)hp + gguf_keys[id].field); }
static float *float_field(um_hparams *hp, um_gguf_key_id id) { return (float *)((char *)hp + gguf_keys[id].field); }

/* An id-sized UINT32 (absent: *out keeps its value). */
static um_status read_u32(const um_gguf_file *f, const char *key, bool required, int *out, um_error *err) {
    if (!required && !um_gguf_find_kv(f, key))
        return UM_OK;
    uint32_t v;
    UM_TRY(um_gguf_get_u32(f, key, &v, err));
    if (v > INT32_MAX)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s = %u is too large", f->path, key, v);
    *out = (int)v;
    return UM_OK;
}

/* A flag the file may carry that this architecture's block must match
 * (absent: the row's; llama.cpp writes diffusion.shift_logits for some
 * families only). */
static um_status read_flag(const um_arch *a, const um_gguf_file *f, const char *key, bool want, um_error *err) {
    bool v = want;
    if (um_gguf_find_kv(f, key))
        UM_TRY(um_gguf_get_bool(f, key, &v, err));
    if (v != want)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s = %s is not supported for %s", f->path, key,
                       v ? "true" : "false", a->name);
    return UM_OK;
}

/* llama.cpp's expert_gating_func: 1 softmax, 2 sigmoid (absent: the row's). */
static um_status read_gating(const um_gguf_file *f, const char *key, um_moe_gating *out, um_error *err) {
    int v = -1;
    UM_TRY(read_u32(f, key, false, &v, err));
    if (v == 1 || v == 2)
        *out = v == 1 ? UM_GATING_SOFTMAX : UM_GATING_SIGMOID;
    else if (v != -1)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s = %d is not supported (1: softmax, 2: sigmoid)", f->path, key,
                       v);
    return UM_OK;
}

/* The list's keys into hp; *rope_dim gets the rotated dimensions (-1: absent). */
static um_status read_keys(const um_arch *a, const um_gguf_file *f, um_hparams *hp, int *rope_dim, um_error *err) {
    char key[128];
    *rope_dim = -1;
    for (int i = 0; i < UM_KEY_COUNT; i++) {
        um_gguf_key_name((um_gguf_key_id)i, a->gguf_name, key, sizeof key);
        bool req = gguf_keys[i].required || gguf_keys[i].experts;
        if (gguf_keys[i].experts && hp->ffn != UM_FFN_MOE)
            continue;
        switch (gguf_keys[i].kind) {
        case KEY_INT:
            UM_TRY(read_u32(f, key, req, int_field(hp, (um_gguf_key_id)i), err));
            break;
        case KEY_FLOAT:
            if (req || um_gguf_find_kv(f, key))
                UM_TRY(um_gguf_get_f32(f, key, float_field(hp, (um_gguf_key_id)i), err));
            break;
        case KEY_BOOL:
            if (req || um_gguf_find_kv(f, key))
                UM_TRY(um_gguf_get_bool(f, key, (bool *)((char *)hp + gguf_keys[i].field), err));
            break;
        case KEY_GATING:
            UM_TRY(read_gating(f, key, &hp->route.gating, err));
            break;
        case KEY_FILE_TYPE:
            break;
        case KEY_ROPE_DIM:
            UM_TRY(read_u32(f, key, false, rope_dim, err));
            break;
        case KEY_CAUSAL: /* no family here is causal (LLaDA2's block-causal mask is its own) */
            UM_TRY(read_flag(a, f, key, false, err));
            break;
        case KEY_SHIFT:
            UM_TRY(read_flag(a, f, key, hp->logit_shift != 0, err));
            break;
        }
    }
    return UM_OK;
}

/* The token whose text is text in tokenizer.ggml.tokens; -1 when none. */
static int find_token(const um_gguf_file *f, const char *text) {
    const um_gguf_kv *tokens = um_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!text || !tokens || tokens->elem_type != UM_GGUF_STRING)
        return -1;
    for (uint64_t i = 0; i < tokens->count && i < INT32_MAX; i++) {
        um_gguf_str s;
        if (um_gguf_elem_str(tokens, i, &s) && um_gguf_str_eq(s, text))
            return (int)i;
    }
    return -1;
}

static bool has_tensor(const um_arch *a, const um_gguf_file *f, um_tensor_role role, int layer, const char *suffix) {
    char name[192];
    return um_arch_tensor_name(a->gguf, role, layer, suffix, name, sizeof name) && um_gguf_find_tensor(f, name);
}

/* The embedding's row count is the vocabulary the head produces. */
static um_status read_vocab(const um_arch *a, const um_gguf_file *f, um_hparams *hp, um_error *err) {
    char name[192], key[128];
    um_arch_tensor_name(a->gguf, UM_T_EMBD, 0, "weight", name, sizeof name);
    const um_gguf_tensor *emb = um_gguf_find_tensor(f, name);
    if (!emb || emb->n_dims != 2)
        return um_fail(err, UM_ERR_FORMAT, "%s: missing 2-D tensor '%s'", f->path, name);
    if (emb->ne[1] < 1 || emb->ne[1] > UM_MAX_VOCAB)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s has %lld rows", f->path, name, (long long)emb->ne[1]);
    hp->n_vocab = (int)emb->ne[1];
    if (hp->vocab_size > hp->n_vocab)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s %d exceeds %s's %d rows", f->path,
                       um_gguf_key_name(UM_KEY_VOCAB_SIZE, a->gguf_name, key, sizeof key), hp->vocab_size, name,
                       hp->n_vocab);
    return UM_OK;
}

um_status um_arch_read_gguf(const um_arch *a, const um_gguf_file *f, um_hparams *hp, um_error *err) {
    start(a, hp);
    hp->max_seq = 4096;
    hp->rope_theta = 10000.0f;
    hp->n_kv_heads = -1; /* absent: as many as the query heads */
    hp->mask_id = a->default_mask_id;
    int rope_dim;
    UM_TRY(read_keys(a, f, hp, &rope_dim, err));
    if (hp->n_kv_heads < 0)
        hp->n_kv_heads = hp->n_heads;
    UM_TRY(read_vocab(a, f, hp, err));
    UM_TRY(read_u32(f, "tokenizer.ggml.eos_token_id", false, &hp->eos_id, err));
    if (hp->eos_id < 0)
        hp->eos_id = find_token(f, a->eos_token);
    if (hp->eos_id < 0 && a->default_eos_id > 0)
        hp->eos_id = a->default_eos_id; /* outside the vocabulary: none (complete) */
    hp->eot_id = find_token(f, a->eot_token);
    hp->tied = !has_tensor(a, f, UM_T_OUTPUT, 0, "weight");
    hp->qkv_bias |= has_tensor(a, f, UM_T_Q, 0, "bias");
    hp->bias |= has_tensor(a, f, UM_T_ATTN_OUT, 0, "bias");
    hp->rope_interleaved = a->block.rope_gguf == UM_ROPE_PAIRS;

    if (rope_dim >= 0)
        hp->rope_dim = rope_dim > 0 ? rope_dim : -1; /* 0 would mean "all": refused as the file's error */
    char names[19][128];
    um_gguf_key_id ids[] = {UM_KEY_BLOCK_COUNT,      UM_KEY_EMBEDDING_LENGTH,   UM_KEY_HEAD_COUNT,
                            UM_KEY_HEAD_COUNT_KV,    UM_KEY_FFN_LENGTH,         UM_KEY_VOCAB_SIZE,
                            UM_KEY_CONTEXT_LENGTH,   UM_KEY_RMS_EPS,            UM_KEY_ROPE_FREQ_BASE,
                            UM_KEY_EXPERT_COUNT,     UM_KEY_EXPERT_USED_COUNT,  UM_KEY_EXPERT_FFN_LENGTH,
                            UM_KEY_LEADING_DENSE,    UM_KEY_EXPERT_SHARED_FFN_LENGTH, UM_KEY_EXPERT_GROUP_COUNT,
                            UM_KEY_EXPERT_GROUP_USED_COUNT, UM_KEY_ROPE_DIM, UM_KEY_DIFFUSION_BLOCK};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        um_gguf_key_name(ids[i], a->gguf_name, names[i], sizeof names[i]);
    snprintf(names[18], sizeof names[18], "%s's rows", a->gguf->name[UM_T_EMBD]);
    const um_hparam_names nm = {.n_layers = names[0],   .d_model = names[1],    .n_heads = names[2],
                                .n_kv_heads = names[3], .d_ff = names[4],       .vocab_size = names[5],
                                .n_vocab = names[18],   .max_seq = names[6],    .norm_eps = names[7],
                                .rope_theta = names[8], .mask_id = "tokenizer.ggml.mask_token_id",
                                .n_expert = names[9],   .n_expert_used = names[10], .d_ff_exp = names[11],
                                .n_dense_layers = names[12], .d_ff_shexp = names[13], .n_group = names[14],
                                .n_group_used = names[15], .rope_dim = names[16], .diffusion_block = names[17]};
    UM_TRY(um_hparams_validate(hp, &nm, f->path, err));
    complete(hp);
    return UM_OK;
}

um_status um_arch_write_gguf(const um_arch *a, um_gguf_writer *w, const um_hparams *hp, uint32_t file_type,
                             um_error *err) {
    char key[128];
    um_hparams h = *hp;
    if (!a->gguf_write_keys)
        return um_fail(err, UM_ERR_UNSUPPORTED, "writing %s models to GGUF is not supported yet", a->name);
    for (const int *k = a->gguf_write_keys; *k != UM_KEY_COUNT; k++) {
        int i = *k;
        um_gguf_key_name((um_gguf_key_id)i, a->gguf_name, key, sizeof key);
        switch (gguf_keys[i].kind) {
        case KEY_INT:
            UM_TRY(um_gguf_writer_add_u32(w, key, (uint32_t)*int_field(&h, (um_gguf_key_id)i), err));
            break;
        case KEY_FLOAT:
            UM_TRY(um_gguf_writer_add_f32(w, key, *float_field(&h, (um_gguf_key_id)i), err));
            break;
        case KEY_BOOL:
            UM_TRY(um_gguf_writer_add_bool(w, key, *(bool *)((char *)&h + gguf_keys[i].field), err));
            break;
        case KEY_GATING:
            UM_TRY(um_gguf_writer_add_u32(w, key, hp->route.gating == UM_GATING_SIGMOID ? 2 : 1, err));
            break;
        case KEY_FILE_TYPE:
            UM_TRY(um_gguf_writer_add_u32(w, key, file_type, err));
            break;
        case KEY_ROPE_DIM:
            UM_TRY(um_gguf_writer_add_u32(w, key, (uint32_t)hp->rope_dim, err));
            break;
        case KEY_CAUSAL:
            UM_TRY(um_gguf_writer_add_bool(w, key, false, err));
            break;
        case KEY_SHIFT:
            UM_TRY(um_gguf_writer_add_bool(w, key, hp->logit_shift != 0, err));
            break;
        }
    }
    return UM_OK;
}
