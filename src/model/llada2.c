/* LLaDA2.0 (inclusionAI/LLaDA2.0-mini and -flash, modeling_llada2_moe.py): a
 * Ling 2.0 (BailingMoeV2) mixture-of-experts transformer trained for block
 * diffusion. Its row of the architecture table and its config.json parser.
 * The block is the shared one (model/forward.c) with
 *
 *   - q, k and v in one matrix (query_key_value), QK-norm per head, and RoPE
 *     on the first half of each head only (partial_rotary_factor 0.5);
 *   - a dense FFN in the first first_k_dense_replace layers, then experts: a
 *     sigmoid router whose expert bias steers the choice only, group-limited
 *     top-k (a group scores the sum of its two best), the kept scores
 *     renormalized and scaled by routed_scaling_factor, plus a shared expert;
 *   - block-causal attention when it generates: a position sees its own
 *     block and every earlier one (diffusion/session.c: UM_LOOP_BLOCKS).
 *
 * llama.cpp has no LLaDA2 yet: its GGUF files here use the names and keys
 * llama.cpp gives Ling 2.0 (bailingmoe2) under general.architecture
 * "llada2", plus llada2.diffusion.block_length (README: LLaDA2). */
#include <string.h>

#include "format/json.h"
#include "model/arch.h"

#define LLADA2_MASK_ID 156895 /* <|mask|> and <|endoftext|> of the released tokenizer */
#define LLADA2_EOS_ID 156892
#define LLADA2_BLOCK 32 /* the block length it was trained with, generate()'s default */

/* Options of the config that change the computation and that this forward
 * does not implement: refused rather than computed wrongly. */
static um_status check_unsupported(const cJSON *cfg, const char *file, um_error *err) {
    const char *act = um_json_get_string(cfg, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only 'silu')", file, act);
    const char *score = um_json_get_string(cfg, "score_function");
    if (score && strcmp(score, "sigmoid") != 0 && strcmp(score, "softmax") != 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: score_function '%s' is not supported (sigmoid, softmax)", file,
                       score);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling))
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", file);
    static const struct {
        const char *key;
        bool want;
    } flags[] = {{"use_bias", false}, {"use_qkv_bias", false}, {"norm_head", false}, {"use_sliding_window", false},
                 {"use_qk_norm", true}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        bool v = flags[i].want;
        UM_TRY(um_json_get_bool(cfg, flags[i].key, &v, file, err));
        if (v != flags[i].want)
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s = %s is not supported", file, flags[i].key,
                           v ? "true" : "false");
    }
    return UM_OK;
}

/* The rotated dimensions: rotary_dim, else partial_rotary_factor of the head. */
static um_status read_rope_dim(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t head_dim = hp->d_model / hp->n_heads, rot = -1;
    double factor = 0.5;
    UM_TRY(um_json_get_int(cfg, "head_dim", false, 1, UM_MAX_D_MODEL, &head_dim, file, err));
    if (head_dim * hp->n_heads != hp->d_model)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: head_dim %lld times num_attention_heads %d is not hidden_size %d",
                       file, (long long)head_dim, hp->n_heads, hp->d_model);
    UM_TRY(um_json_get_double(cfg, "partial_rotary_factor", false, &factor, file, err));
    UM_TRY(um_json_get_int(cfg, "rotary_dim", false, 1, UM_MAX_D_MODEL, &rot, file, err));
    if (rot < 0 && !(factor > 0 && factor <= 1))
        return um_fail(err, UM_ERR_FORMAT, "%s: partial_rotary_factor %g is outside (0, 1]", file, factor);
    hp->rope_dim = (int)(rot >= 0 ? rot : (int64_t)(head_dim * factor)); /* the validator checks it */
    return UM_OK;
}

