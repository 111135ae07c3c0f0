/* A loaded model: hyper-parameters, weights bound to the checkpoint's mmapped
 * tensors, a thread pool and the forward pass's working buffers. */
#ifndef UM_MODEL_H
#define UM_MODEL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "base/pool.h"
#include "model/weights.h"
#include "kernels/kernels.h"
#include "unmask.h"

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
} um_hparams;

typedef struct {
    float *attn_norm, *ffn_norm; /* f32 copies: tiny */
    um_weight wq, wk, wv, wo, w_gate, w_up, w_down;
    float *bq, *bk, *bv, *bo, *b_gate, *b_up, *b_down; /* NULL when absent */
} um_layer;

/* Buffers of one forward pass, grown when a larger canvas arrives. */
typedef struct {
    int cap_tokens, cap_seq, cap_sel;
    float *x, *xn, *q, *k, *v, *att, *gate, *up;
    float *rope_cos, *rope_sin, *att_scratch, *mm_scratch, *head_in;
} um_workspace;

struct um_model {
    char arch[16];
    char weight_type[8];
    um_hparams hp;
    um_weight tok_embd, output;
    float *out_norm, *b_output;
    um_layer *layers;
    int64_t n_params;
    um_weights weights;
    um_pool *pool;
    void **owned; /* converted or realigned copies of tensors */
    int n_owned;
    um_workspace ws;
};

/* LLaDA (model_type "llada"): from a Hugging Face directory or a GGUF file
 * (general.architecture "llada"). */
um_status um_llada_load_hf(um_model *m, const char *dir, um_error *err);
um_status um_llada_load_gguf(um_model *m, const char *path, um_error *err);
/* The hyper-parameters of a parsed config.json (file names it in errors);
 * exposed for the config fuzzer. */
um_status um_llada_parse_hparams(const cJSON *cfg, const char *file, um_hparams *hp, um_error *err);

/* Forward pass over n_rows sequences of seq tokens. Logits are produced only
 * for the positions listed in sel (the same for every row; NULL: all), laid
 * out [row][i][n_vocab]: the output head is skipped where nobody reads it. */
um_status um_model_forward(um_model *m, const int32_t *tokens, int n_rows, int seq, const int32_t *sel, int n_sel,
                           float *logits, um_error *err);

/* Keys (after RoPE) and values of every layer, row and position of a canvas,
 * f32, laid out [layer][row][pos][n_kv_heads * head_dim]: what a KV-cached
 * decoding step reads for the positions it does not recompute. */
typedef struct {
    int n_layers, n_rows, seq, kv_dim;
    float *k, *v;
} um_kv_cache;

um_status um_kv_cache_init(um_kv_cache *c, const um_model *m, int n_rows, int seq, um_error *err);
void um_kv_cache_free(um_kv_cache *c);

/* Forward pass over the positions [q0, q1) of n_rows sequences of seq tokens
 * (tokens holds the whole rows). Their keys and values are written into
 * cache at [q0, q1), and their attention reads the cache's keys [0, n_kv):
 * the slots outside [q0, q1) hold what an earlier pass wrote there (n_kv =
 * seq for bidirectional models; a block-causal model passes its block's end).
 * With cache NULL the pass must cover the whole sequence (q0 = 0, q1 = n_kv =
 * seq) and keeps K/V in the workspace: um_model_forward. Logits as there, for
 * the listed positions, which must lie in [q0, q1). */
um_status um_model_forward_range(um_model *m, const int32_t *tokens, int n_rows, int seq, int q0, int q1, int n_kv,
                                 um_kv_cache *cache, const int32_t *sel, int n_sel, float *logits, um_error *err);

/* Multiply-adds of one forward, for GFLOP/s reports: 2 * params * tokens for
 * the matmuls, plus attention's 4 * seq^2 * d per layer and row. */
double um_model_forward_flops(const um_model *m, int n_rows, int seq, int n_sel);

#endif
