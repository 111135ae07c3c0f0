/* unmask init-random: a LLaDA, LLaDA-MoE or LLaDA2 model of a real shape with
 * random weights, in Hugging Face layout, so speed can be measured without
 * downloading 16 GB. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "base/sys.h"
#include "cli.h"
#include "format/safetensors.h"
#include "model/convert.h"

typedef struct {
    const char *name;
    int n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab, mask_id, eos_id, max_seq;
    int n_expert, n_expert_used, d_ff_exp; /* LLaDA-MoE or LLaDA2; 0: a dense LLaDA */
    int n_dense, n_group, n_group_used;    /* LLaDA2 (its first dense layers, router groups); 0: LLaDA-MoE */
} preset;

/* LLaDA-8B from its config.json; LLaDA-1B from the LLaDA paper's table of
 * architectures; LLaDA-MoE-7B-A1B as the fixtures' README gives the real
 * model (16 layers, hidden 2048, 16 heads, 64 experts, top 8, experts of
 * 1024, vocabulary 157184, mask 156895, EOS 156892); LLaDA2.0-mini from its
 * config.json (Ling-mini-2.0's shape: 20 layers, hidden 2048, 16 heads and
 * 4 kv heads of 128, the first layer dense of 5120, then 256 experts of 512
 * in 8 groups, 8 a token from the best 4 groups, one shared expert: 16.3B
 * parameters, 1.4B active); tiny matches the shape of the test fixtures. */
static const preset presets[] = {
    {"llada-8b", 32, 4096, 32, 32, 12288, 126464, 126336, 126081, 4096, 0, 0, 0, 0, 0, 0},
    {"llada-1b", 22, 2048, 32, 32, 5634, 126464, 126336, 126081, 4096, 0, 0, 0, 0, 0, 0},
    {"llada-moe-7b-a1b", 16, 2048, 16, 16, 8192, 157184, 156895, 156892, 8192, 64, 8, 1024, 0, 0, 0},
    {"llada2-mini", 20, 2048, 16, 4, 5120, 157184, 156895, 156892, 32768, 256, 8, 512, 1, 8, 4},
    {"tiny", 3, 64, 4, 4, 192, 512, 500, 501, 4096, 0, 0, 0, 0, 0, 0},
};

#define PRESET_NAMES "llada-8b, llada-1b, llada-moe-7b-a1b, llada2-mini, tiny"

static bool is_llada2(const preset *p) { return p->n_group > 0; }

static void init_usage(void) {
    puts("usage: unmask init-random --preset NAME -o DIR [--dtype bf16|f16|f32] [--std S] [-s SEED]\n"
         "                           [shape flags]\n"
         "\n"
         "Write a LLaDA (or LLaDA-MoE) model with random weights (uniform with std S; norms 1) in Hugging Face\n"
         "layout: DIR/config.json and DIR/model.safetensors: a real shape to benchmark, or the\n"
         "starting point of `unmask train`.\n"
         "\n"
         "  --preset NAME   llada-8b (8.0B params), llada-1b (1.7B), llada-moe-7b-a1b (7.4B, 64\n"
         "                  experts, 8 a token: 1.7B active), llada2-mini (LLaDA2.0-mini: 16.3B, 256\n"
         "                  experts, 8 a token: 1.4B active), tiny (0.23M; the default when only shape\n"
         "                  flags are given)\n"
         "  shape flags     override the preset: --layers N, --d-model N, --heads N, --kv-heads N,\n"
         "                  --ff N (SwiGLU hidden size), --vocab N, --mask-id N, --eos-id N,\n"
         "                  --max-seq N\n"
         "  --arch NAME     llada, the architecture the shape flags describe (the llada-moe-7b-a1b and\n"
         "                  llada2-mini presets write theirs; the flags reshape them too)\n"
         "  -o, --output DIR\n"
         "  -o FILE.gguf    write a GGUF file instead, of --type T (convert's types and recipes; default\n"
         "                  q4_k_m), the checkpoint never on disk: each tensor a window of one pool of\n"
         "                  random values, so tensors of a shape share values, which speed does not see\n"
         "                  (LLaDA2.0-mini's bf16 checkpoint is 33 GB, its Q4_K_M file 10 GB)\n"
         "  --dtype T       bf16 (default), f16 or f32\n"
         "  --std S         standard deviation of the weights (default 0.02, as at initialisation;\n"
         "                  larger values give the spread-out logits of a trained model)\n"
         "  -s, --seed N    random seed (default 0)\n"
         "  -h, --help      this help");
}