static um_status read_experts(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t n_expert, n_used, d_ff_exp, n_shared = 0, d_shexp = -1, dense = 0, groups = 0, groups_used = 0;
    double scale = 1.0;
    bool norm = true, bias = hp->expert_bias;
    UM_TRY(um_json_get_int(cfg, "num_experts", true, 1, INT32_MAX, &n_expert, file, err));
    UM_TRY(um_json_get_int(cfg, "num_experts_per_tok", true, 1, INT32_MAX, &n_used, file, err));
    UM_TRY(um_json_get_int(cfg, "moe_intermediate_size", true, 1, UM_MAX_D_FF, &d_ff_exp, file, err));
    UM_TRY(um_json_get_int(cfg, "num_shared_experts", false, 0, 64, &n_shared, file, err));
    UM_TRY(um_json_get_int(cfg, "moe_shared_expert_intermediate_size", false, 1, UM_MAX_D_FF, &d_shexp, file, err));
    UM_TRY(um_json_get_int(cfg, "first_k_dense_replace", false, 0, INT32_MAX, &dense, file, err));
    UM_TRY(um_json_get_int(cfg, "n_group", false, 0, INT32_MAX, &groups, file, err));
    UM_TRY(um_json_get_int(cfg, "topk_group", false, 0, INT32_MAX, &groups_used, file, err));
    UM_TRY(um_json_get_double(cfg, "routed_scaling_factor", false, &scale, file, err));
    UM_TRY(um_json_get_bool(cfg, "norm_topk_prob", &norm, file, err));
    UM_TRY(um_json_get_bool(cfg, "moe_router_enable_expert_bias", &bias, file, err));
    const char *score = um_json_get_string(cfg, "score_function");
    /* the validator names the ranges; clamping keeps the values meaningful for its message */
    hp->n_expert = n_expert > INT32_MAX / 2 ? INT32_MAX / 2 : (int)n_expert;
    hp->n_expert_used = n_used > INT32_MAX / 2 ? INT32_MAX / 2 : (int)n_used;
    hp->d_ff_exp = (int)d_ff_exp;
    hp->n_shared_experts = (int)n_shared;
    hp->d_ff_shexp = n_shared == 0 ? 0 : d_shexp > 0 ? (int)d_shexp : (int)(d_ff_exp * n_shared);
    hp->n_dense_layers = dense > INT32_MAX / 2 ? INT32_MAX / 2 : (int)dense;
    hp->route.n_group = groups > 1 || groups_used > 1 ? (int)(groups > INT32_MAX / 2 ? INT32_MAX / 2 : groups) : 0;
    hp->route.n_group_used = hp->route.n_group ? (int)(groups_used > INT32_MAX / 2 ? INT32_MAX / 2 : groups_used) : 0;
    hp->route.renormalize = norm;
    hp->route.scale = um_f32(scale);
    hp->route.gating = score && strcmp(score, "softmax") == 0 ? UM_GATING_SOFTMAX : UM_GATING_SIGMOID;
    hp->expert_bias = bias;
    return UM_OK;
}

static um_status parse_config(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t d_ff;
    UM_TRY(check_unsupported(cfg, file, err));
    UM_TRY(um_arch_read_transformers_config(cfg, file, 32768, 1e-6, hp, err));
    UM_TRY(um_json_get_int(cfg, "intermediate_size", true, 1, UM_MAX_D_FF, &d_ff, file, err));
    hp->d_ff = (int)d_ff;
    UM_TRY(read_rope_dim(cfg, file, hp, err));
    return read_experts(cfg, file, hp, err);
}

static const um_hparam_names config_names = {
    .n_layers = "num_hidden_layers",     .d_model = "hidden_size",        .n_heads = "num_attention_heads",
    .n_kv_heads = "num_key_value_heads", .d_ff = "intermediate_size",     .n_vocab = "vocab_size",
    .vocab_size = "vocab_size",          .max_seq = "max_position_embeddings", .norm_eps = "'rms_norm_eps'",
    .rope_theta = "'rope_theta'",        .mask_id = "mask token id (<|mask|> in tokenizer.json)",
    .n_expert = "num_experts",           .n_expert_used = "num_experts_per_tok",
    .d_ff_exp = "moe_intermediate_size", .n_dense_layers = "first_k_dense_replace",
    .d_ff_shexp = "the shared experts' size", .n_group = "n_group", .n_group_used = "topk_group",
    .rope_dim = "the rotated dimensions (partial_rotary_factor)", .diffusion_block = "the block length",
};

