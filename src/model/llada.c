/* LLaDA (ML-GSAI/LLaDA, modeling_llada.py): its row of the architecture
 * table (model/arch.h) and its config.json parser. The loader binds its
 * tensors by the row's names (model/loader.c); the forward pass is
 * model/forward.c. */
#include <string.h>

#include "format/json.h"
#include "model/arch.h"

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

/* LLaDA's keys (OLMo's config class). Ranges, the heads' split and the
 * vocabulary are um_hparams_validate's, which names them as here. */
static um_status parse_config(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab, emb = -1, max_seq = 4096;
    int64_t mask_id = LLADA_DEFAULT_MASK_ID, eos_id = -1, eot_id = -1;
    double eps = 1e-5, theta = 10000.0;
    UM_TRY(check_unsupported(cfg, file, err));
    UM_TRY(um_json_get_int(cfg, "n_layers", true, 1, UM_MAX_LAYERS, &n_layers, file, err));
    UM_TRY(um_json_get_int(cfg, "d_model", true, 1, UM_MAX_D_MODEL, &d_model, file, err));
    UM_TRY(um_json_get_int(cfg, "n_heads", true, 1, UM_MAX_HEADS, &n_heads, file, err));
    n_kv_heads = n_heads;
    UM_TRY(um_json_get_int(cfg, "n_kv_heads", false, 1, UM_MAX_HEADS, &n_kv_heads, file, err));
    UM_TRY(um_json_get_int(cfg, "mlp_hidden_size", true, 1, UM_MAX_D_FF, &d_ff, file, err));
    UM_TRY(um_json_get_int(cfg, "vocab_size", true, 1, UM_MAX_VOCAB, &vocab, file, err));
    UM_TRY(um_json_get_int(cfg, "embedding_size", false, 1, UM_MAX_VOCAB, &emb, file, err));
    UM_TRY(um_json_get_int(cfg, "max_sequence_length", false, 1, UM_MAX_SEQ, &max_seq, file, err));
    UM_TRY(um_json_get_int(cfg, "mask_token_id", false, 0, INT32_MAX, &mask_id, file, err));
    UM_TRY(um_json_get_int(cfg, "eos_token_id", false, 0, INT32_MAX, &eos_id, file, err));
    UM_TRY(um_json_get_int(cfg, "eot_token_id", false, 0, INT32_MAX, &eot_id, file, err));
    UM_TRY(um_json_get_double(cfg, "rms_norm_eps", false, &eps, file, err));
    UM_TRY(um_json_get_double(cfg, "rope_theta", false, &theta, file, err));
    bool tied = false, bias = false, qkv_bias = false;
    UM_TRY(um_json_get_bool(cfg, "weight_tying", &tied, file, err));
    UM_TRY(um_json_get_bool(cfg, "include_bias", &bias, file, err));
    UM_TRY(um_json_get_bool(cfg, "include_qkv_bias", &qkv_bias, file, err));
    hp->n_layers = (int)n_layers;
    hp->d_model = (int)d_model;
    hp->n_heads = (int)n_heads;
    hp->n_kv_heads = (int)n_kv_heads;
    hp->d_ff = (int)d_ff;
    hp->vocab_size = (int)vocab;
    hp->n_vocab = (int)(emb < 0 ? vocab : emb); /* the embedding may have padding rows */
    hp->max_seq = (int)max_seq;
    hp->norm_eps = um_f32(eps);
    hp->rope_theta = um_f32(theta);
    hp->mask_id = (int)mask_id;
    hp->eos_id = (int)eos_id;
    hp->eot_id = (int)eot_id;
    hp->tied = tied;
    hp->bias = bias;
    hp->qkv_bias = qkv_bias || bias;
    return UM_OK;
}

um_status um_llada_parse_hparams(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    return um_arch_parse_config(&um_arch_llada, cfg, file, -1, hp, err);
}

/* ---- the row ---------------------------------------------------------------- */

/* How the validator names each field: config.json's keys, quoted where the
 * messages always quoted them. */
static const um_hparam_names config_names = {
    .n_layers = "n_layers",     .d_model = "d_model",          .n_heads = "n_heads",
    .n_kv_heads = "n_kv_heads", .d_ff = "mlp_hidden_size",     .n_vocab = "embedding_size",
    .vocab_size = "vocab_size", .max_seq = "max_sequence_length", .norm_eps = "'rms_norm_eps'",
    .rope_theta = "'rope_theta'", .mask_id = "mask_token_id",
};

static const um_tensor_names hf_tensors = {.name = {
    [UM_T_EMBD] = "model.transformer.wte",
    [UM_T_OUT_NORM] = "model.transformer.ln_f",
    [UM_T_OUTPUT] = "model.transformer.ff_out",
    [UM_T_ATTN_NORM] = "model.transformer.blocks.%d.attn_norm",
    [UM_T_Q] = "model.transformer.blocks.%d.q_proj",
    [UM_T_K] = "model.transformer.blocks.%d.k_proj",
    [UM_T_V] = "model.transformer.blocks.%d.v_proj",
    [UM_T_ATTN_OUT] = "model.transformer.blocks.%d.attn_out",
    [UM_T_FFN_NORM] = "model.transformer.blocks.%d.ff_norm",
    [UM_T_GATE] = "model.transformer.blocks.%d.ff_proj",
    [UM_T_UP] = "model.transformer.blocks.%d.up_proj",
    [UM_T_DOWN] = "model.transformer.blocks.%d.ff_out",
}};

static const char *const hf_names[] = {"llada", "LLaDAModelLM", NULL};

/* convert_hf_to_gguf.py's LLaDAModel writes every key of the list, in its order */
static const int gguf_write_keys[] = {
    UM_KEY_BLOCK_COUNT,      UM_KEY_CONTEXT_LENGTH, UM_KEY_HEAD_COUNT,    UM_KEY_HEAD_COUNT_KV, UM_KEY_ROPE_FREQ_BASE,
    UM_KEY_RMS_EPS,          UM_KEY_FILE_TYPE,      UM_KEY_VOCAB_SIZE,    UM_KEY_ROPE_DIM,      UM_KEY_EMBEDDING_LENGTH,
    UM_KEY_FFN_LENGTH,       UM_KEY_CAUSAL,         UM_KEY_SHIFT_LOGITS,  UM_KEY_COUNT};

const um_arch um_arch_llada = {
    .name = "llada",
    .hf_names = hf_names,
    .gguf_name = "llada",
    .parse_config = parse_config,
    .config_names = &config_names,
    .hf = &hf_tensors,
    .gguf = &um_llama_cpp_tensor_names,
    /* biases as config.json says (include_bias, include_qkv_bias); llama.cpp's
       converter permutes q/k rows for its pairwise RoPE */
    .block = {.ffn = UM_FFN_DENSE, .attn_mask = UM_ATTN_BIDIRECTIONAL, .logit_shift = 0,
              .rope_hf = UM_ROPE_HALVES, .rope_gguf = UM_ROPE_PAIRS},
    .gguf_write_keys = gguf_write_keys,
    .default_mask_id = LLADA_DEFAULT_MASK_ID,
    .eot_token = "<|eot_id|>",
    .gguf_add_bos = true, /* its chat format starts with BOS */
};
