/* Loading a Hugging Face tokenizer.json (and tokenizer_config.json beside
 * it). Only what byte-level BPE needs is accepted; anything else that would
 * change the ids (another model type, a normalizer other than NFC, a
 * pre-tokenizer we do not implement, BPE dropout, subword prefixes) is
 * refused with UM_ERR_UNSUPPORTED naming it, rather than encoded wrongly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "tokenizer/internal.h"

#define TOKENIZER_JSON_MAX (512u << 20)

typedef struct {
    const char *path;
    char desc[256]; /* pre-tokenizer description being built */
    bool byte_level;
} json_ctx;

static void desc_add(json_ctx *c, const char *s) {
    size_t n = strlen(c->desc);
    snprintf(c->desc + n, sizeof c->desc - n, "%s%s", n && c->desc[n - 1] != '[' ? "," : "", s);
}

static um_status parse_behavior(const json_ctx *c, const cJSON *pt, split_behavior def, split_behavior *b,
                                um_error *err) {
    const char *s = um_json_get_string(pt, "behavior");
    *b = def;
    if (!s)
        return UM_OK;
    static const struct {
        const char *name;
        split_behavior b;
    } names[] = {{"Isolated", SPLIT_ISOLATED},
                 {"Removed", SPLIT_REMOVED},
                 {"MergedWithPrevious", SPLIT_MERGED_PREV},
                 {"MergedWithNext", SPLIT_MERGED_NEXT},
                 {"Contiguous", SPLIT_CONTIGUOUS}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i].name) == 0) {
            *b = names[i].b;
            return UM_OK;
        }
    return um_fail(err, UM_ERR_UNSUPPORTED, "%s: unknown split behavior '%s'", c->path, s);
}

static um_status add_pre_tokenizer(um_tokenizer *t, json_ctx *c, const cJSON *pt, bool first, um_error *err) {
    if (!pt || cJSON_IsNull(pt))
        return UM_OK;
    const char *type = um_json_get_string(pt, "type");
    if (!type)
        return um_fail(err, UM_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"", c->path);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"), *e;
        if (!cJSON_IsArray(list))
            return um_fail(err, UM_ERR_FORMAT, "%s: Sequence pre_tokenizer without \"pretokenizers\"", c->path);
        desc_add(c, "Sequence[");
        int i = 0;
        cJSON_ArrayForEach(e, list) UM_TRY(add_pre_tokenizer(t, c, e, first && i++ == 0, err));
        strncat(c->desc, "]", sizeof c->desc - strlen(c->desc) - 1);
        return UM_OK;
    }
    /* Qwen2's regex is named, so that `info` and `tokenize` show which split a
     * Qwen2/Dream tokenizer.json runs (the same one as a vocab.json load or a
     * GGUF "qwen2") */
    const char *rx = um_json_get_string(cJSON_GetObjectItemCaseSensitive(pt, "pattern"), "Regex");
    bool qwen2 = strcmp(type, "Split") == 0 && rx && strcmp(rx, TOK_QWEN2_REGEX) == 0;
    desc_add(c, qwen2 ? "Split(qwen2)" : type);
    if (strcmp(type, "ByteLevel") == 0) {
        c->byte_level = true;
        bool prefix = false, use_regex = true;
        UM_TRY(um_json_get_bool(pt, "add_prefix_space", &prefix, c->path, err));
        UM_TRY(um_json_get_bool(pt, "use_regex", &use_regex, c->path, err));
        if (prefix) {
            /* the prefix goes on each piece reaching this step; we only do
             * it where that is the whole text between added tokens */
            if (!first)
                return um_fail(err, UM_ERR_UNSUPPORTED,
                               "%s: ByteLevel add_prefix_space after another pre-tokenizer is not supported",
                               c->path);
            t->split.add_prefix_space = true;
        }
        if (use_regex)
            UM_TRY(split_program_add(&t->split, TOK_GPT2_REGEX, false, SPLIT_ISOLATED, false, err));
        return UM_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *str = um_json_get_string(cJSON_GetObjectItemCaseSensitive(pt, "pattern"), "String");
        if (!rx && !str)
            return um_fail(err, UM_ERR_FORMAT, "%s: Split pre_tokenizer without a Regex or String pattern", c->path);
        split_behavior b;
        bool invert = false;
        UM_TRY(parse_behavior(c, pt, SPLIT_ISOLATED, &b, err));
        UM_TRY(um_json_get_bool(pt, "invert", &invert, c->path, err));
        um_status s = split_program_add(&t->split, qwen2 ? TOK_QWEN2_REGEX : rx ? rx : str, !rx, b, invert, err);
        if (s != UM_OK)
            um_error_prefix(err, "%s", c->path);
        return s;
    }
    if (strcmp(type, "Digits") == 0) {
        bool each = false;
        UM_TRY(um_json_get_bool(pt, "individual_digits", &each, c->path, err));
        /* Rust's char::is_numeric is the N category */
        return split_program_add(&t->split, each ? "\\p{N}" : "\\p{N}+", false, SPLIT_ISOLATED, false, err);
    }
    if (strcmp(type, "Punctuation") == 0) {
        split_behavior b;
        UM_TRY(parse_behavior(c, pt, SPLIT_ISOLATED, &b, err));
        /* ASCII punctuation or a Unicode P character, one at a time */
        return split_program_add(&t->split, "[\\p{P}!-/:-@\\[-`{-~]", false, b, false, err);
    }
    return um_fail(err, UM_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported (byte-level BPE only)",
                   c->path, type);
}