/* the keys of llama.cpp's BailingMoeV2Model (Ling 2.0) converter, in its order, and the block length */
static const int gguf_write_keys[] = {
    UM_KEY_BLOCK_COUNT,          UM_KEY_CONTEXT_LENGTH,          UM_KEY_EMBEDDING_LENGTH,
    UM_KEY_FFN_LENGTH,           UM_KEY_HEAD_COUNT,              UM_KEY_HEAD_COUNT_KV,
    UM_KEY_ROPE_FREQ_BASE,       UM_KEY_RMS_EPS,                 UM_KEY_EXPERT_COUNT,
    UM_KEY_EXPERT_USED_COUNT,    UM_KEY_FILE_TYPE,               UM_KEY_ROPE_DIM,
    UM_KEY_LEADING_DENSE,        UM_KEY_VOCAB_SIZE,              UM_KEY_EXPERT_FFN_LENGTH,
    UM_KEY_EXPERT_SHARED_FFN_LENGTH, UM_KEY_EXPERT_WEIGHTS_SCALE, UM_KEY_EXPERT_SHARED_COUNT,
    UM_KEY_EXPERT_WEIGHTS_NORM,  UM_KEY_EXPERT_GATING_FUNC,      UM_KEY_EXPERT_GROUP_COUNT,
    UM_KEY_EXPERT_GROUP_USED_COUNT, UM_KEY_DIFFUSION_BLOCK,      UM_KEY_COUNT};

static const um_tensor_names hf_tensors = {
    .name = {
        [UM_T_EMBD] = "model.word_embeddings",
        [UM_T_OUT_NORM] = "model.norm",
        [UM_T_OUTPUT] = "lm_head",
        [UM_T_ATTN_NORM] = "model.layers.%d.input_layernorm",
        [UM_T_QKV] = "model.layers.%d.attention.query_key_value",
        [UM_T_ATTN_OUT] = "model.layers.%d.attention.dense",
        [UM_T_Q_NORM] = "model.layers.%d.attention.query_layernorm",
        [UM_T_K_NORM] = "model.layers.%d.attention.key_layernorm",
        [UM_T_FFN_NORM] = "model.layers.%d.post_attention_layernorm",
        [UM_T_GATE] = "model.layers.%d.mlp.gate_proj",
        [UM_T_UP] = "model.layers.%d.mlp.up_proj",
        [UM_T_DOWN] = "model.layers.%d.mlp.down_proj",
        [UM_T_ROUTER] = "model.layers.%d.mlp.gate",
        [UM_T_EXP_BIAS] = "model.layers.%d.mlp.gate",
        [UM_T_GATE_EXP] = "model.layers.%d.mlp.experts.%d.gate_proj",
        [UM_T_UP_EXP] = "model.layers.%d.mlp.experts.%d.up_proj",
        [UM_T_DOWN_EXP] = "model.layers.%d.mlp.experts.%d.down_proj",
        [UM_T_GATE_SHEXP] = "model.layers.%d.mlp.shared_experts.gate_proj",
        [UM_T_UP_SHEXP] = "model.layers.%d.mlp.shared_experts.up_proj",
        [UM_T_DOWN_SHEXP] = "model.layers.%d.mlp.shared_experts.down_proj",
    },
    .suffix = {[UM_T_EXP_BIAS] = "expert_bias"},
};

static const char *const hf_names[] = {"llada2_moe", "LLaDA2MoeModelLM", NULL};

const um_arch um_arch_llada2 = {
    .name = "llada2",
    .hf_names = hf_names,
    .gguf_name = "llada2",
    .parse_config = parse_config,
    .config_names = &config_names,
    .hf = &hf_tensors,
    .gguf = &um_llama_cpp_tensor_names,
    /* llama.cpp runs Ling 2.0 with NeoX RoPE: q/k rows stay as they are */
    .block = {.qk_norm = true, .ffn = UM_FFN_MOE, .attn_mask = UM_ATTN_BLOCK_CAUSAL, .logit_shift = 0,
              .rope_hf = UM_ROPE_HALVES, .rope_gguf = UM_ROPE_HALVES,
              .route = {.gating = UM_GATING_SIGMOID, .renormalize = true, .scale = 1},
              .diffusion_block = LLADA2_BLOCK, .expert_bias = true},
    .gguf_write_keys = gguf_write_keys,
    .default_mask_id = LLADA2_MASK_ID,
    .default_eos_id = LLADA2_EOS_ID,
    .mask_token = "<|mask|>",
    .eos_token = "<|endoftext|>",
    .eot_token = "<|role_end|>",
};
