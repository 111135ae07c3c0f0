/* The architectures unmask runs, as data (after llama.cpp's llama-arch.cpp):
 * one row per family naming what its files call it, how its config.json is
 * read, what its tensors are called in a Hugging Face checkpoint and in a
 * GGUF file, and which options its transformer block has. The loader
 * (model/loader.c), the GGUF writer (model/convert.c) and the error messages
 * all work from these rows, so adding a family is a row and one short file
 * with its config.json parser (model/llada.c is LLaDA's). */
#ifndef UM_MODEL_ARCH_H
#define UM_MODEL_ARCH_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "format/gguf.h"
#include "model/model.h"

/* The tensors of a model, by role. A row's name template for a per-layer
 * role holds one %d (the layer); ".weight" or ".bias" follows every name. */
typedef enum {
    UM_T_EMBD,     /* token embedding [n_vocab, d_model] */
    UM_T_OUT_NORM, /* final norm [d_model] */
    UM_T_OUTPUT,   /* output head [n_vocab, d_model]; absent when tied */
    UM_T_ATTN_NORM,
    UM_T_Q,
    UM_T_K,
    UM_T_V,
    UM_T_ATTN_OUT,
    UM_T_FFN_NORM,
    UM_T_GATE,
    UM_T_UP,
    UM_T_DOWN,
    UM_T_Q_NORM,   /* QK-norm weights [head_dim] */
    UM_T_K_NORM,
    UM_T_ROUTER,   /* mixture of experts: the router [n_expert, d_model] */
    /* The experts' gate, up and down: in a Hugging Face checkpoint one tensor
     * per expert, the template holding a second %d (the expert); in GGUF one
     * 3-D tensor per layer, experts outermost (loader.c: bind_experts) */
    UM_T_GATE_EXP,
    UM_T_UP_EXP,
    UM_T_DOWN_EXP,
    UM_T_QKV,        /* q, k and v stacked in one matrix [(n_heads + 2 n_kv_heads) head_dim, d_model] (LLaDA2) */
    UM_T_EXP_BIAS,   /* the router's expert bias [n_expert]: steers the choice only */
    UM_T_GATE_SHEXP, /* the shared expert's gate, up and down, run by every token */
    UM_T_UP_SHEXP,
    UM_T_DOWN_SHEXP,
    UM_T_COUNT
} um_tensor_role;

/* A role's name, and when the format spells its last part its own way
 * (LLaDA2's "mlp.gate.expert_bias", llama.cpp's "exp_probs_b.bias") that
 * part: the suffix callers ask for ("bias") is then replaced. */
typedef struct {
    const char *name[UM_T_COUNT];
    const char *suffix[UM_T_COUNT];
} um_tensor_names;

/* llama.cpp's names (llama-arch.cpp's LLM_TENSOR_NAMES), the same for every
 * architecture it has: blk.%d.attn_q and so on. */
extern const um_tensor_names um_llama_cpp_tensor_names;

/* What a block computes beyond the shared core (RMSNorm, attention with
 * RoPE, FFN): copied into um_hparams before the parser runs, which may turn
 * on what a config says a checkpoint has (LLaDA's include_bias). */
typedef struct {
    bool qkv_bias, bias, qk_norm;
    um_ffn_kind ffn;
    um_attn_mask attn_mask;
    int logit_shift;
    um_rope_layout rope_hf, rope_gguf; /* q/k row layout in each format: convert permutes when they differ */
    um_moe_router route; /* the router's defaults (a zero scale: 1) */
    int diffusion_block; /* block-causal models: the block length when the file does not say */
    bool expert_bias;    /* its MoE layers have an expert bias (a config may say otherwise; GGUF files must) */
} um_block_options;

/* Reads a parsed config.json into hp (which holds the row's block options
 * already); file names it in errors. Validation follows (um_hparams_validate). */
typedef um_status (*um_config_parser)(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err);