static um_status set_normalizer(um_tokenizer *t, const json_ctx *c, const cJSON *n, um_error *err) {
    if (!n || cJSON_IsNull(n))
        return UM_OK;
    const char *type = um_json_get_string(n, "type");
    if (!type)
        return um_fail(err, UM_ERR_FORMAT, "%s: normalizer without a \"type\"", c->path);
    if (strcmp(type, "NFC") == 0) {
        t->nfc = true;
        return UM_OK;
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) UM_TRY(set_normalizer(t, c, e, err));
        return UM_OK;
    }
    return um_fail(err, UM_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (NFC only)", c->path, type);
}

/* Largest id used by the vocabulary or the added tokens, +1. */
static um_status count_vocab(const json_ctx *c, const cJSON *vocab, const cJSON *added, int32_t *n, um_error *err) {
    double max = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX - 1 ||
            e->valuedouble != (double)(int64_t)e->valuedouble)
            return um_fail(err, UM_ERR_FORMAT, "%s: vocabulary entry '%.64s' has no valid id", c->path,
                           e->string ? e->string : "?");
        if (e->valuedouble > max)
            max = e->valuedouble;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > INT32_MAX - 1 ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content")))
            return um_fail(err, UM_ERR_FORMAT, "%s: added token without a valid id and content", c->path);
        if (id->valuedouble > max)
            max = id->valuedouble;
    }
    const char *problem =
        tok_vocab_size_problem((int64_t)max + 1, (int64_t)cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added));
    if (problem)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s", c->path, problem);
    *n = (int32_t)max + 1;
    return UM_OK;
}

