/* unmask info: what a model is, without generating: its files and size,
 * architecture and hyper-parameters, parameter count, tensor types, and the
 * tokenizer it carries. The model is opened as `run` opens it, so what info
 * reports is what run would use. Text and --json print the same cJSON
 * description, so they cannot disagree. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format/json.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define TOKENIZER_MAX_BYTES (256u << 20)

static void info_usage(void) {
    puts("usage: unmask info MODEL [--json]\n"
         "\n"
         "Describe a model: files and total size, architecture and hyper-parameters, parameter count,\n"
         "tensor types (count and bytes of each), and the tokenizer (GGUF metadata, or tokenizer.json\n"
         "in a Hugging Face directory).\n"
         "\n"
         "  MODEL               a GGUF file or a Hugging Face model directory (-m MODEL also works)\n"
         "      --json          print one JSON object instead of text\n"
         "  -h, --help          this help");
}

static const char *human_bytes(double b, char *buf, size_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
    return buf;
}

static const char *human_count(double x, char *buf, size_t n) {
    if (x >= 1e9)
        snprintf(buf, n, "%.2fB", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, n, "%.2fM", x / 1e6);
    else
        snprintf(buf, n, "%.1fK", x / 1e3);
    return buf;
}

/* "f32", "bf16", "q8_0": llama.cpp's spelling, which users see in file names. */
static const char *type_name(um_dtype t, char *buf, size_t n) {
    snprintf(buf, n, "%s", um_dtype_name(t));
    for (char *c = buf; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    return buf;
}

/* ---- describing --------------------------------------------------------- */

static void add_file(cJSON *files, const char *path, size_t size, double *total) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "path", path);
    cJSON_AddNumberToObject(f, "bytes", (double)size);
    cJSON_AddItemToArray(files, f);
    *total += (double)size;
}

static void describe_files(cJSON *o, const um_weights *w) {
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    double total = 0;
    if (w->is_gguf) {
        cJSON_AddStringToObject(o, "format", "gguf");
        cJSON_AddNumberToObject(o, "gguf_version", w->gguf.version);
        add_file(files, w->gguf.path, w->gguf.map.size, &total);
    } else {
        cJSON_AddStringToObject(o, "format", "safetensors");
        for (int i = 0; i < w->ck.n_files; i++)
            add_file(files, w->ck.files[i].path, w->ck.files[i].map.size, &total);
    }
    cJSON_AddNumberToObject(o, "total_bytes", total);
}

/* An id, or null when the model has none. */
static void add_id(cJSON *o, const char *key, int64_t id) {
    if (id < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)id);
}

/* LLaDA2's router and the dense FFNs beside its experts (LLaDA-MoE: softmax, nothing else). */
static void add_routing(cJSON *h, const um_hparams *hp) {
    const um_moe_router *r = &hp->route;
    char text[160];
    int n = snprintf(text, sizeof text, "%s", r->gating == UM_GATING_SIGMOID ? "sigmoid" : "softmax");
    if (hp->expert_bias)
        n += snprintf(text + n, sizeof text - (size_t)n, ", expert bias");
    if (r->n_group > 1)
        n += snprintf(text + n, sizeof text - (size_t)n, ", best %d of %d groups", r->n_group_used, r->n_group);
    if (r->renormalize)
        n += snprintf(text + n, sizeof text - (size_t)n, ", renormalized");
    if (r->scale != 1)
        snprintf(text + n, sizeof text - (size_t)n, ", scaled by %g", (double)r->scale);
    cJSON_AddStringToObject(h, "router", text);
    if (hp->n_dense_layers > 0)
        cJSON_AddNumberToObject(h, "dense_layers", hp->n_dense_layers);
    if (hp->d_ff_shexp > 0)
        cJSON_AddNumberToObject(h, "d_ff_shared_expert", hp->d_ff_shexp);
}

/* The shortest decimal that reads back as f: 1e-05, not the double
 * 9.99999974737875e-06 that the f32 in the file widens to. */
