/* Writing GGUF files llama.cpp reads: a Hugging Face LLaDA checkpoint to the
 * `llada` architecture as convert_hf_to_gguf.py writes it (same metadata keys
 * in the same order, same tensor names, q/k rows permuted for pairwise
 * RoPE), and GGUF to GGUF re-quantization as llama-quantize does. Tensors are
 * converted one at a time, rows in parallel, and streamed to the writer. */
#include "model/convert.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "base/sys.h"
#include "format/json.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "model/arch.h"
#include "model/weights.h"

#define GGUF_QUANTIZATION_VERSION 2
#define TOKENIZER_MAX_BYTES (256u << 20)

/* ---- tensor data ---------------------------------------------------------- */

/* One tensor to write: where its rows come from and what they become. */
typedef struct {
    const uint8_t *src;    /* source data: rows of src_type, PyTorch layout */
    um_dtype src_type, dst_type;
    int64_t rows, cols;
    int permute_head_dim;  /* > 0: q/k rows reordered for pairwise RoPE */
    uint8_t *dst;          /* the converted tensor */
    float *scratch;        /* per thread: one row of floats, one aligned source row */
    size_t scratch_floats;
} convert_job;

#define ROWS_PER_TASK 16

static void convert_rows(void *ctx, int task, int thread) {
    const convert_job *j = ctx;
    size_t src_row = um_row_bytes(j->src_type, j->cols), dst_row = um_row_bytes(j->dst_type, j->cols);
    float *f = j->scratch + (size_t)thread * j->scratch_floats;
    void *aligned = f + j->cols; /* the source row copied to an aligned place */
    um_weight w = {j->src_type, 1, j->cols, aligned, false, NULL};
    for (int64_t r = (int64_t)task * ROWS_PER_TASK; r < j->rows && r < (int64_t)(task + 1) * ROWS_PER_TASK; r++) {
        int64_t from = j->permute_head_dim > 0 ? um_rope_pairs_source_row(r, j->permute_head_dim) : r;
        memcpy(aligned, j->src + (size_t)from * src_row, src_row);
        um_weight_row_f32(&w, 0, f);
        um_quantize_row(j->dst_type, f, j->dst + (size_t)r * dst_row, j->cols);
    }
}

typedef struct {
    um_pool *pool;
    const uint8_t *src;
    const uint8_t **parts; /* a stack of experts: the source of each part's rows (src unused) */
    const uint8_t **parts_owned; /* plans[0] of a conversion: the array the parts point into */
    int n_parts;
    um_dtype src_type, dst_type;
    int n_dims;
    int64_t rows, cols;    /* rows of all the parts together */
    int permute_head_dim;
    const char *name; /* in the output file */
    int64_t ne[4];    /* the output shape, innermost first */
    um_convert_progress progress;
    void *progress_user;
    int index, count;
} tensor_plan;

/* The writer's data callback: converts the whole tensor (part after part
 * for a stack of experts), then writes it. */