typedef struct um_arch {
    const char *name;              /* unmask's name, um_model_info.architecture */
    const char *const *hf_names;   /* config.json model_type or architectures[] values, NULL-terminated */
    const char *gguf_name;         /* general.architecture; the %s of the GGUF key templates */
    um_config_parser parse_config;
    const struct um_hparam_names *config_names; /* how config.json names the fields, for messages */
    const um_tensor_names *hf, *gguf; /* tensor names in a checkpoint and in a GGUF file */
    um_block_options block;
    /* The hyper-parameter keys llama.cpp's converter writes for the family,
     * in its order (um_gguf_key_id values, ending with UM_KEY_COUNT); NULL:
     * unmask cannot write the family's GGUF files yet. */
    const int *gguf_write_keys;
    int default_mask_id; /* when a GGUF file has no tokenizer.ggml.mask_token_id */
    const char *mask_token; /* the mask token's text, looked up in tokenizer.json when config.json has no id */
    const char *eot_token; /* the end-of-turn token's text, looked up in the tokenizer; NULL: none */
    const char *eos_token; /* EOS's text, looked up when the config has no eos_token_id (LLaDA2); NULL: none */
    int default_eos_id;    /* ... and the id when the tokenizer has none either (0: none) */
    bool gguf_add_bos; /* llama.cpp's converter writes add_bos_token true whatever the tokenizer says */
} um_arch;

/* The table, NULL-terminated. */
extern const um_arch *const um_archs[];

/* The row answering to a config.json's model_type or architectures[] value,
 * or to a GGUF file's general.architecture; NULL when none does. */
const um_arch *um_arch_by_hf_name(const char *name);
const um_arch *um_arch_by_gguf_name(const char *name);
/* The table's names, comma-separated, into buf: for messages. */
const char *um_arch_list(char *buf, size_t n);
/* The row for name (from config.json when !is_gguf, else general.architecture),
 * or UM_ERR_UNSUPPORTED naming it, file and the supported ones. */
um_status um_arch_find(const char *name, bool is_gguf, const char *file, const um_arch **out, um_error *err);
/* The row a parsed config.json asks for by model_type or architectures[0]. */
um_status um_arch_from_config(const cJSON *cfg, const char *file, const um_arch **out, um_error *err);

/* Maps a tensor name between the formats through the row's templates:
 * model.transformer.blocks.3.q_proj.weight <-> blk.3.attn_q.weight. False
 * for names that are no tensor of the architecture. role (may be NULL)
 * receives the tensor's role. */
bool um_arch_gguf_name(const um_arch *a, const char *hf_name, char *out, size_t n, um_tensor_role *role);
bool um_arch_hf_name(const um_arch *a, const char *gguf_name, char *out, size_t n, um_tensor_role *role);
/* The name of role (layer: for per-layer roles) with suffix ("weight", "bias"). */
bool um_arch_tensor_name(const um_tensor_names *t, um_tensor_role role, int layer, const char *suffix, char *out,
                         size_t n);
/* Whether name is one expert's tensor in a checkpoint of the row (the
 * expert roles' two-number templates); its role, layer and expert if so. */
bool um_arch_hf_expert(const um_arch *a, const char *name, um_tensor_role *role, int *layer, int *expert);
/* The name of an expert's tensor in a checkpoint that stores them one by one. */
bool um_arch_expert_name(const um_tensor_names *t, um_tensor_role role, int layer, int expert, const char *suffix,
                         char *out, size_t n);

/* Row r of a GGUF attn_q/attn_k tensor whose rows llama.cpp's converter
 * permuted for pairwise RoPE holds this checkpoint row. */
int64_t um_rope_pairs_source_row(int64_t r, int head_dim);

/* ---- hyper-parameters ------------------------------------------------------- */

/* The ranges every source is held to. */
#define UM_MAX_LAYERS 4096
#define UM_MAX_D_MODEL (1 << 17)
#define UM_MAX_HEADS 4096
#define UM_MAX_D_FF (1 << 20)
#define UM_MAX_VOCAB (1 << 24)
#define UM_MAX_SEQ (1 << 24)

/* v as an f32 hyper-parameter, out-of-range values as infinities (which
 * the validator refuses) rather than C's undefined conversion. */
float um_f32(double v);

/* How a source names each hyper-parameter, for the validator's messages
 * ("n_heads" in config.json, "llada.attention.head_count" in GGUF), written
 * as that source's messages show them. */
typedef struct um_hparam_names {
    const char *n_layers, *d_model, *n_heads, *n_kv_heads, *d_ff, *n_vocab, *max_seq, *norm_eps, *rope_theta,
        *mask_id, *vocab_size, *n_expert, *n_expert_used, *d_ff_exp;
    /* LLaDA2's (NULL for rows without them) */
    const char *n_dense_layers, *d_ff_shexp, *n_group, *n_group_used, *rope_dim, *diffusion_block;
} um_hparam_names;

/* The one check of hyper-parameters, whatever file they came from: ranges,
 * heads that divide into even sizes, norm epsilon and RoPE base usable as
 * f32, mask id in the vocabulary. source names the file in messages. */