/* LLaDA-MoE's config.json (its configuration_lladamoe keys). */
static cJSON *moe_config(const preset *p) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("LLaDAMoEModelLM"));
    cJSON_AddStringToObject(c, "model_type", "llada");
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "num_hidden_layers", p->n_layers);
    cJSON_AddNumberToObject(c, "hidden_size", p->d_model);
    cJSON_AddNumberToObject(c, "num_attention_heads", p->n_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", p->n_kv_heads);
    cJSON_AddNumberToObject(c, "dense_intermediate_size", p->d_ff);
    cJSON_AddNumberToObject(c, "expert_intermediate_size", p->d_ff_exp);
    cJSON_AddNumberToObject(c, "num_experts", p->n_expert);
    cJSON_AddNumberToObject(c, "num_experts_per_tok", p->n_expert_used);
    cJSON_AddBoolToObject(c, "norm_topk_prob", 0);
    cJSON_AddBoolToObject(c, "qk_layernorm", 1);
    cJSON_AddNumberToObject(c, "vocab_size", p->vocab);
    cJSON_AddNumberToObject(c, "max_position_embeddings", p->max_seq);
    cJSON_AddNumberToObject(c, "mask_token_id", p->mask_id);
    cJSON_AddNumberToObject(c, "eos_token_id", p->eos_id);
    cJSON_AddNumberToObject(c, "pad_token_id", p->eos_id);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "rope_theta", 50000.0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    return c;
}

/* LLaDA2's config.json: the keys of LLaDA2.0-mini's (the fixture's), its values but for the shape. */
static cJSON *llada2_config(const preset *p) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("LLaDA2MoeModelLM"));
    cJSON_AddStringToObject(c, "model_type", "llada2_moe");
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    const struct {
        const char *key;
        double v;
    } numbers[] = {{"num_hidden_layers", p->n_layers}, {"hidden_size", p->d_model},
                   {"intermediate_size", p->d_ff}, {"first_k_dense_replace", p->n_dense},
                   {"moe_intermediate_size", p->d_ff_exp}, {"num_experts", p->n_expert},
                   {"num_experts_per_tok", p->n_expert_used}, {"num_shared_experts", 1},
                   {"n_group", p->n_group}, {"topk_group", p->n_group_used},
                   {"routed_scaling_factor", 2.5}, {"num_attention_heads", p->n_heads},
                   {"num_key_value_heads", p->n_kv_heads}, {"head_dim", p->d_model / p->n_heads},
                   {"partial_rotary_factor", 0.5}, {"rope_theta", 600000}, {"rms_norm_eps", 1e-6},
                   {"vocab_size", p->vocab}, {"max_position_embeddings", p->max_seq}, {"pad_token_id", p->eos_id}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
        cJSON_AddNumberToObject(c, numbers[i].key, numbers[i].v);
    cJSON_AddStringToObject(c, "score_function", "sigmoid");
    const struct {
        const char *key;
        bool v;
    } flags[] = {{"moe_router_enable_expert_bias", true}, {"norm_topk_prob", true}, {"use_qk_norm", true},
                 {"use_qkv_bias", false}, {"use_bias", false}, {"norm_head", false}, {"tie_word_embeddings", false}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        cJSON_AddBoolToObject(c, flags[i].key, flags[i].v);
    return c;
}

/* LLaDA's config.json (OLMo's keys). */
static cJSON *dense_config(const preset *p) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("LLaDAModelLM"));
    cJSON_AddStringToObject(c, "model_type", "llada");
    cJSON_AddStringToObject(c, "block_type", "llama");
    cJSON_AddStringToObject(c, "activation_type", "silu");
    cJSON_AddStringToObject(c, "layer_norm_type", "rms");
    cJSON_AddNumberToObject(c, "n_layers", p->n_layers);
    cJSON_AddNumberToObject(c, "d_model", p->d_model);
    cJSON_AddNumberToObject(c, "n_heads", p->n_heads);
    cJSON_AddNumberToObject(c, "n_kv_heads", p->n_kv_heads);
    cJSON_AddNumberToObject(c, "mlp_hidden_size", p->d_ff);
    cJSON_AddNumberToObject(c, "vocab_size", p->vocab);
    cJSON_AddNumberToObject(c, "embedding_size", p->vocab);
    cJSON_AddNumberToObject(c, "max_sequence_length", p->max_seq);
    cJSON_AddNumberToObject(c, "mask_token_id", p->mask_id);
    cJSON_AddNumberToObject(c, "eos_token_id", p->eos_id);
    cJSON_AddNumberToObject(c, "pad_token_id", p->eos_id);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "rope_theta", 500000.0);
    cJSON_AddBoolToObject(c, "rope", 1);
    cJSON_AddBoolToObject(c, "alibi", 0);
    cJSON_AddBoolToObject(c, "weight_tying", 0);
    cJSON_AddBoolToObject(c, "include_bias", 0);
    cJSON_AddBoolToObject(c, "include_qkv_bias", 0);
    return c;
}