static um_status write_tensor(void *user, const char *name, um_gguf_sink *sink, um_error *err) {
    tensor_plan *t = user;
    if (t->progress)
        t->progress(t->progress_user, t->index, t->count, t->name, t->dst_type);
    int n_parts = t->n_parts > 0 ? t->n_parts : 1;
    int64_t part_rows = t->rows / n_parts;
    size_t dst_bytes = um_row_bytes(t->dst_type, t->cols) * (size_t)part_rows;
    bool copy = t->src_type == t->dst_type && t->permute_head_dim == 0;
    int nt = um_pool_threads(t->pool);
    size_t per = (size_t)t->cols * 2 + 16;
    convert_job j = {NULL, t->src_type, t->dst_type, part_rows, t->cols, t->permute_head_dim,
                     copy ? NULL : malloc(dst_bytes ? dst_bytes : 1),
                     copy ? NULL : malloc((size_t)nt * per * sizeof(float)), per};
    um_status s = UM_OK;
    if (!copy && (!j.dst || !j.scratch))
        s = um_fail(err, UM_ERR_NOMEM, "out of memory converting '%s'", name);
    for (int p = 0; s == UM_OK && p < n_parts; p++) {
        j.src = t->n_parts > 0 ? t->parts[p] : t->src;
        if (!copy)
            um_pool_run(t->pool, (int)((part_rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK), convert_rows, &j);
        s = um_gguf_sink_write(sink, copy ? j.src : j.dst, dst_bytes, err);
    }
    free(j.dst);
    free(j.scratch);
    return s;
}

/* ---- metadata ------------------------------------------------------------- */

/* gguf-py's size label: 225728 -> "226K", 8.02e9 -> "8.0B". */
static void size_label(int64_t n, char *out, size_t size) {
    double x = (double)n;
    const char *suffix = "K";
    double scaled = x * 1e-3;
    if (x > 1e12) suffix = "T", scaled = x * 1e-12;
    else if (x > 1e9) suffix = "B", scaled = x * 1e-9;
    else if (x > 1e6) suffix = "M", scaled = x * 1e-6;
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", round(scaled));
    int fix = 2 - (int)strlen(digits);
    snprintf(out, size, "%.*f%s", fix > 0 ? fix : 0, scaled, suffix);
}

/* "tiny-llada" -> "Tiny Llada", as convert_hf_to_gguf.py names models. */
static void model_name(const char *dir, char *out, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    size_t o = 0;
    bool word_start = true;
    for (size_t i = start; i < len && o + 1 < n; i++) {
        char c = dir[i] == '-' || dir[i] == '_' ? ' ' : dir[i];
        out[o++] = word_start ? (char)toupper((unsigned char)c) : c;
        word_start = c == ' ';
    }
    out[o] = 0;
}

typedef struct {
    cJSON *tok, *tok_cfg;
} tokenizer_files;

/* The id of a special token named in tokenizer_config.json (a string or an
 * object with "content"), looked up among the vocabulary and added tokens. */
static int special_id(const tokenizer_files *tf, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tf->tok_cfg, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tf->tok, "added_tokens")) {
        const char *c = um_json_get_string(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (c && cJSON_IsNumber(id) && strcmp(c, v->valuestring) == 0)
            return id->valueint;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tf->tok, "model");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(model, "vocab"), v->valuestring);
    return cJSON_IsNumber(id) ? id->valueint : -1;
}

/* llama.cpp names the pre-tokenizer by a hash of the tokenizer's behaviour;
 * we recognise the split regex instead. */
static const char *pre_tokenizer_name(const cJSON *tok) {
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(tok, "pre_tokenizer");
    const char *type = um_json_get_string(pre, "type");
    if (type && strcmp(type, "ByteLevel") == 0) {
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pre, "use_regex");
        return !rx || cJSON_IsTrue(rx) ? "gpt-2" : "default";
    }
    char *text = cJSON_PrintUnformatted(pre);
    const char *name = "default";
    if (text && strstr(text, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}"))
        name = "llama-bpe";
    else if (text && strstr(text, "\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*"))
        name = "qwen2";
    free(text);
    return name;
}

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

/* tokenizer.ggml.tokens / token_type for ids [0, vocab): the BPE vocabulary,
 * added tokens over it, "[PAD<i>]" for ids nobody uses. */
static um_status add_vocab(um_gguf_writer *w, const tokenizer_files *tf, int vocab, const char *path,
                           um_error *err) {
    char **tokens = calloc((size_t)vocab, sizeof *tokens);
    int32_t *types = calloc((size_t)vocab, sizeof *types);
    um_status s = tokens && types ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tf->tok, "model"), *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        if (s == UM_OK && cJSON_IsNumber(e) && e->valueint >= 0 && e->valueint < vocab && !tokens[e->valueint]) {
            tokens[e->valueint] = e->string;
            types[e->valueint] = TOKEN_NORMAL;
        }
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(tf->tok, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = um_json_get_string(e, "content");
        if (s == UM_OK && content && cJSON_IsNumber(id) && id->valueint >= 0 && id->valueint < vocab) {
            tokens[id->valueint] = (char *)content;
            types[id->valueint] =
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
        }
    }
    char **pads = calloc((size_t)vocab, sizeof *pads);
    for (int i = 0; s == UM_OK && i < vocab; i++) {
        if (tokens[i])
            continue;
        pads[i] = malloc(24);
        if (!pads || !pads[i]) {
            s = um_fail(err, UM_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(pads[i], 24, "[PAD%d]", i);
        tokens[i] = pads[i];
        types[i] = TOKEN_UNUSED;
    }
    if (s == UM_OK)
        s = um_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)tokens, NULL, (size_t)vocab,
                                       err);
    if (s == UM_OK)
        s = um_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", UM_GGUF_INT32, types, (size_t)vocab, err);
    for (int i = 0; pads && i < vocab; i++)
        free(pads[i]);
    free(pads);
    free(tokens);
    free(types);
    if (s != UM_OK)
        um_error_prefix(err, "%s", path);
    return s;
}