um_status um_hparams_validate(const um_hparams *hp, const um_hparam_names *names, const char *source, um_error *err);

/* The keys of transformers' usual config (num_hidden_layers, hidden_size,
 * num_attention_heads, num_key_value_heads, vocab_size,
 * max_position_embeddings, eos_token_id, rms_norm_eps, rope_theta,
 * tie_word_embeddings) into hp, with the family's defaults for the context
 * length and epsilon: what Qwen2-like rows (Dream, LLaDA-MoE) share. */
um_status um_arch_read_transformers_config(const cJSON *cfg, const char *file, int max_seq, double eps,
                                           um_hparams *hp, um_error *err);

/* Parses config.json with the row's parser, validates and completes hp
 * (head_dim; eos/eot ids outside the vocabulary become -1). mask_id is the
 * mask token's id when config.json has none (-1: unknown; the loader finds
 * it in the tokenizer, um_hf_added_token). */
um_status um_arch_parse_config(const um_arch *a, const cJSON *cfg, const char *file, int mask_id, um_hparams *hp,
                               um_error *err);
/* text's id among the added tokens of dir/tokenizer.json; -1 when absent. */
int um_hf_added_token(const char *dir, const char *text);
/* The mask id of the checkpoint in dir when its config.json has none: the
 * tokenizer's mask token (the row's mask_token), else the row's default. */
int um_arch_hf_mask_id(const um_arch *a, const char *dir);

/* The GGUF hyper-parameter keys, in the order llama.cpp's converter writes
 * them: the reader (um_arch_read_gguf) and the writer (um_arch_write_gguf)
 * both go through this list, so no key is spelled twice. */
typedef enum {
    UM_KEY_BLOCK_COUNT,
    UM_KEY_CONTEXT_LENGTH,
    UM_KEY_HEAD_COUNT,
    UM_KEY_HEAD_COUNT_KV,
    UM_KEY_ROPE_FREQ_BASE,
    UM_KEY_RMS_EPS,
    UM_KEY_FILE_TYPE,
    UM_KEY_VOCAB_SIZE,
    UM_KEY_ROPE_DIM,
    UM_KEY_EMBEDDING_LENGTH,
    UM_KEY_FFN_LENGTH,
    UM_KEY_CAUSAL,
    UM_KEY_SHIFT_LOGITS,
    UM_KEY_EXPERT_COUNT,
    UM_KEY_EXPERT_USED_COUNT,
    UM_KEY_EXPERT_FFN_LENGTH,
    UM_KEY_MASK_ID, /* tokenizer.ggml.mask_token_id: among the model's keys for some converters */
    UM_KEY_LEADING_DENSE,     /* the rest as llama.cpp names them for its MoE families (bailingmoe2) */
    UM_KEY_EXPERT_SHARED_FFN_LENGTH,
    UM_KEY_EXPERT_WEIGHTS_SCALE,
    UM_KEY_EXPERT_SHARED_COUNT,
    UM_KEY_EXPERT_WEIGHTS_NORM,
    UM_KEY_EXPERT_GATING_FUNC,
    UM_KEY_EXPERT_GROUP_COUNT,
    UM_KEY_EXPERT_GROUP_USED_COUNT,
    UM_KEY_DIFFUSION_BLOCK,   /* block-causal models' block length (unmask's key: llama.cpp has none yet) */
    UM_KEY_COUNT
} um_gguf_key_id;

/* The key's name for architecture arch ("llada.block_count"). */
const char *um_gguf_key_name(um_gguf_key_id id, const char *arch, char *out, size_t n);

/* Hyper-parameters from a GGUF file's metadata and its embedding's shape,
 * validated. */
um_status um_arch_read_gguf(const um_arch *a, const um_gguf_file *f, um_hparams *hp, um_error *err);
/* Writes the keys of the list for hp, with file_type at its place. */
um_status um_arch_write_gguf(const um_arch *a, um_gguf_writer *w, const um_hparams *hp, uint32_t file_type,
                             um_error *err);

/* ---- LLaDA (model/llada.c) ---------------------------------------------------- */

extern const um_arch um_arch_llada;

/* ---- Dream (model/dream.c) ---------------------------------------------------- */

extern const um_arch um_arch_dream;

/* ---- LLaDA-MoE (model/llada_moe.c) --------------------------------------------- */

extern const um_arch um_arch_llada_moe;

/* ---- LLaDA2.0 (model/llada2.c) -------------------------------------------------- */

extern const um_arch um_arch_llada2;

#endif