static double shortest(float f) {
    char buf[32];
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if ((float)strtod(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return f;
}

static void describe_hparams(cJSON *o, const um_model *m) {
    const um_hparams *hp = &m->hp;
    cJSON_AddStringToObject(o, "architecture", m->arch);
    cJSON_AddStringToObject(o, "weight_type", m->weight_type);
    cJSON *h = cJSON_AddObjectToObject(o, "hparams");
    cJSON_AddNumberToObject(h, "n_layers", hp->n_layers);
    cJSON_AddNumberToObject(h, "d_model", hp->d_model);
    cJSON_AddNumberToObject(h, "n_heads", hp->n_heads);
    cJSON_AddNumberToObject(h, "n_kv_heads", hp->n_kv_heads);
    cJSON_AddNumberToObject(h, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(h, "d_ff", hp->d_ff);
    cJSON_AddNumberToObject(h, "n_vocab", hp->n_vocab);
    cJSON_AddNumberToObject(h, "context_length", hp->max_seq);
    cJSON_AddNumberToObject(h, "rope_theta", shortest(hp->rope_theta));
    cJSON_AddNumberToObject(h, "rms_eps", shortest(hp->norm_eps));
    add_id(h, "mask_id", hp->mask_id);
    add_id(h, "eos_id", hp->eos_id);
    add_id(h, "eot_id", hp->eot_id);
    cJSON_AddBoolToObject(h, "tied_output", hp->tied);
    cJSON_AddBoolToObject(h, "qkv_bias", hp->qkv_bias);
    cJSON_AddNumberToObject(h, "logit_shift", hp->logit_shift);
    cJSON_AddBoolToObject(h, "qk_norm", hp->qk_norm);
    um_model_info info;
    um_model_get_info(m, &info);
    if (info.n_expert > 0) {
        cJSON_AddNumberToObject(h, "n_expert", info.n_expert);
        cJSON_AddNumberToObject(h, "n_expert_used", info.n_expert_used);
        cJSON_AddNumberToObject(h, "d_ff_expert", info.d_ff_expert);
        add_routing(h, hp);
    }
    if (hp->rope_dim != hp->head_dim)
        cJSON_AddNumberToObject(h, "rope_dims", hp->rope_dim);
    if (hp->attn_mask == UM_ATTN_BLOCK_CAUSAL) {
        cJSON_AddStringToObject(h, "attention", "block-causal");
        cJSON_AddNumberToObject(h, "block_length", hp->diffusion_block);
    }
    cJSON_AddNumberToObject(o, "n_params", (double)m->n_params);
    cJSON_AddNumberToObject(o, "n_active_params", (double)info.n_active_params);
}

/* Tensor count and bytes per type, largest share first: every tensor of the
 * file, so it also shows what the loader converts (norms are F32 in GGUF). */
static void describe_types(cJSON *o, const um_weights *w) {
    double bytes[UM_DTYPE_COUNT] = {0};
    int count[UM_DTYPE_COUNT] = {0};
    int n = w->is_gguf ? (int)w->gguf.n_tensors : w->ck.n_tensors;
    for (int i = 0; i < n; i++) {
        um_dtype t = w->is_gguf ? w->gguf.tensors[i].type : w->ck.tensors[i]->dtype;
        count[t]++;
        bytes[t] += (double)(w->is_gguf ? w->gguf.tensors[i].nbytes : w->ck.tensors[i]->nbytes);
    }
    cJSON *types = cJSON_AddArrayToObject(o, "tensor_types");
    for (;;) {
        int best = -1;
        for (int t = 0; t < UM_DTYPE_COUNT; t++)
            if (count[t] && (best < 0 || bytes[t] > bytes[best]))
                best = t;
        if (best < 0)
            break;
        char name[16];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "type", type_name((um_dtype)best, name, sizeof name));
        cJSON_AddNumberToObject(e, "tensors", count[best]);
        cJSON_AddNumberToObject(e, "bytes", bytes[best]);
        cJSON_AddItemToArray(types, e);
        count[best] = 0;
    }
}

static void add_gguf_string(cJSON *o, const char *key, const um_gguf_file *f, const char *gguf_key) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, gguf_key);
    um_gguf_str s;
    if (!kv || kv->type != UM_GGUF_STRING || !um_gguf_elem_str(kv, 0, &s))
        return;
    char buf[256]; /* file strings carry no NUL; these are short names ("gpt2") */
    snprintf(buf, sizeof buf, "%.*s", (int)(s.len < sizeof buf - 1 ? s.len : sizeof buf - 1), s.ptr);
    cJSON_AddStringToObject(o, key, buf);
}