static int write_config(const char *dir, const preset *p) {
    cJSON *c = is_llada2(p) ? llada2_config(p) : p->n_expert > 0 ? moe_config(p) : dense_config(p);
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    int ok = fp && text && fputs(text, fp) >= 0 && fputc('\n', fp) != EOF;
    if (fp && fclose(fp) != 0)
        ok = 0;
    free(text);
    if (!ok)
        cli_error("init-random", "%s: cannot write: %s", path, strerror(errno));
    return ok;
}

typedef struct {
    um_st_desc *d;
    int n;
    um_dtype dt;
} tensor_list;

static void add(tensor_list *t, const char *name, int n_dims, int64_t a, int64_t b) {
    t->d[t->n] = (um_st_desc){strdup(name), t->dt, n_dims, {a, b}, NULL};
    t->n++;
}

/* One dense LLaDA block (its checkpoint's names); norms are 1-D. */
static void dense_layer(tensor_list *t, const preset *p, int l) {
    int64_t dm = p->d_model, kv = (int64_t)p->n_kv_heads * (p->d_model / p->n_heads), ff = p->d_ff;
    const struct {
        const char *name;
        int nd;
        int64_t a, b;
    } parts[] = {{"attn_norm", 1, dm, 0}, {"q_proj", 2, dm, dm},  {"k_proj", 2, kv, dm},
                 {"v_proj", 2, kv, dm},   {"attn_out", 2, dm, dm}, {"ff_norm", 1, dm, 0},
                 {"ff_proj", 2, ff, dm},  {"up_proj", 2, ff, dm},  {"ff_out", 2, dm, ff}};
    char k[128];
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        snprintf(k, sizeof k, "model.transformer.blocks.%d.%s.weight", l, parts[i].name);
        add(t, k, parts[i].nd, parts[i].a, parts[i].b);
    }
}