static um_status load_model(um_tokenizer *t, const json_ctx *c, const cJSON *root, um_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return um_fail(err, UM_ERR_FORMAT, "%s: missing \"model\"", c->path);
    const char *type = um_json_get_string(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type && cJSON_IsObject(vocab) && cJSON_IsArray(merges))
        type = "BPE"; /* old files leave the type out */
    if (!type)
        return um_fail(err, UM_ERR_FORMAT, "%s: model without a \"type\"", c->path);
    if (strcmp(type, "BPE") != 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (byte-level BPE only)",
                       c->path, type);
    if (!cJSON_IsObject(vocab))
        return um_fail(err, UM_ERR_FORMAT, "%s: BPE model without a \"vocab\" object", c->path);
    if (!cJSON_IsArray(merges))
        return um_fail(err, UM_ERR_FORMAT, "%s: BPE model without a \"merges\" list", c->path);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", c->path);
    const char *prefix = um_json_get_string(model, "continuing_subword_prefix");
    const char *suffix = um_json_get_string(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: BPE subword prefixes/suffixes are not supported", c->path);
    bool fallback = false;
    UM_TRY(um_json_get_bool(model, "byte_fallback", &fallback, c->path, err));
    if (fallback)
        return um_fail(err, UM_ERR_UNSUPPORTED, "%s: BPE byte_fallback (SentencePiece style) is not supported",
                       c->path);
    UM_TRY(um_json_get_bool(model, "ignore_merges", &t->ignore_merges, c->path, err));

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int32_t n_vocab = 0;
    UM_TRY(count_vocab(c, vocab, added, &n_vocab, err));
    UM_TRY(tok_alloc_vocab(t, n_vocab, err));
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) UM_TRY(tok_set(t, (int32_t)e->valuedouble, e->string, strlen(e->string),
                                                 TOK_NORMAL, 0, err));
    cJSON_ArrayForEach(e, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        bool special = false, lstrip = false, rstrip = false, single = false;
        UM_TRY(um_json_get_bool(e, "special", &special, c->path, err));
        UM_TRY(um_json_get_bool(e, "lstrip", &lstrip, c->path, err));
        UM_TRY(um_json_get_bool(e, "rstrip", &rstrip, c->path, err));
        UM_TRY(um_json_get_bool(e, "single_word", &single, c->path, err));
        int flags = (lstrip ? TOKF_LSTRIP : 0) | (rstrip ? TOKF_RSTRIP : 0) | (single ? TOKF_SINGLE_WORD : 0);
        UM_TRY(tok_set(t, id, content, strlen(content), special ? TOK_SPECIAL : TOK_ADDED, flags, err));
    }
    UM_TRY(tok_finish_vocab(t, err));

    size_t skipped = 0;
    int32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(e)) {
            /* "left right": tokens never hold a plain space (it is Ġ), but
             * the split starts after the first byte as llama.cpp's does */
            const char *s = e->valuestring, *sp = *s ? strchr(s + 1, ' ') : NULL;
            if (!sp)
                return um_fail(err, UM_ERR_FORMAT, "%s: merge %d ('%.64s') is not two tokens", c->path, rank, s);
            l = s, ll = (size_t)(sp - s), r = sp + 1, rl = strlen(sp + 1);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            l = cJSON_GetArrayItem(e, 0)->valuestring, ll = strlen(l);
            r = cJSON_GetArrayItem(e, 1)->valuestring, rl = strlen(r);
        } else {
            return um_fail(err, UM_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", c->path, rank);
        }
        UM_TRY(tok_add_merge(t, l, ll, r, rl, rank++, &skipped, err));
    }
    if (skipped) {
        char w[512];
        snprintf(w, sizeof w, "%s: %zu merges name tokens the vocabulary does not have; they are ignored", c->path,
                 skipped);
        UM_TRY(tok_set_str(&t->warning, w, strlen(w), err));
    }
    return UM_OK;
}

/* A special token in tokenizer_config.json: "text" or {"content": "text"}. */
static int32_t config_token(const um_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : um_json_get_string(v, "content");
    return s ? um_tokenizer_token_id(t, s, strlen(s)) : -1;
}

