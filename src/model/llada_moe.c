/* LLaDA-MoE (inclusionAI/LLaDA-MoE-7B-A1B, modeling_lladamoe.py): an
 * OLMoE-like mixture-of-experts transformer trained as a masked diffusion
 * model. Its row of the architecture table and its config.json parser. The
 * block is the shared one (model/forward.c) with QK-norm (one [head_dim]
 * weight for all heads, before RoPE) and, in every layer, a router choosing
 * the top k of the experts by softmax score, their outputs weighted by
 * those scores as they are (upstream never renormalizes them, whatever
 * norm_topk_prob says). Attention is bidirectional, RoPE rotate-half. */
#include <string.h>

#include "format/json.h"
#include "model/arch.h"

#define LLADA_MOE_DEFAULT_MASK_ID 156895 /* <|mask|> of the released tokenizer */

/* Options of the config that change the computation and that this forward
 * does not implement: refused rather than computed wrongly. Keys the
 * reference ignores (norm_topk_prob, moe_router_score_function,
 * routed_scaling_factor, router groups) are ignored here too. */
static um_status check_unsupported(const cJSON *cfg, const char *file, um_error *err) {
    const char *act = um_json_get_string(cfg, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only 'silu')", file, act);
    static const char *const must_be_null[] = {"rope_scaling", "clip_qkv", "shared_expert_intermediate_size"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, must_be_null[i]);
        if (v && !cJSON_IsNull(v))
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s is not supported (only null)", file, must_be_null[i]);
    }
    bool flag = false;
    UM_TRY(um_json_get_bool(cfg, "attention_bias", &flag, file, err));
    if (flag)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: attention_bias = true is not supported", file);
    UM_TRY(um_json_get_bool(cfg, "moe_router_enable_expert_bias", &flag, file, err));
    if (flag)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: moe_router_enable_expert_bias = true is not supported", file);
    double rotary = 1;
    UM_TRY(um_json_get_double(cfg, "partial_rotary_factor", false, &rotary, file, err));
    if (rotary != 1)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not supported (only 1)", file, rotary);
    const cJSON *freq = cJSON_GetObjectItemCaseSensitive(cfg, "moe_layer_freq"), *f;
    if (!cJSON_IsArray(freq))
        freq = NULL;
    cJSON_ArrayForEach(f, freq)
        if (!cJSON_IsNumber(f) || f->valuedouble != 1)
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: moe_layer_freq must be all 1 (dense layers are not supported)",
                           file);
    return UM_OK;
}

static um_status parse_config(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t d_ff = -1, d_ff_exp, n_expert, n_used, mask_id = -1;
    bool qk_norm = true;
    UM_TRY(check_unsupported(cfg, file, err));
    UM_TRY(um_arch_read_transformers_config(cfg, file, 8192, 1e-5, hp, err));
    UM_TRY(um_json_get_int(cfg, "num_experts", true, 1, INT32_MAX, &n_expert, file, err));
    UM_TRY(um_json_get_int(cfg, "num_experts_per_tok", true, 1, INT32_MAX, &n_used, file, err));
    UM_TRY(um_json_get_int(cfg, "expert_intermediate_size", true, 1, UM_MAX_D_FF, &d_ff_exp, file, err));
    UM_TRY(um_json_get_int(cfg, "dense_intermediate_size", false, 1, UM_MAX_D_FF, &d_ff, file, err));
    UM_TRY(um_json_get_int(cfg, "mask_token_id", false, 0, INT32_MAX, &mask_id, file, err));
    UM_TRY(um_json_get_bool(cfg, "qk_layernorm", &qk_norm, file, err));
    hp->n_expert = n_expert > INT32_MAX / 2 ? INT32_MAX / 2 : (int)n_expert; /* the validator names the range */
    hp->n_expert_used = n_used > INT32_MAX / 2 ? INT32_MAX / 2 : (int)n_used;
    hp->d_ff_exp = (int)d_ff_exp;
    hp->d_ff = (int)(d_ff > 0 ? d_ff : d_ff_exp); /* unused by the forward: what llama.cpp's files record */
    hp->mask_id = (int)mask_id;
    hp->qk_norm = qk_norm;
    return UM_OK;
}