/* One LLaDA-MoE block: attention with QK-norm, the router, the experts. */
static void moe_layer(tensor_list *t, const preset *p, int l) {
    int64_t dm = p->d_model, hd = p->d_model / p->n_heads, kv = (int64_t)p->n_kv_heads * hd, ff = p->d_ff_exp;
    char k[160];
#define LAYER_TENSOR(part, nd, a, b)                                            \
    do {                                                                       \
        snprintf(k, sizeof k, "model.layers.%d.%s.weight", l, part);           \
        add(t, k, nd, a, b);                                                   \
    } while (0)
    LAYER_TENSOR("input_layernorm", 1, dm, 0);
    LAYER_TENSOR("self_attn.q_proj", 2, dm, dm);
    LAYER_TENSOR("self_attn.k_proj", 2, kv, dm);
    LAYER_TENSOR("self_attn.v_proj", 2, kv, dm);
    LAYER_TENSOR("self_attn.o_proj", 2, dm, dm);
    LAYER_TENSOR("self_attn.q_norm", 1, hd, 0);
    LAYER_TENSOR("self_attn.k_norm", 1, hd, 0);
    LAYER_TENSOR("post_attention_layernorm", 1, dm, 0);
    LAYER_TENSOR("mlp.gate", 2, p->n_expert, dm);
#undef LAYER_TENSOR
    for (int e = 0; e < p->n_expert; e++) {
        const char *proj[] = {"gate_proj", "up_proj", "down_proj"};
        for (int i = 0; i < 3; i++) {
            snprintf(k, sizeof k, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj[i]);
            add(t, k, 2, i < 2 ? ff : dm, i < 2 ? dm : ff);
        }
    }
}

/* One LLaDA2 block: fused q/k/v with QK-norm, then a dense FFN (the first
 * layers) or the router with its expert bias, the experts and the shared one. */
static void llada2_layer(tensor_list *t, const preset *p, int l) {
    int64_t dm = p->d_model, hd = p->d_model / p->n_heads, kv = (int64_t)p->n_kv_heads * hd, ff = p->d_ff_exp;
    char k[160];
    const struct {
        const char *part;
        int nd;
        int64_t a, b;
    } attn[] = {{"input_layernorm", 1, dm, 0},           {"attention.query_key_value", 2, dm + 2 * kv, dm},
                {"attention.query_layernorm", 1, hd, 0}, {"attention.key_layernorm", 1, hd, 0},
                {"attention.dense", 2, dm, dm},          {"post_attention_layernorm", 1, dm, 0}};
    for (size_t i = 0; i < sizeof attn / sizeof *attn; i++) {
        snprintf(k, sizeof k, "model.layers.%d.%s.weight", l, attn[i].part);
        add(t, k, attn[i].nd, attn[i].a, attn[i].b);
    }
    const char *proj[] = {"gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 3 && l < p->n_dense; i++) {
        snprintf(k, sizeof k, "model.layers.%d.mlp.%s.weight", l, proj[i]);
        add(t, k, 2, i < 2 ? p->d_ff : dm, i < 2 ? dm : p->d_ff);
    }
    if (l < p->n_dense)
        return;
    snprintf(k, sizeof k, "model.layers.%d.mlp.gate.weight", l);
    add(t, k, 2, p->n_expert, dm);
    snprintf(k, sizeof k, "model.layers.%d.mlp.gate.expert_bias", l);
    add(t, k, 1, p->n_expert, 0);
    for (int e = 0; e < p->n_expert; e++)
        for (int i = 0; i < 3; i++) {
            snprintf(k, sizeof k, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj[i]);
            add(t, k, 2, i < 2 ? ff : dm, i < 2 ? dm : ff);
        }
    for (int i = 0; i < 3; i++) {
        snprintf(k, sizeof k, "model.layers.%d.mlp.shared_experts.%s.weight", l, proj[i]);
        add(t, k, 2, i < 2 ? ff : dm, i < 2 ? dm : ff);
    }
}