um_status tok_apply_config(um_tokenizer *t, const cJSON *cfg, const char *cfg_path, um_error *err) {
    t->specials.bos = config_token(t, cfg, "bos_token");
    t->specials.eos = config_token(t, cfg, "eos_token");
    t->specials.pad = config_token(t, cfg, "pad_token");
    t->specials.mask = config_token(t, cfg, "mask_token");
    UM_TRY(um_json_get_bool(cfg, "add_bos_token", &t->specials.add_bos, cfg_path, err));
    /* the template: a string, or a list of named ones of which "default" is it */
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *e;
    const char *text = cJSON_IsString(tpl) ? tpl->valuestring : NULL;
    const cJSON *list = cJSON_IsArray(tpl) ? tpl : NULL;
    cJSON_ArrayForEach(e, list) {
        const char *name = um_json_get_string(e, "name");
        if (name && strcmp(name, "default") == 0)
            text = um_json_get_string(e, "template");
    }
    return text ? tok_set_str(&t->chat_template, text, strlen(text), err) : UM_OK;
}

um_status tok_load_config(const char *cfg_path, bool required, cJSON **cfg, um_error *err) {
    *cfg = NULL;
    if (!um_file_exists(cfg_path))
        return required ? um_fail(err, UM_ERR_IO, "%s: no such file", cfg_path) : UM_OK;
    return um_json_load(cfg_path, TOKENIZER_JSON_MAX, cfg, err);
}

void tok_dir_of(const char *path, char *dir, size_t size) {
    snprintf(dir, size, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
}

um_status tok_finish_hf(um_tokenizer *t, const char *dir, um_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%schat_template.jinja", dir);
    if (!t->chat_template && um_file_exists(path)) {
        char *text;
        size_t n;
        UM_TRY(um_read_file(path, TOKENIZER_JSON_MAX, &text, &n, err));
        t->chat_template = text;
    }
    tok_guess_specials(t);
    tok_chat_prepare(t);
    return UM_OK;
}

static um_status load_json(um_tokenizer *t, const char *json_path, const char *config_path, um_error *err) {
    json_ctx c = {.path = json_path};
    cJSON *root;
    UM_TRY(tok_init(t, "tokenizer.json", err));
    UM_TRY(um_json_load(json_path, TOKENIZER_JSON_MAX, &root, err));
    um_status s = load_model(t, &c, root, err);
    if (s == UM_OK)
        s = set_normalizer(t, &c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
    if (s == UM_OK)
        s = add_pre_tokenizer(t, &c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), true, err);
    if (s == UM_OK) {
        const char *dec = um_json_get_string(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "type");
        if (dec && strcmp(dec, "ByteLevel") == 0)
            c.byte_level = true;
        if (!c.byte_level)
            s = um_fail(err, UM_ERR_UNSUPPORTED,
                        "%s: not a byte-level BPE (no ByteLevel pre_tokenizer or decoder); only byte-level BPE is "
                        "supported",
                        json_path);
    }
    if (s == UM_OK)
        s = tok_set_str(&t->pre_name, c.desc[0] ? c.desc : "none", strlen(c.desc[0] ? c.desc : "none"), err);
    cJSON_Delete(root);
    if (s != UM_OK)
        return s;

    /* tokenizer_config.json and chat_template.jinja beside the file */
    char dir[4096], path[4200];
    tok_dir_of(json_path, dir, sizeof dir);
    if (!config_path) {
        snprintf(path, sizeof path, "%stokenizer_config.json", dir);
        config_path = path;
    }
    cJSON *cfg;
    UM_TRY(tok_load_config(config_path, config_path != path, &cfg, err));
    s = cfg ? tok_apply_config(t, cfg, config_path, err) : UM_OK;
    cJSON_Delete(cfg);
    return s == UM_OK ? tok_finish_hf(t, dir, err) : s;
}

um_status um_tokenizer_load_json(const char *json_path, const char *config_path, um_tokenizer **out,
                                 um_error *err) {
    *out = NULL;
    um_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_status s = load_json(t, json_path, config_path, err);
    if (s != UM_OK) {
        um_tokenizer_free(t);
        return s;
    }
    *out = t;
    return UM_OK;
}