static void add_gguf_int(cJSON *o, const char *key, const um_gguf_file *f, const char *gguf_key) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, gguf_key);
    int64_t v;
    if (kv && kv->type != UM_GGUF_ARRAY && um_gguf_elem_i64(kv, 0, &v))
        cJSON_AddNumberToObject(o, key, (double)v);
}

static void add_gguf_count(cJSON *o, const char *key, const um_gguf_file *f, const char *gguf_key) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, gguf_key);
    cJSON_AddNumberToObject(o, key, kv && kv->type == UM_GGUF_ARRAY ? (double)kv->count : 0);
}

/* The tokenizer.ggml.* summary: what llama.cpp's tokenizer would be built from. */
static cJSON *gguf_tokenizer(const um_gguf_file *f) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "source", "gguf");
    add_gguf_string(t, "model", f, "tokenizer.ggml.model");
    add_gguf_string(t, "pre", f, "tokenizer.ggml.pre");
    add_gguf_count(t, "tokens", f, "tokenizer.ggml.tokens");
    add_gguf_count(t, "merges", f, "tokenizer.ggml.merges");
    add_gguf_int(t, "bos_id", f, "tokenizer.ggml.bos_token_id");
    add_gguf_int(t, "eos_id", f, "tokenizer.ggml.eos_token_id");
    add_gguf_int(t, "eot_id", f, "tokenizer.ggml.eot_token_id");
    add_gguf_int(t, "mask_id", f, "tokenizer.ggml.mask_token_id");
    add_gguf_int(t, "padding_id", f, "tokenizer.ggml.padding_token_id");
    const um_gguf_kv *kv = um_gguf_find_kv(f, "tokenizer.ggml.add_bos_token");
    bool b;
    if (kv && kv->type == UM_GGUF_BOOL && um_gguf_elem_bool(kv, 0, &b))
        cJSON_AddBoolToObject(t, "add_bos_token", b);
    kv = um_gguf_find_kv(f, "tokenizer.chat_template");
    um_gguf_str tmpl = {0};
    bool has_tmpl = kv && kv->type == UM_GGUF_STRING && um_gguf_elem_str(kv, 0, &tmpl);
    cJSON_AddBoolToObject(t, "chat_template", has_tmpl);
    cJSON_AddNumberToObject(t, "chat_template_bytes", (double)tmpl.len);
    return t;
}

static int json_size(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsArray(v) || cJSON_IsObject(v) ? cJSON_GetArraySize(v) : 0;
}

/* tokenizer.json's model and sizes; NULL when the directory has none. A
 * broken tokenizer.json is reported, not fatal: the weights may still be fine. */
static cJSON *hf_tokenizer(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!um_file_exists(path))
        return NULL;
    cJSON *tok;
    um_error err;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "source", "tokenizer.json");
    if (um_json_load(path, TOKENIZER_MAX_BYTES, &tok, &err) != UM_OK) {
        cJSON_AddStringToObject(t, "error", err.msg);
        return t;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const char *type = um_json_get_string(model, "type");
    cJSON_AddStringToObject(t, "model", type ? type : "?");
    cJSON_AddNumberToObject(t, "vocab", json_size(model, "vocab"));
    cJSON_AddNumberToObject(t, "merges", json_size(model, "merges"));
    cJSON_AddNumberToObject(t, "added_tokens", json_size(tok, "added_tokens"));
    cJSON_Delete(tok);
    return t;
}