/* Tensors in checkpoint order. */
static int describe(const preset *p, um_dtype dt, um_st_desc **out) {
    int per_layer = p->n_expert > 0 ? 14 + 3 * p->n_expert : 9;
    tensor_list t = {calloc((size_t)(4 + per_layer * p->n_layers), sizeof *t.d), 0, dt};
    if (!t.d)
        return -1;
    bool moe = p->n_expert > 0, llada2 = is_llada2(p);
    const char *embd = llada2 ? "model.word_embeddings.weight"
                       : moe  ? "model.embed_tokens.weight"
                              : "model.transformer.wte.weight";
    add(&t, embd, 2, p->vocab, p->d_model);
    for (int l = 0; l < p->n_layers; l++)
        (llada2 ? llada2_layer : moe ? moe_layer : dense_layer)(&t, p, l);
    add(&t, moe ? "model.norm.weight" : "model.transformer.ln_f.weight", 1, p->d_model, 0);
    add(&t, moe ? "lm_head.weight" : "model.transformer.ff_out.weight", 2, p->vocab, p->d_model);
    *out = t.d;
    return t.n;
}

static void store(void *buf, size_t i, um_dtype dt, float v) {
    if (dt == UM_F32)
        ((float *)buf)[i] = v;
    else if (dt == UM_BF16)
        ((uint16_t *)buf)[i] = um_f32_to_bf16(v);
    else
        ((uint16_t *)buf)[i] = um_f32_to_f16(v);
}

/* Streams one tensor's random values to fp in chunks. */
static int write_tensor(FILE *fp, const um_st_desc *d, um_rng *rng, double std, void *buf, size_t chunk) {
    size_t n = um_st_desc_nbytes(d) / um_dtype_size(d->dtype), es = um_dtype_size(d->dtype);
    int is_norm = d->n_dims == 1 && !strstr(d->name, "expert_bias"); /* norms are 1; the bias is random too */
    const double a = std * 1.7320508075688772; /* uniform(-a, a) has this std */
    for (size_t done = 0; done < n;) {
        size_t m = n - done < chunk ? n - done : chunk;
        for (size_t i = 0; i < m; i++)
            store(buf, i, d->dtype, is_norm ? 1.0f : (float)((2.0 * um_rng_uniform(rng) - 1.0) * a));
        if (fwrite(buf, es, m, fp) != m)
            return 0;
        done += m;
    }
    return 1;
}