/* Merges are "a b" strings or, in newer files, ["a", "b"] pairs. */
static um_status add_merges(um_gguf_writer *w, const cJSON *tok, um_error *err) {
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tok, "model"), "merges");
    int n = cJSON_GetArraySize(merges);
    char **strs = calloc((size_t)n + 1, sizeof *strs);
    if (!strs)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        if (cJSON_IsString(e)) {
            strs[count++] = strdup(e->valuestring);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) {
            const char *a = cJSON_GetStringValue(cJSON_GetArrayItem(e, 0));
            const char *b = cJSON_GetStringValue(cJSON_GetArrayItem(e, 1));
            if (a && b && (strs[count] = malloc(strlen(a) + strlen(b) + 2)))
                sprintf(strs[count++], "%s %s", a, b);
        }
    }
    um_status s = um_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)strs, NULL,
                                             (size_t)count, err);
    for (int i = 0; i < count; i++)
        free(strs[i]);
    free(strs);
    return s;
}

static void load_tokenizer(const char *dir, tokenizer_files *tf) {
    char path[4096];
    tf->tok = tf->tok_cfg = NULL;
    if (!*dir) /* tensors from memory */
        return;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (um_file_exists(path))
        um_json_load(path, TOKENIZER_MAX_BYTES, &tf->tok, NULL);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (um_file_exists(path))
        um_json_load(path, TOKENIZER_MAX_BYTES, &tf->tok_cfg, NULL);
}

static bool writes_key(const um_arch *a, um_gguf_key_id id) {
    for (const int *k = a->gguf_write_keys; *k != UM_KEY_COUNT; k++)
        if (*k == (int)id)
            return true;
    return false;
}

/* tokenizer.* keys in the order llama.cpp's converter writes them. */
static um_status add_tokenizer(um_gguf_writer *w, const um_arch *a, const tokenizer_files *tf, const um_hparams *hp,
                               int vocab, const char *dir, um_error *err) {
    UM_TRY(um_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", err));
    UM_TRY(um_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre_tokenizer_name(tf->tok), err));
    UM_TRY(add_vocab(w, tf, vocab, dir, err));
    UM_TRY(add_merges(w, tf->tok, err));
    int bos = special_id(tf, "bos_token"), eos = special_id(tf, "eos_token"), pad = special_id(tf, "pad_token");
    if (eos < 0)
        eos = hp->eos_id;
    if (bos >= 0)
        UM_TRY(um_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err));
    if (eos >= 0)
        UM_TRY(um_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err));
    if (pad >= 0)
        UM_TRY(um_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err));
    if (!writes_key(a, UM_KEY_MASK_ID))
        UM_TRY(um_gguf_writer_add_u32(w, "tokenizer.ggml.mask_token_id", (uint32_t)hp->mask_id, err));
    bool add_bos = a->gguf_add_bos || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tf->tok_cfg, "add_bos_token"));
    UM_TRY(um_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err));
    bool add_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tf->tok_cfg, "add_eos_token"));
    UM_TRY(um_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err));
    const char *tmpl = um_json_get_string(tf->tok_cfg, "chat_template");
    if (tmpl)
        UM_TRY(um_gguf_writer_add_str(w, "tokenizer.chat_template", tmpl, err));
    return UM_OK;
}

/* general.* and the architecture's keys (llada.*), in the converter's order. */
static um_status add_hparams(um_gguf_writer *w, const um_arch *a, const um_hparams *hp, const char *name,
                             int64_t n_params, const um_recipe *r, um_error *err) {
    char label[32];
    size_label(n_params, label, sizeof label);
    UM_TRY(um_gguf_writer_add_str(w, "general.architecture", a->gguf_name, err));
    UM_TRY(um_gguf_writer_add_str(w, "general.type", "model", err));
    UM_TRY(um_gguf_writer_add_str(w, "general.name", name, err));
    UM_TRY(um_gguf_writer_add_str(w, "general.size_label", label, err));
    UM_TRY(um_arch_write_gguf(a, w, hp, r->file_type, err));
    return um_gguf_writer_add_u32(w, "general.quantization_version", GGUF_QUANTIZATION_VERSION, err);
}

