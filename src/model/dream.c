/* Dream (Dream-org/Dream-v0-*-7B, modeling_dream.py): a Qwen2.5-derived
 * transformer run bidirectionally. Its row of the architecture table and
 * its config.json parser; the block is the shared one (model/forward.c) with
 * q/k/v biases and no others, GQA, and its logits shifted by one position:
 * the prediction for position i is the model's row i - 1 (row 0 keeps its
 * own), which the decoding applies, never the forward pass. */
#include <string.h>

#include "format/json.h"
#include "model/arch.h"

/* Options of the Qwen2 config that change the computation and that the
 * forward pass does not implement: refused rather than computed wrongly. */
static um_status check_unsupported(const cJSON *cfg, const char *file, um_error *err) {
    const char *act = um_json_get_string(cfg, "hidden_act");
    if (act && strcmp(act, "silu") != 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only 'silu')", file, act);
    bool sliding = false;
    UM_TRY(um_json_get_bool(cfg, "use_sliding_window", &sliding, file, err));
    if (sliding)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: use_sliding_window = true is not supported", file);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling))
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", file);
    return UM_OK;
}

/* Dream's keys (Qwen2's config class, plus mask_token_id). */
static um_status parse_config(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err) {
    int64_t d_ff, mask_id;
    UM_TRY(check_unsupported(cfg, file, err));
    UM_TRY(um_arch_read_transformers_config(cfg, file, 32768, 1e-6, hp, err));
    UM_TRY(um_json_get_int(cfg, "intermediate_size", true, 1, UM_MAX_D_FF, &d_ff, file, err));
    /* Dream's generation needs the mask id; its config always carries it */
    UM_TRY(um_json_get_int(cfg, "mask_token_id", true, 0, INT32_MAX, &mask_id, file, err));
    hp->d_ff = (int)d_ff;
    hp->mask_id = (int)mask_id;
    return UM_OK;
}

static const um_hparam_names config_names = {
    .n_layers = "num_hidden_layers",        .d_model = "hidden_size",   .n_heads = "num_attention_heads",
    .n_kv_heads = "num_key_value_heads",    .d_ff = "intermediate_size", .n_vocab = "vocab_size",
    .vocab_size = "vocab_size",             .max_seq = "max_position_embeddings",
    .norm_eps = "'rms_norm_eps'",           .rope_theta = "'rope_theta'", .mask_id = "mask_token_id",
};

static const um_tensor_names hf_tensors = {.name = {
    [UM_T_EMBD] = "model.embed_tokens",
    [UM_T_OUT_NORM] = "model.norm",
    [UM_T_OUTPUT] = "lm_head",
    [UM_T_ATTN_NORM] = "model.layers.%d.input_layernorm",
    [UM_T_Q] = "model.layers.%d.self_attn.q_proj",
    [UM_T_K] = "model.layers.%d.self_attn.k_proj",
    [UM_T_V] = "model.layers.%d.self_attn.v_proj",
    [UM_T_ATTN_OUT] = "model.layers.%d.self_attn.o_proj",
    [UM_T_FFN_NORM] = "model.layers.%d.post_attention_layernorm",
    [UM_T_GATE] = "model.layers.%d.mlp.gate_proj",
    [UM_T_UP] = "model.layers.%d.mlp.up_proj",
    [UM_T_DOWN] = "model.layers.%d.mlp.down_proj",
}};

static const char *const hf_names[] = {"Dream", "DreamModel", NULL};

/* convert_hf_to_gguf.py's DreamModel writes these, in this order (no
   diffusion.shift_logits: llama.cpp shifts Dream's logits by its architecture) */
static const int gguf_write_keys[] = {
    UM_KEY_BLOCK_COUNT,    UM_KEY_CONTEXT_LENGTH, UM_KEY_EMBEDDING_LENGTH, UM_KEY_FFN_LENGTH,
    UM_KEY_HEAD_COUNT,     UM_KEY_HEAD_COUNT_KV,  UM_KEY_ROPE_FREQ_BASE,   UM_KEY_RMS_EPS,
    UM_KEY_FILE_TYPE,      UM_KEY_CAUSAL,         UM_KEY_MASK_ID,          UM_KEY_COUNT};

const um_arch um_arch_dream = {
    .name = "dream",
    .hf_names = hf_names,
    .gguf_name = "dream",
    .parse_config = parse_config,
    .config_names = &config_names,
    .hf = &hf_tensors,
    .gguf = &um_llama_cpp_tensor_names,
    /* Qwen2's block: biases on q, k and v only; llama.cpp runs it with NeoX
       (rotate-half) RoPE, so its converter leaves the q/k rows as they are */
    .block = {.qkv_bias = true, .ffn = UM_FFN_DENSE, .attn_mask = UM_ATTN_BIDIRECTIONAL, .logit_shift = 1,
              .rope_hf = UM_ROPE_HALVES, .rope_gguf = UM_ROPE_HALVES},
    .gguf_write_keys = gguf_write_keys,
    .default_mask_id = -1,
    .eot_token = "<|im_end|>",
};
