/* A loaded model (hyper-parameters, weights bound to the checkpoint's
 * mmapped tensors), immutable once loaded, and the contexts that run it: a
 * context holds the threads, the arithmetic and the working buffers, so any
 * number of contexts, on any threads, share one model. */
#ifndef UM_MODEL_H
#define UM_MODEL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "base/pool.h"
#include "model/weights.h"
#include "backend/backend.h"
#include "kernels/kernels.h"
#include "unmask.h"

/* The options of a transformer block that differ between architectures
 * (model/arch.h's table says which each one has). */
typedef enum {
    UM_FFN_DENSE, /* one gated FFN */
    UM_FFN_MOE    /* a router's top k of n_expert gated FFNs (the first n_dense_layers layers dense) */
} um_ffn_kind;
typedef enum {
    UM_ATTN_BIDIRECTIONAL, /* every position sees every other */
    UM_ATTN_BLOCK_CAUSAL   /* block diffusion (LLaDA2): a position sees its block and every earlier one */
} um_attn_mask;
typedef enum {
    UM_ROPE_HALVES, /* rotate-half (GPT-NeoX): pairs (i, i + head_dim/2); Hugging Face checkpoints */
    UM_ROPE_PAIRS   /* adjacent pairs (2i, 2i + 1): llama.cpp's LLAMA_ROPE_TYPE_NORM */
} um_rope_layout;

typedef struct {
    int n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff;
    int n_vocab; /* rows of the embedding and output head */
    int max_seq;
    float norm_eps, rope_theta;
    int mask_id, eos_id, eot_id; /* -1 when unknown */
    bool tied;     /* output head shares the embedding */
    bool qkv_bias; /* q/k/v projections have biases */
    bool bias;     /* every linear layer has a bias */
    bool rope_interleaved; /* q/k rows permuted for pairwise RoPE (llama.cpp's GGUF layout) */
    int vocab_size;        /* the tokenizer's vocabulary: at most n_vocab (embeddings may be padded) */
    bool qk_norm;          /* RMSNorm on q and k per head before RoPE */
    um_ffn_kind ffn;
    um_attn_mask attn_mask;
    int logit_shift;       /* position i's logits predict token i + logit_shift (Dream: 1) */
    /* mixture of experts (ffn UM_FFN_MOE): the FFN of each layer from
       n_dense_layers on is n_expert gated FFNs of d_ff_exp (the layers before
       it a dense one of d_ff); each token runs the n_expert_used of highest
       score (kernels/moe.h: the router's settings), plus a shared expert of
       d_ff_shexp when not 0 */
    int n_expert, n_expert_used, d_ff_exp, n_dense_layers, d_ff_shexp;
    int n_shared_experts; /* what d_ff_shexp is made of (d_ff_exp each): for the GGUF key */
    bool expert_bias;     /* each MoE layer has an expert bias */
    um_moe_router route;
    int rope_dim;    /* the rotated dimensions of a head: head_dim but for partial RoPE (LLaDA2: half) */
    int diffusion_block; /* block-causal models: the block length the model was trained with (32) */
} um_hparams;

typedef struct {
    float *attn_norm, *ffn_norm; /* f32 copies: tiny */
    float *q_norm, *k_norm;      /* [head_dim], shared by the heads; NULL without qk_norm */
    um_weight wq, wk, wv, wo, w_gate, w_up, w_down; /* w_gate/up/down: a dense FFN, or MoE's shared expert */
    float *bq, *bk, *bv, *bo, *b_gate, *b_up, *b_down; /* NULL when absent */
    um_moe_weights moe; /* mixture-of-experts FFN only */
} um_layer;

/* Buffers of one forward pass, in the context's backend, grown when a
 * larger batch arrives. */
typedef struct {
    int cap_tokens, cap_out;
    um_buffer x, xn, q, k, v, att, gate, up; /* [tokens][...] f32; gate/up: dense FFN only */
    um_buffer ids, pos;                      /* [tokens] i32: token ids, positions */
    um_buffer states;                        /* [outputs][d_model]: final normalized states of the selected positions */
    int n_out;                               /* rows of states the last forward wrote */
} um_workspace;