/* ---- HF -> GGUF ----------------------------------------------------------- */

typedef struct {
    const um_st_tensor *t;
    const char *file;
} tensor_in_file;

static int cmp_file_then_name(const void *a, const void *b) {
    const tensor_in_file *x = a, *y = b;
    int f = strcmp(x->file, y->file);
    return f ? f : strcmp(x->t->name, y->t->name);
}

/* llama.cpp's converter reads the shards in the order of their file names,
 * each shard's tensors sorted by name (safetensors' safe_open lists keys
 * sorted): write in that order so our files match its files tensor for
 * tensor. */
static um_status sort_like_llama_cpp(um_checkpoint *ck, um_error *err) {
    tensor_in_file *v = malloc((size_t)(ck->n_tensors > 0 ? ck->n_tensors : 1) * sizeof *v);
    if (!v)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ck->n_tensors; i++)
        v[i] = (tensor_in_file){ck->tensors[i], ck->tensor_file[i]};
    qsort(v, (size_t)ck->n_tensors, sizeof *v, cmp_file_then_name);
    for (int i = 0; i < ck->n_tensors; i++) {
        ck->tensors[i] = v[i].t;
        ck->tensor_file[i] = v[i].file;
    }
    free(v);
    return UM_OK;
}

/* The GGUF tensor of a checkpoint tensor, or of a stack of n_parts experts
 * whose rows come from parts (rows: all of them; NULL for one tensor). */
static um_status plan_one(tensor_plan *p, const um_st_tensor *t, const uint8_t **parts, int n_parts,
                          const char *gname, um_tensor_role role, const um_arch *a, const um_hparams *hp,
                          const um_recipe *r, um_error *err) {
    p->src = t->data;
    p->parts = parts;
    p->n_parts = n_parts;
    p->src_type = t->dtype;
    p->n_dims = t->n_dims + (parts ? 1 : 0);
    /* a vector is converted as rows of one value, so q/k biases permute like q/k rows */
    p->rows = t->shape[0] * (parts ? n_parts : 1);
    p->cols = t->n_dims == 2 ? t->shape[1] : 1;
    p->ne[0] = t->n_dims == 2 ? t->shape[1] : t->shape[0];
    p->ne[1] = t->shape[0];
    p->ne[2] = n_parts;
    /* a tied model's embedding is also its output head: quantize it as one */
    const char *rule_name = hp->tied && strcmp(gname, "token_embd.weight") == 0 ? "output.weight" : gname;
    p->dst_type = um_recipe_tensor_type(r, rule_name, p->n_dims, p->ne[0], hp->n_layers);
    /* llama.cpp's converter reorders q/k rows where its RoPE pairs values differently */
    bool permute = (role == UM_T_Q || role == UM_T_K) && a->block.rope_hf != a->block.rope_gguf;
    p->permute_head_dim = permute ? hp->head_dim : 0;
    p->name = strdup(gname);
    return p->name ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
}

/* Experts seen so far, [layer][gate, up, down][expert], until a layer has
 * all of them: llama.cpp's converter then writes its three stacks (down,
 * gate, up), at the place of the layer's last expert tensor. */
typedef struct {
    const um_st_tensor **t;
    const uint8_t **data; /* the same, as each stack's parts */
    int *seen;            /* per layer */
    int n_expert;
} expert_stash;

static um_status stash_expert(expert_stash *x, const um_checkpoint *ck, int i, um_tensor_role role, int layer,
                              int e, const um_hparams *hp, um_error *err) {
    const um_st_tensor *t = ck->tensors[i];
    if (layer >= hp->n_layers || e >= x->n_expert || t->n_dims != 2)
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' is no expert of this model (%d layers, %d experts)",
                       ck->tensor_file[i], t->name, hp->n_layers, x->n_expert);
    size_t at = ((size_t)layer * 3 + (size_t)(role - UM_T_GATE_EXP)) * (size_t)x->n_expert + (size_t)e;
    const um_st_tensor *first = x->t[at - (size_t)e];
    if (first && (first->dtype != t->dtype || first->shape[0] != t->shape[0] || first->shape[1] != t->shape[1]))
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' differs in type or shape from expert 0's",
                       ck->tensor_file[i], t->name);
    if (x->t[at])
        return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' appears twice", ck->tensor_file[i], t->name);
    x->t[at] = t;
    x->data[at] = t->data;
    x->seen[layer]++;
    return UM_OK;
}