/* vocab.json + merges.txt, the tokenizer of a directory without
 * tokenizer.json (Dream's repository): loaded, since tokenizer_config.json
 * decides its split and added tokens. NULL when there is no vocab.json. */
static cJSON *hf_slow_tokenizer(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if (!um_file_exists(path))
        return NULL;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "source", "vocab.json + merges.txt");
    um_tokenizer *tok;
    um_error err;
    if (um_tokenizer_load_vocab(path, NULL, NULL, &tok, &err) != UM_OK) {
        cJSON_AddStringToObject(t, "error", err.msg);
        return t;
    }
    cJSON_AddStringToObject(t, "model", "BPE");
    cJSON_AddStringToObject(t, "pre", um_tokenizer_pre_name(tok));
    cJSON_AddNumberToObject(t, "vocab", um_tokenizer_n_vocab(tok));
    um_tokenizer_free(tok);
    return t;
}

static cJSON *describe(const um_model *m, const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", path);
    describe_files(o, &m->weights);
    describe_hparams(o, m);
    describe_types(o, &m->weights);
    cJSON *tok = m->weights.is_gguf ? gguf_tokenizer(&m->weights.gguf) : hf_tokenizer(path);
    if (!tok && !m->weights.is_gguf)
        tok = hf_slow_tokenizer(path);
    if (tok)
        cJSON_AddItemToObject(o, "tokenizer", tok);
    else
        cJSON_AddNullToObject(o, "tokenizer");
    return o;
}

/* ---- text ----------------------------------------------------------------- */

/* An integer as an integer, a flag as yes/no, an absent id as none. */
static void print_field(const char *label, const cJSON *v) {
    char key[64];
    snprintf(key, sizeof key, "%s:", label);
    printf("  %-17s ", key);
    if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15)
        printf("%.0f\n", v->valuedouble);
    else if (cJSON_IsNumber(v))
        printf("%g\n", v->valuedouble);
    else if (cJSON_IsBool(v))
        puts(cJSON_IsTrue(v) ? "yes" : "no");
    else if (cJSON_IsString(v))
        puts(v->valuestring);
    else
        puts("none");
}

/* Prints obj's fields in the order and with the labels given ({key, label}). */
static void print_fields(const cJSON *obj, const char *const (*fields)[2], size_t n) {
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, fields[i][0]);
        if (v)
            print_field(fields[i][1], v);
    }
}

static const char *const hparam_fields[][2] = {
    {"n_layers", "layers"},       {"d_model", "d_model"},
    {"n_heads", "heads"},         {"n_kv_heads", "kv heads"},
    {"head_dim", "head_dim"},     {"d_ff", "ffn"},
    {"n_vocab", "vocab"},         {"context_length", "context length"},
    {"rope_theta", "rope theta"}, {"rms_eps", "rms eps"},
    {"mask_id", "mask id"},       {"eos_id", "eos id"},
    {"eot_id", "eot id"},         {"tied_output", "tied output"},
    {"qkv_bias", "q/k/v bias"},   {"qk_norm", "q/k norm"},
    {"logit_shift", "logit shift"}, {"n_expert", "experts"},
    {"n_expert_used", "experts a token"}, {"d_ff_expert", "expert ffn"},
    {"router", "router"},         {"dense_layers", "dense layers"},
    {"d_ff_shared_expert", "shared ffn"}, {"rope_dims", "rope dims"},
    {"attention", "attention"},   {"block_length", "block length"},
};

static const char *const tokenizer_fields[][2] = {
    {"model", "model"},        {"pre", "pre"},           {"tokens", "tokens"},
    {"vocab", "vocab"},        {"merges", "merges"},     {"added_tokens", "added tokens"},
    {"bos_id", "bos id"},      {"eos_id", "eos id"},     {"eot_id", "eot id"},
    {"mask_id", "mask id"},    {"padding_id", "padding id"}, {"add_bos_token", "add_bos_token"},
    {"error", "error"},
};