static const um_hparam_names config_names = {
    .n_layers = "num_hidden_layers",     .d_model = "hidden_size",      .n_heads = "num_attention_heads",
    .n_kv_heads = "num_key_value_heads", .d_ff = "dense_intermediate_size", .n_vocab = "vocab_size",
    .vocab_size = "vocab_size",          .max_seq = "max_position_embeddings", .norm_eps = "'rms_norm_eps'",
    .rope_theta = "'rope_theta'",        .mask_id = "mask token id (<|mask|> in tokenizer.json)",
    .n_expert = "num_experts",           .n_expert_used = "num_experts_per_tok",
    .d_ff_exp = "expert_intermediate_size",
};

/* convert_hf_to_gguf.py's LLaDAMoEModel writes these, in this order */
static const int gguf_write_keys[] = {
    UM_KEY_BLOCK_COUNT,  UM_KEY_CONTEXT_LENGTH,    UM_KEY_EMBEDDING_LENGTH, UM_KEY_FFN_LENGTH,
    UM_KEY_HEAD_COUNT,   UM_KEY_HEAD_COUNT_KV,     UM_KEY_ROPE_FREQ_BASE,   UM_KEY_RMS_EPS,
    UM_KEY_EXPERT_COUNT, UM_KEY_EXPERT_USED_COUNT, UM_KEY_FILE_TYPE,        UM_KEY_EXPERT_FFN_LENGTH,
    UM_KEY_MASK_ID,      UM_KEY_CAUSAL,            UM_KEY_SHIFT_LOGITS,     UM_KEY_COUNT};

static const um_tensor_names hf_tensors = {.name = {
    [UM_T_EMBD] = "model.embed_tokens",
    [UM_T_OUT_NORM] = "model.norm",
    [UM_T_OUTPUT] = "lm_head",
    [UM_T_ATTN_NORM] = "model.layers.%d.input_layernorm",
    [UM_T_Q] = "model.layers.%d.self_attn.q_proj",
    [UM_T_K] = "model.layers.%d.self_attn.k_proj",
    [UM_T_V] = "model.layers.%d.self_attn.v_proj",
    [UM_T_ATTN_OUT] = "model.layers.%d.self_attn.o_proj",
    [UM_T_Q_NORM] = "model.layers.%d.self_attn.q_norm",
    [UM_T_K_NORM] = "model.layers.%d.self_attn.k_norm",
    [UM_T_FFN_NORM] = "model.layers.%d.post_attention_layernorm",
    [UM_T_ROUTER] = "model.layers.%d.mlp.gate",
    [UM_T_GATE_EXP] = "model.layers.%d.mlp.experts.%d.gate_proj",
    [UM_T_UP_EXP] = "model.layers.%d.mlp.experts.%d.up_proj",
    [UM_T_DOWN_EXP] = "model.layers.%d.mlp.experts.%d.down_proj",
}};

/* model_type is dense LLaDA's "llada": the class name decides (arch.c) */
static const char *const hf_names[] = {"LLaDAMoEModelLM", NULL};

const um_arch um_arch_llada_moe = {
    .name = "llada-moe",
    .hf_names = hf_names,
    .gguf_name = "llada-moe",
    .parse_config = parse_config,
    .config_names = &config_names,
    .hf = &hf_tensors,
    .gguf = &um_llama_cpp_tensor_names,
    /* llama.cpp runs it with NeoX RoPE: its converter leaves q/k rows as they are */
    .block = {.qk_norm = true, .ffn = UM_FFN_MOE, .attn_mask = UM_ATTN_BIDIRECTIONAL, .logit_shift = 0,
              .rope_hf = UM_ROPE_HALVES, .rope_gguf = UM_ROPE_HALVES},
    .gguf_write_keys = gguf_write_keys,
    .default_mask_id = LLADA_MOE_DEFAULT_MASK_ID,
    .mask_token = "<|mask|>",
    .eot_token = "<|role_end|>",
};