void um_workspace_free(um_backend *be, um_workspace *ws);

struct um_model {
    char arch[16];
    char weight_type[8];
    um_hparams hp;
    um_weight tok_embd, output;
    float *out_norm, *b_output;
    um_layer *layers;
    int64_t n_params;
    um_weights weights;
    int n_threads; /* the default of contexts made from this model */
    void **owned;  /* converted or realigned copies of tensors */
    int n_owned;
    bool repacked;         /* the matrices hold packed panels (um_model_repack) */
    size_t repacked_bytes; /* their size */
    size_t repack_skipped; /* the size they would have had, where memory did not allow it; else 0 */
};

struct um_context {
    const um_model *m;
    um_backend *be; /* threads, arithmetic, instruction set: the CPU backend */
    um_workspace ws;
};

/* The hyper-parameters of a parsed LLaDA config.json, validated (file names
 * it in errors); exposed for the config fuzzer. */
um_status um_llada_parse_hparams(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err);

/* Keys (after RoPE) and values of one sequence, every layer and position,
 * f32 in a backend's buffers, laid out [layer][pos][n_kv_heads * head_dim]:
 * what a KV-cached step reads for the positions it does not recompute. Each
 * sequence owns one. */
typedef struct {
    int n_layers, seq, kv_dim;
    const um_backend_ops *ops; /* the kind of backend its buffers belong to */
    um_buffer k, v;
} um_kv_cache;

um_status um_kv_cache_init(um_kv_cache *c, um_backend *be, const um_model *m, int seq, um_error *err);
void um_kv_cache_free(um_kv_cache *c);

/* One sequence of a batch. The pass computes its positions [q0, q1) (tokens
 * holds the whole sequence of len); their attention reads keys [0, n_kv).
 * With a cache, the keys and values of [q0, q1) are written into it and the
 * other slots hold what an earlier pass wrote there (n_kv = len for
 * bidirectional models; a block-causal one passes its block's end); without,
 * the pass covers the whole sequence (q0 = 0, q1 = n_kv = len). Outputs are
 * produced for the positions sel lists (inside [q0, q1); sel NULL: all of
 * [q0, q1), n_sel ignored), entry after entry, in the listed order. */
typedef struct {
    const int32_t *tokens;
    int len, q0, q1, n_kv;
    um_kv_cache *cache;
    const int32_t *sel;
    int n_sel;
    const float *embd; /* host rows [len][d_model] that replace the token embeddings of [q0, q1) (dInfer's
                          IterSmooth: soft inputs); NULL: the tokens' embeddings */
    int block;         /* block-causal attention: position i sees keys below min(n_kv, (i / block + 1) * block);
                          0: every query sees keys [0, n_kv) */
} um_batch_entry;

/* One forward pass over every entry, every matmul over all their tokens at
 * once. Leaves the final normalized states of the selected positions in the
 * context (ws.states, ws.n_out rows: the outputs) for um_context_pick or
 * um_context_logits. */
um_status um_forward_batch(um_context *ctx, const um_batch_entry *e, int n, um_error *err);
/* The picks of the requests (their rows: outputs of the last forward). */
um_status um_context_pick(um_context *ctx, const um_pick_request *req, int n, um_pick *out, um_error *err);
/* The logits of every output of the last forward, [n_out][n_vocab], into host memory. */
um_status um_context_logits(um_context *ctx, float *logits, um_error *err);

/* Forward pass over n_rows whole sequences of seq tokens with logits for the
 * positions in sel (the same for every row; NULL: all), laid out
 * [row][i][n_vocab] in the caller's buffer: the output head is skipped where
 * nobody reads it. */
um_status um_model_forward(um_context *ctx, const int32_t *tokens, int n_rows, int seq, const int32_t *sel, int n_sel,
                           float *logits, um_error *err);

/* Multiply-adds of one forward, for GFLOP/s reports: 2 * params * tokens for
 * the matmuls, plus attention's 4 * seq^2 * d per layer and row. */
double um_model_forward_flops(const um_model *m, int n_rows, int seq, int n_sel);

#endif