/* The shape flags: each sets one field of *s (0: keep the preset's). */
static bool shape_flag(cli_args *a, preset *s) {
    const struct {
        const char *flag;
        int *field;
    } flags[] = {{"--layers", &s->n_layers}, {"--d-model", &s->d_model}, {"--heads", &s->n_heads},
                 {"--kv-heads", &s->n_kv_heads}, {"--ff", &s->d_ff}, {"--vocab", &s->vocab},
                 {"--mask-id", &s->mask_id}, {"--eos-id", &s->eos_id}, {"--max-seq", &s->max_seq}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (cli_is(a, NULL, flags[i].flag)) {
            *flags[i].field = cli_int(a, flags[i].field == &s->mask_id || flags[i].field == &s->eos_id ? 0 : 1,
                                      1 << 24);
            return true;
        }
    return false;
}

/* p with the fields of s that were given; checks that the shape holds together. */
static bool apply_shape(preset *p, const preset *s) {
    int *dst[] = {&p->n_layers, &p->d_model, &p->n_heads, &p->n_kv_heads, &p->d_ff, &p->vocab, &p->max_seq};
    const int src[] = {s->n_layers, s->d_model, s->n_heads, s->n_kv_heads, s->d_ff, s->vocab, s->max_seq};
    for (size_t i = 0; i < sizeof src / sizeof *src; i++)
        if (src[i] > 0)
            *dst[i] = src[i];
    if (s->n_heads > 0 && s->n_kv_heads <= 0)
        p->n_kv_heads = p->n_heads;
    /* special ids default to the last two of the vocabulary */
    p->mask_id = s->mask_id > 0 ? s->mask_id : (s->vocab > 0 ? p->vocab - 1 : p->mask_id);
    p->eos_id = s->eos_id > 0 ? s->eos_id : (s->vocab > 0 ? p->vocab - 2 : p->eos_id);
    if (p->d_model % p->n_heads || p->n_heads % p->n_kv_heads || (p->d_model / p->n_heads) % 2) {
        cli_error("init-random", "--d-model %d must split into --heads %d of even size, grouped by --kv-heads %d",
                  p->d_model, p->n_heads, p->n_kv_heads);
        return false;
    }
    if (p->mask_id >= p->vocab || p->eos_id >= p->vocab) {
        cli_error("init-random", "--mask-id %d and --eos-id %d must be below --vocab %d", p->mask_id, p->eos_id,
                  p->vocab);
        return false;
    }
    return true;
}

static void gguf_progress(void *user, int index, int count, const char *name, um_dtype type) {
    const double *t0 = user;
    cli_progress(index + 1, count, "init-random: [%3d/%3d] %-32.32s -> %-6s %6.1f s", index + 1, count, name,
                 um_dtype_name(type), um_now() - *t0);
}

/* The preset straight to GGUF: its tensors are windows of one pool of random
 * bf16 values (norms: ones) at offsets that differ from tensor to tensor. */
static int write_gguf(const preset *p, const char *path, const char *type, double std, uint64_t seed) {
    um_convert_params cp = {um_recipe_find(type), "random", 0, gguf_progress, NULL};
    if (!cp.recipe) {
        cli_error("init-random", "--type: unknown type or recipe '%s' (see unmask convert --help)", type);
        return 2;
    }
    um_st_desc *descs = NULL;
    int n = describe(p, UM_BF16, &descs);
    size_t largest = 0;
    for (int i = 0; i < n; i++)
        largest = um_st_desc_nbytes(&descs[i]) > largest ? um_st_desc_nbytes(&descs[i]) : largest;
    size_t ones = 1 << 20, spread = 64u << 20, count = ones + (largest + spread) / 2;
    uint16_t *pool = malloc(count * sizeof *pool);
    um_st_tensor *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
    if (n <= 0 || !pool || !t) {
        cli_error("init-random", "out of memory for a pool of %.1f GB", (double)count * 2 / 1e9);
        free(pool), free(t);
        return 1;
    }
    um_rng rng;
    um_rng_seed(&rng, seed);
    const double a = std * 1.7320508075688772; /* uniform(-a, a) has this std */
    for (size_t i = 0; i < count; i++)
        pool[i] = um_f32_to_bf16(i < ones ? 1.0f : (float)((2.0 * um_rng_uniform(&rng) - 1.0) * a));
    for (int i = 0; i < n; i++) {
        size_t bytes = um_st_desc_nbytes(&descs[i]);
        bool norm = descs[i].n_dims == 1 && !strstr(descs[i].name, "expert_bias");
        size_t at = norm ? 0 : ones + (size_t)(((uint64_t)i * 2654435761u) % (spread / 2));
        t[i] = (um_st_tensor){(char *)descs[i].name, UM_BF16, descs[i].n_dims, {descs[i].shape[0], descs[i].shape[1]},
                              (const uint8_t *)(pool + at), bytes};
    }
    cJSON *cfg = is_llada2(p) ? llada2_config(p) : p->n_expert > 0 ? moe_config(p) : dense_config(p);
    double t0 = um_now();
    cp.progress_user = &t0;
    um_error err;
    um_status st = um_convert_tensors_to_gguf(cfg, t, n, path, &cp, &err);
    if (st != UM_OK)
        cli_error("init-random", "%s", err.msg);
    else
        fprintf(stderr, "init-random: wrote %s (%s) in %.1f s\n", path, type, um_now() - t0);
    cJSON_Delete(cfg);
    for (int i = 0; i < n; i++)
        free((char *)descs[i].name);
    free(descs);
    free(t);
    free(pool);
    return st == UM_OK ? 0 : 1;
}

int cmd_init_random(int argc, char **argv) {
    cli_args a;
    const char *preset_name = NULL, *dir = NULL, *dtype_name = "bf16", *type = "q4_k_m";
    preset shape = {0};
    bool custom = false;
    uint64_t seed = 0;
    double std = 0.02;
    cli_init(&a, "init-random", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            init_usage();
            return 0;
        } else if (cli_is(&a, NULL, "--preset")) preset_name = cli_value(&a);
        else if (cli_is(&a, "-o", "--output")) dir = cli_value(&a);
        else if (cli_is(&a, NULL, "--dtype")) dtype_name = cli_value(&a);
        else if (cli_is(&a, NULL, "--type")) type = cli_value(&a);
        else if (cli_is(&a, "-s", "--seed")) seed = cli_u64(&a);
        else if (cli_is(&a, NULL, "--std")) std = cli_double(&a, 0, 10);
        else if (shape_flag(&a, &shape)) custom = true;
        else if (cli_is(&a, NULL, "--arch")) {
            const char *arch = cli_value(&a);
            if (a.ok && strcmp(arch, "llada") != 0) {
                cli_error("init-random", "--arch: only 'llada' is supported, got '%s'", arch);
                a.ok = false;
            }
        } else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    const preset *p = NULL;
    if (!preset_name && custom)
        preset_name = "tiny";
    for (size_t i = 0; preset_name && i < sizeof presets / sizeof *presets; i++)
        if (strcmp(preset_name, presets[i].name) == 0)
            p = &presets[i];
    if (preset_name && !p) {
        cli_error("init-random", "unknown preset '%s' (" PRESET_NAMES ")", preset_name);
        return 2;
    }
    if (!p || !dir) {
        cli_error("init-random", "need --preset (" PRESET_NAMES ") and -o DIR");
        return 2;
    }
    preset chosen = *p;
    if (custom) {
        chosen.name = "custom";
        if (!apply_shape(&chosen, &shape))
            return 2;
        p = &chosen;
    }
    size_t len = strlen(dir);
    if (len > 5 && strcmp(dir + len - 5, ".gguf") == 0)
        return write_gguf(p, dir, type, std, seed);
    um_dtype dt = strcmp(dtype_name, "f32") == 0 ? UM_F32 : strcmp(dtype_name, "f16") == 0 ? UM_F16 : UM_BF16;
    if (strcmp(dtype_name, "bf16") != 0 && dt == UM_BF16) {
        cli_error("init-random", "--dtype: expected bf16, f16 or f32, got '%s'", dtype_name);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cli_error("init-random", "%s: cannot create: %s", dir, strerror(errno));
        return 1;
    }
    if (!write_config(dir, p))
        return 1;
    um_st_desc *descs = NULL;
    int n = describe(p, dt, &descs);
    size_t chunk = 1u << 20;
    void *buf = malloc(chunk * 4);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    um_error err;
    int ok = n > 0 && buf && fp && um_st_write_header(fp, descs, n, path, &err) == UM_OK;
    um_rng rng;
    um_rng_seed(&rng, seed);
    double total = 0, done = 0;
    for (int i = 0; i < n; i++)
        total += (double)um_st_desc_nbytes(&descs[i]);
    for (int i = 0; ok && i < n; i++) {
        ok = write_tensor(fp, &descs[i], &rng, std, buf, chunk);
        done += (double)um_st_desc_nbytes(&descs[i]);
        cli_progress(i + 1, n, "init-random: %s %3d/%d tensors, %.2f / %.2f GB", p->name, i + 1, n, done / 1e9,
                     total / 1e9);
    }
    if (fp && fclose(fp) != 0)
        ok = 0;
    if (!ok)
        cli_error("init-random", "%s: write failed: %s", path, strerror(errno));
    else
        fprintf(stderr, "init-random: wrote %s (%s)\n", dir, dtype_name);
    for (int i = 0; i < n; i++)
        free((char *)descs[i].name);
    free(descs);
    free(buf);
    return ok ? 0 : 1;
}