static um_status plan_tensors(um_weights *src, const um_arch *a, const um_hparams *hp, const um_recipe *r, um_pool *pool,
                              const um_convert_params *cp, tensor_plan **out, int *n_out, int64_t *n_params,
                              um_error *err) {
    um_checkpoint *ck = &src->ck;
    UM_TRY(sort_like_llama_cpp(ck, err));
    int E = hp->ffn == UM_FFN_MOE ? hp->n_expert : 0;
    size_t stash_n = (size_t)hp->n_layers * 3 * (size_t)E;
    tensor_plan *plans = calloc((size_t)ck->n_tensors + 1, sizeof *plans);
    expert_stash x = {calloc(stash_n + 1, sizeof *x.t), calloc(stash_n + 1, sizeof *x.data),
                      calloc((size_t)hp->n_layers, sizeof *x.seen), E};
    um_status s = plans && x.t && x.data && x.seen ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    int n = 0;
    *n_params = 0;
    for (int i = 0; s == UM_OK && i < ck->n_tensors; i++) {
        const um_st_tensor *t = ck->tensors[i];
        char gname[192];
        um_tensor_role role;
        int layer, e;
        *n_params += um_st_numel(t);
        if (t->dtype != UM_F32 && t->dtype != UM_F16 && t->dtype != UM_BF16) {
            s = um_fail(err, UM_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s; converting needs F32, F16 or BF16",
                        ck->tensor_file[i], t->name, um_dtype_name(t->dtype));
        } else if (E > 0 && um_arch_hf_expert(a, t->name, &role, &layer, &e)) {
            s = stash_expert(&x, ck, i, role, layer, e, hp, err);
            static const um_tensor_role order[] = {UM_T_DOWN_EXP, UM_T_GATE_EXP, UM_T_UP_EXP};
            for (int k = 0; s == UM_OK && x.seen[layer] == 3 * E && k < 3; k++) {
                size_t at = ((size_t)layer * 3 + (size_t)(order[k] - UM_T_GATE_EXP)) * (size_t)E;
                um_arch_tensor_name(a->gguf, order[k], layer, "weight", gname, sizeof gname);
                s = plan_one(&plans[n++], x.t[at], x.data + at, E, gname, order[k], a, hp, r, err);
            }
        } else if (!um_arch_gguf_name(a, t->name, gname, sizeof gname, &role) || (t->n_dims != 1 && t->n_dims != 2)) {
            s = um_fail(err, UM_ERR_UNSUPPORTED, "%s: tensor '%s' (%d dims) has no place in a %s GGUF",
                        ck->tensor_file[i], t->name, t->n_dims, a->gguf_name);
        } else {
            s = plan_one(&plans[n++], t, NULL, 0, gname, role, a, hp, r, err);
        }
    }
    for (int l = hp->n_dense_layers; s == UM_OK && l < hp->n_layers && E > 0; l++)
        if (x.seen[l] != 3 * E)
            s = um_fail(err, UM_ERR_FORMAT, "%s: layer %d has %d of its %d expert tensors", um_weights_source(src), l,
                        x.seen[l], 3 * E);
    for (int i = 0; i < n; i++) {
        plans[i].pool = pool;
        plans[i].progress = cp->progress;
        plans[i].progress_user = cp->progress_user;
        plans[i].index = i;
        plans[i].count = n;
    }
    free(x.t);
    free(x.seen);
    if (s != UM_OK) {
        for (int i = 0; i < n; i++)
            free((char *)plans[i].name);
        free(plans);
        free(x.data);
        return s;
    }
    *out = plans;
    *n_out = n;
    plans[0].parts_owned = x.data; /* freed with the plans */
    return UM_OK;
}