static void print_files(const cJSON *o) {
    char size[32];
    const cJSON *f, *ver = cJSON_GetObjectItem(o, "gguf_version");
    if (ver)
        printf("format: GGUF v%d\n", ver->valueint);
    else
        printf("format: safetensors\n");
    printf("files:\n");
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(o, "files"))
        printf("  %s (%s)\n", cJSON_GetStringValue(cJSON_GetObjectItem(f, "path")),
               human_bytes(cJSON_GetObjectItem(f, "bytes")->valuedouble, size, sizeof size));
    double total = cJSON_GetObjectItem(o, "total_bytes")->valuedouble;
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(o, "files"));
    printf("total size: %s (%.0f bytes in %d file%s)\n", human_bytes(total, size, sizeof size), total, n,
           n == 1 ? "" : "s");
}

static void print_tokenizer(const cJSON *t) {
    if (!cJSON_IsObject(t)) {
        puts("tokenizer: none");
        return;
    }
    const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(t, "source"));
    printf("tokenizer (%s):\n", strcmp(src, "gguf") == 0 ? "GGUF metadata" : src);
    print_fields(t, tokenizer_fields, sizeof tokenizer_fields / sizeof *tokenizer_fields);
    const cJSON *tmpl = cJSON_GetObjectItem(t, "chat_template");
    if (tmpl)
        printf("  %-17s %s (%.0f bytes)\n", "chat template:", cJSON_IsTrue(tmpl) ? "yes" : "no",
               cJSON_GetObjectItem(t, "chat_template_bytes")->valuedouble);
}

static void print_text(const cJSON *o) {
    char buf[32];
    printf("model: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(o, "model")));
    print_files(o);
    printf("architecture: %s (weights %s)\n", cJSON_GetStringValue(cJSON_GetObjectItem(o, "architecture")),
           cJSON_GetStringValue(cJSON_GetObjectItem(o, "weight_type")));
    print_fields(cJSON_GetObjectItem(o, "hparams"), hparam_fields, sizeof hparam_fields / sizeof *hparam_fields);
    double n_params = cJSON_GetObjectItem(o, "n_params")->valuedouble;
    printf("parameters: %.0f (%s)\n", n_params, human_count(n_params, buf, sizeof buf));
    double active = cJSON_GetObjectItem(o, "n_active_params")->valuedouble;
    if (active != n_params)
        printf("active parameters: %.0f (%s a token)\n", active, human_count(active, buf, sizeof buf));
    printf("tensor types:\n");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(o, "tensor_types")) {
        int n = cJSON_GetObjectItem(e, "tensors")->valueint;
        printf("  %s: %d tensor%s, %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "type")), n, n == 1 ? "" : "s",
               human_bytes(cJSON_GetObjectItem(e, "bytes")->valuedouble, buf, sizeof buf));
    }
    print_tokenizer(cJSON_GetObjectItem(o, "tokenizer"));
}

int cmd_info(int argc, char **argv) {
    cli_args a;
    const char *model = NULL;
    bool json = false;
    cli_init(&a, "info", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            info_usage();
            return 0;
        } else if (cli_is(&a, NULL, "--json")) json = true;
        else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (a.argv[a.i][0] != '-' && !model) model = a.argv[a.i];
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (!model) {
        cli_error("info", "no model given: unmask info MODEL (a GGUF file or a model directory)");
        return 2;
    }
    /* one thread: info runs no forward pass */
    um_model *m = cli_open_model("info", model, 1, CLI_MODEL_QUIET | CLI_MODEL_NO_REPACK);
    if (!m)
        return 1;
    cJSON *o = describe(m, model);
    if (json) {
        cli_print_json(o);
    } else {
        print_text(o);
        cJSON_Delete(o);
    }
    um_model_close(m);
    return 0;
}
