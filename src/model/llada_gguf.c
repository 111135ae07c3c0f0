/* LLaDA in llama.cpp's GGUF vocabulary (the `llada` architecture of
 * convert_hf_to_gguf.py): tensor names, hyper-parameter keys, and the q/k row
 * permutation the converter applies so llama.cpp can use pairwise RoPE. */
#include <stdio.h>
#include <string.h>

#include "model/llada_gguf.h"

/* Hugging Face suffix -> GGUF suffix, within a block or at the top level. */
static const struct {
    const char *hf, *gguf;
} block_names[] = {
    {"attn_norm", "attn_norm"}, {"q_proj", "attn_q"},    {"k_proj", "attn_k"},   {"v_proj", "attn_v"},
    {"attn_out", "attn_output"}, {"ff_norm", "ffn_norm"}, {"ff_proj", "ffn_gate"}, {"up_proj", "ffn_up"},
    {"ff_out", "ffn_down"},
};
static const struct {
    const char *hf, *gguf;
} top_names[] = {
    {"model.transformer.wte", "token_embd"},
    {"model.transformer.ln_f", "output_norm"},
    {"model.transformer.ff_out", "output"},
};

bool um_llada_gguf_name(const char *hf, char *out, size_t n) {
    const char *dot = strrchr(hf, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0))
        return false;
    size_t stem = (size_t)(dot - hf);
    for (size_t i = 0; i < sizeof top_names / sizeof *top_names; i++)
        if (strlen(top_names[i].hf) == stem && strncmp(hf, top_names[i].hf, stem) == 0)
            return (size_t)snprintf(out, n, "%s%s", top_names[i].gguf, dot) < n;
    int layer, used = 0;
    if (sscanf(hf, "model.transformer.blocks.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0)
        return false;
    const char *part = hf + used;
    size_t plen = (size_t)(dot - part);
    for (size_t i = 0; i < sizeof block_names / sizeof *block_names; i++)
        if (strlen(block_names[i].hf) == plen && strncmp(part, block_names[i].hf, plen) == 0)
            return (size_t)snprintf(out, n, "blk.%d.%s%s", layer, block_names[i].gguf, dot) < n;
    return false;
}

int64_t um_llada_gguf_qk_source_row(int64_t r, int head_dim) {
    /* The converter reshapes each head's rows as (2, head_dim/2) and swaps
     * the axes: GGUF row 2i + j of a head is checkpoint row j*head_dim/2 + i. */
    int64_t head = r / head_dim, within = r % head_dim, half = head_dim / 2;
    return head * head_dim + (within % 2) * half + within / 2;
}

static um_status get_u32_or(const um_gguf_file *f, const char *key, uint32_t dflt, uint32_t *out, um_error *err) {
    if (!um_gguf_find_kv(f, key)) {
        *out = dflt;
        return UM_OK;
    }
    return um_gguf_get_u32(f, key, out, err);
}

/* "<|eot_id|>" in the vocabulary, as the tokenizer.json path finds it. */
static int find_eot(const um_gguf_file *f) {
    const um_gguf_kv *tokens = um_gguf_find_kv(f, "tokenizer.ggml.tokens");
    if (!tokens || tokens->elem_type != UM_GGUF_STRING)
        return -1;
    for (uint64_t i = 0; i < tokens->count; i++) {
        um_gguf_str s;
        if (um_gguf_elem_str(tokens, i, &s) && um_gguf_str_eq(s, "<|eot_id|>"))
            return (int)i;
    }
    return -1;
}

static um_status require_false(const um_gguf_file *f, const char *key, um_error *err) {
    bool v = false;
    if (um_gguf_find_kv(f, key))
        UM_TRY(um_gguf_get_bool(f, key, &v, err));
    if (v)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: %s = true is not supported for llada", f->path, key);
    return UM_OK;
}

um_status um_llada_hparams_from_gguf(const um_gguf_file *f, um_hparams *hp, um_error *err) {
    uint32_t n_layers, d_model, n_heads, n_kv_heads, d_ff, ctx, vocab = 0, rope_dim = 0;
    float eps, theta = 10000.0f;
    const char *p = f->path;
    UM_TRY(um_gguf_get_u32(f, "llada.block_count", &n_layers, err));
    UM_TRY(um_gguf_get_u32(f, "llada.embedding_length", &d_model, err));
    UM_TRY(um_gguf_get_u32(f, "llada.feed_forward_length", &d_ff, err));
    UM_TRY(um_gguf_get_u32(f, "llada.attention.head_count", &n_heads, err));
    UM_TRY(get_u32_or(f, "llada.attention.head_count_kv", n_heads, &n_kv_heads, err));
    UM_TRY(get_u32_or(f, "llada.context_length", 4096, &ctx, err));
    UM_TRY(um_gguf_get_f32(f, "llada.attention.layer_norm_rms_epsilon", &eps, err));
    if (um_gguf_find_kv(f, "llada.rope.freq_base"))
        UM_TRY(um_gguf_get_f32(f, "llada.rope.freq_base", &theta, err));
    UM_TRY(require_false(f, "llada.attention.causal", err));
    UM_TRY(require_false(f, "diffusion.shift_logits", err));

    const struct {
        const char *key;
        uint32_t v, lo, hi;
    } ranges[] = {{"llada.block_count", n_layers, 1, 4096},        {"llada.embedding_length", d_model, 1, 1u << 17},
                  {"llada.attention.head_count", n_heads, 1, 4096}, {"llada.attention.head_count_kv", n_kv_heads, 1, 4096},
                  {"llada.feed_forward_length", d_ff, 1, 1u << 20}, {"llada.context_length", ctx, 1, 1u << 24}};
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi)
            return um_fail(err, UM_ERR_FORMAT, "%s: %s = %u is outside [%u, %u]", p, ranges[i].key, ranges[i].v,
                           ranges[i].lo, ranges[i].hi);
    if (n_heads % n_kv_heads != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: head_count %u is not a multiple of head_count_kv %u", p, n_heads,
                       n_kv_heads);
    if (d_model % n_heads != 0 || (d_model / n_heads) % 2 != 0)
        return um_fail(err, UM_ERR_FORMAT, "%s: embedding_length %u must split into %u heads of even size", p,
                       d_model, n_heads);
    UM_TRY(get_u32_or(f, "llada.rope.dimension_count", d_model / n_heads, &rope_dim, err));
    if (rope_dim != d_model / n_heads)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: partial RoPE (rope.dimension_count %u of head size %u)", p,
                       rope_dim, d_model / n_heads);
    if (!(eps > 0 && eps < 1))
        return um_fail(err, UM_ERR_FORMAT, "%s: llada.attention.layer_norm_rms_epsilon must be in (0, 1), got %g", p,
                       (double)eps);
    if (!(theta > 1)) /* as rope_theta in llada.c */
        return um_fail(err, UM_ERR_FORMAT, "%s: llada.rope.freq_base must be greater than 1, got %g", p,
                       (double)theta);

    /* the embedding's row count is the vocabulary the head produces */
    const um_gguf_tensor *emb = um_gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return um_fail(err, UM_ERR_FORMAT, "%s: missing 2-D tensor 'token_embd.weight'", p);
    if (emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return um_fail(err, UM_ERR_FORMAT, "%s: token_embd.weight has %lld rows", p, (long long)emb->ne[1]);
    UM_TRY(get_u32_or(f, "llada.vocab_size", (uint32_t)emb->ne[1], &vocab, err));
    if (vocab > emb->ne[1])
        return um_fail(err, UM_ERR_FORMAT, "%s: llada.vocab_size %u exceeds token_embd.weight's %lld rows", p,
                       vocab, (long long)emb->ne[1]);

    uint32_t mask_id, eos_id;
    UM_TRY(get_u32_or(f, "tokenizer.ggml.mask_token_id", 126336, &mask_id, err));
    UM_TRY(get_u32_or(f, "tokenizer.ggml.eos_token_id", UINT32_MAX, &eos_id, err));
    if (mask_id >= emb->ne[1])
        return um_fail(err, UM_ERR_FORMAT, "%s: tokenizer.ggml.mask_token_id %u is outside the vocabulary", p,
                       mask_id);
    memset(hp, 0, sizeof *hp);
    hp->n_layers = (int)n_layers;
    hp->d_model = (int)d_model;
    hp->n_heads = (int)n_heads;
    hp->n_kv_heads = (int)n_kv_heads;
    hp->head_dim = (int)(d_model / n_heads);
    hp->d_ff = (int)d_ff;
    hp->n_vocab = (int)emb->ne[1];
    hp->max_seq = (int)ctx;
    hp->norm_eps = eps;
    hp->rope_theta = theta;
    hp->mask_id = (int)mask_id;
    hp->eos_id = eos_id < emb->ne[1] ? (int)eos_id : -1;
    hp->eot_id = find_eot(f);
    hp->tied = !um_gguf_find_tensor(f, "output.weight");
    hp->qkv_bias = um_gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    hp->bias = um_gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    hp->rope_interleaved = true;
    return UM_OK;
}