static um_status add_tensors(um_gguf_writer *w, tensor_plan *plans, int n, um_error *err) {
    for (int i = 0; i < n; i++)
        UM_TRY(um_gguf_writer_add_tensor_fn(w, plans[i].name, plans[i].dst_type, plans[i].n_dims, plans[i].ne,
                                            write_tensor, &plans[i], err));
    return UM_OK;
}

/* The GGUF of the checkpoint src (already open: a directory's, or tensors
 * in memory), for architecture a and hyper-parameters hp; tokenizer files
 * from dir when it has them. */
static um_status convert_checkpoint(um_weights *src, const um_arch *a, const um_hparams *hp, const char *dir,
                                    const char *out_path, const um_convert_params *cp, um_error *err) {
    char name[256];
    model_name(cp->name ? cp->name : dir, name, sizeof name);
    um_pool *pool = um_pool_create(cp->n_threads > 0 ? cp->n_threads : um_cpu_count());
    um_gguf_writer *w = um_gguf_writer_new();
    tokenizer_files tf;
    load_tokenizer(dir, &tf);
    tensor_plan *plans = NULL;
    int n = 0;
    int64_t n_params = 0;
    um_status s = pool && w ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    if (s == UM_OK)
        s = plan_tensors(src, a, hp, cp->recipe, pool, cp, &plans, &n, &n_params, err);
    if (s == UM_OK)
        s = add_hparams(w, a, hp, name, n_params, cp->recipe, err);
    if (s == UM_OK && tf.tok)
        s = add_tokenizer(w, a, &tf, hp, hp->vocab_size, dir, err);
    else if (s == UM_OK && !writes_key(a, UM_KEY_MASK_ID)) /* with a tokenizer it sits among its keys */
        s = um_gguf_writer_add_u32(w, "tokenizer.ggml.mask_token_id", (uint32_t)hp->mask_id, err);
    if (s == UM_OK)
        s = add_tensors(w, plans, n, err);
    if (s == UM_OK)
        s = um_gguf_writer_write(w, out_path, err);
    cJSON_Delete(tf.tok);
    cJSON_Delete(tf.tok_cfg);
    for (int i = 0; i < n; i++)
        free((char *)plans[i].name);
    if (plans)
        free(plans[0].parts_owned);
    free(plans);
    um_gguf_writer_free(w);
    um_pool_destroy(pool);
    return s;
}

/* The architecture and hyper-parameters of a parsed config.json (file names
 * it in errors), for a family unmask can write. */
static um_status convertible(const cJSON *cfg, const char *file, const char *dir, const um_arch **a, um_hparams *hp,
                             um_error *err) {
    UM_TRY(um_arch_from_config(cfg, file, a, err));
    UM_TRY(um_arch_parse_config(*a, cfg, file, um_arch_hf_mask_id(*a, dir), hp, err));
    if (!(*a)->gguf_write_keys)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: converting %s checkpoints to GGUF is not supported yet", dir,
                       (*a)->name);
    return UM_OK;
}

um_status um_convert_hf_to_gguf(const char *dir, const char *out_path, const um_convert_params *cp,
                                um_error *err) {
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    cJSON *cfg;
    UM_TRY(um_json_load(cfg_path, 1u << 20, &cfg, err));
    um_hparams hp;
    const um_arch *a;
    um_status s = convertible(cfg, cfg_path, dir, &a, &hp, err);
    cJSON_Delete(cfg);
    UM_TRY(s);
    um_weights src;
    UM_TRY(um_weights_open_hf(&src, dir, err));
    s = convert_checkpoint(&src, a, &hp, dir, out_path, cp, err);
    um_weights_close(&src);
    return s;
}

um_status um_convert_tensors_to_gguf(const cJSON *cfg, const um_st_tensor *tensors, int n, const char *out_path,
                                     const um_convert_params *cp, um_error *err) {
    um_hparams hp;
    const um_arch *a;
    UM_TRY(convertible(cfg, "config", "", &a, &hp, err));
    um_weights src = {0};
    src.ck.source = "the generated tensors";
    src.ck.n_tensors = n;
    src.ck.tensors = malloc((size_t)(n > 0 ? n : 1) * sizeof *src.ck.tensors);
    src.ck.tensor_file = malloc((size_t)(n > 0 ? n : 1) * sizeof *src.ck.tensor_file);
    um_status s = src.ck.tensors && src.ck.tensor_file ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; s == UM_OK && i < n; i++) {
        src.ck.tensors[i] = &tensors[i];
        src.ck.tensor_file[i] = src.ck.source;
    }
    if (s == UM_OK)
        s = convert_checkpoint(&src, a, &hp, "", out_path, cp, err);
    free(src.ck.tensors);
    free(src.ck.tensor_file);
    return s;
}

/* ---- GGUF -> GGUF --------------------------------------------------------- */

um_status um_quantize_gguf(const char *in_path, const char *out_path, const um_convert_params *cp, um_error *err) {
    um_gguf_file in;
    UM_TRY(um_gguf_open(in_path, &in, err));
    uint32_t n_layers = 0; /* the recipes' layer rules need it; a file without it gets none */
    char key[128] = "", arch[64];
    um_gguf_str name;
    if (um_gguf_find_kv(&in, "general.architecture") && um_gguf_get_str(&in, "general.architecture", &name, NULL) == UM_OK) {
        snprintf(arch, sizeof arch, "%.*s", (int)(name.len < 63 ? name.len : 63), name.ptr);
        um_gguf_key_name(UM_KEY_BLOCK_COUNT, arch, key, sizeof key);
    }
    um_status s = um_gguf_find_kv(&in, key) ? um_gguf_get_u32(&in, key, &n_layers, err) : UM_OK;
    bool has_output = um_gguf_find_tensor(&in, "output.weight") != NULL;
    um_pool *pool = um_pool_create(cp->n_threads > 0 ? cp->n_threads : um_cpu_count());
    um_gguf_writer *w = um_gguf_writer_new();
    tensor_plan *plans = calloc(in.n_tensors + 1, sizeof *plans);
    if (s == UM_OK && (!pool || !w || !plans))
        s = um_fail(err, UM_ERR_NOMEM, "out of memory");
    /* every key as it was, with the new file type */
    for (size_t i = 0; s == UM_OK && i < in.n_kv; i++) {
        if (strcmp(in.kvs[i].key, "general.file_type") == 0)
            s = um_gguf_writer_add_u32(w, "general.file_type", cp->recipe->file_type, err);
        else
            s = um_gguf_writer_add_kv(w, &in.kvs[i], err);
    }
    if (s == UM_OK && !um_gguf_find_kv(&in, "general.file_type"))
        s = um_gguf_writer_add_u32(w, "general.file_type", cp->recipe->file_type, err);
    for (size_t i = 0; s == UM_OK && i < in.n_tensors; i++) {
        const um_gguf_tensor *t = &in.tensors[i];
        tensor_plan *p = &plans[i];
        if (t->n_dims < 1 || t->n_dims > 3 || um_row_bytes(t->type, t->ne[0]) == 0 ||
            (t->n_dims == 1 && um_dtype_size(t->type) == 0)) {
            s = um_fail(err, UM_ERR_UNSUPPORTED, "%s: tensor '%s' of type %s cannot be re-quantized", in_path,
                        t->name, um_dtype_name(t->type));
            break;
        }
        const char *rule_name = !has_output && strcmp(t->name, "token_embd.weight") == 0 ? "output.weight" : t->name;
        /* as in the HF path, a vector is rows of one value; a stack of experts is rows of all of them */
        bool matrix = t->n_dims >= 2;
        p->pool = pool;
        p->src = t->data;
        p->src_type = t->type;
        p->n_dims = t->n_dims;
        p->rows = matrix ? t->ne[1] * (t->n_dims == 3 ? t->ne[2] : 1) : t->ne[0];
        p->cols = matrix ? t->ne[0] : 1;
        p->name = t->name;
        for (int d = 0; d < t->n_dims; d++)
            p->ne[d] = t->ne[d];
        p->progress = cp->progress;
        p->progress_user = cp->progress_user;
        p->index = (int)i;
        p->count = (int)in.n_tensors;
        p->dst_type = um_recipe_tensor_type(cp->recipe, rule_name, t->n_dims, t->ne[0], (int)n_layers);
        s = um_gguf_writer_add_tensor_fn(w, t->name, p->dst_type, t->n_dims, t->ne, write_tensor, p, err);
    }
    if (s == UM_OK)
        s = um_gguf_writer_write(w, out_path, err);
    free(plans);
    um_gguf_writer_free(w);
    um_pool_destroy(pool);
    um_gguf_close(&in);
    return s;
}
