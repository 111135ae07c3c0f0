/* Loading a tokenizer from vocab.json + merges.txt, the files of Hugging
 * Face's "slow" byte-level BPE tokenizers (GPT2Tokenizer, Qwen2Tokenizer and
 * Dream's copy of it, DreamTokenizer), as Dream's own repository ships them:
 *
 *   vocab.json             {"token": id, ...}, tokens in GPT-2's byte spelling
 *   merges.txt             "left right" per line, by rank, after a "#version"
 *                          header line
 *   tokenizer_config.json  added_tokens_decoder {"id": {"content": ...,
 *                          "special": ..., "lstrip": ..., ...}}, the special
 *                          tokens, the chat template, and tokenizer_class,
 *                          which says how the text is split: Qwen2's regex
 *                          and NFC for Qwen2/Dream, GPT-2's regex for GPT-2
 *                          (also when the config or the class is missing).
 *
 * The ids are those the same files give in transformers, whose fast
 * tokenizers are built from them by convert_slow_tokenizer.py (GPT2Converter,
 * Qwen2Converter): the same pre-tokenizer and normalizer as the classes
 * above, the merges in file order. Hugging Face refuses a merge naming a
 * token the vocabulary lacks, and so do we (naming the line), where the
 * tokenizer.json and GGUF loaders follow llama.cpp in skipping it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "tokenizer/internal.h"

#define VOCAB_FILE_MAX (512u << 20)
#define MAX_TOKENS (1 << 26) /* as the other loaders: far beyond any real vocabulary */

typedef struct {
    const char *vocab_path, *merges_path, *config_path;
    const cJSON *vocab;
    const cJSON *added; /* added_tokens_decoder, or NULL */
} vocab_ctx;

/* ---- the split: chosen by tokenizer_config.json's tokenizer_class ---- */

static bool class_is(const char *cls, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (strcmp(cls, names[i]) == 0)
            return true;
    return false;
}

static um_status choose_pre_tokenizer(um_tokenizer *t, const cJSON *cfg, const char *cfg_path, um_error *err) {
    static const char *const gpt2[] = {"GPT2Tokenizer", "GPT2TokenizerFast", NULL};
    static const char *const qwen2[] = {"Qwen2Tokenizer", "Qwen2TokenizerFast", "DreamTokenizer", NULL};
    const char *cls = um_json_get_string(cfg, "tokenizer_class");
    bool prefix = false;
    if (cfg)
        UM_TRY(um_json_get_bool(cfg, "add_prefix_space", &prefix, cfg_path, err));
    if (!cls || class_is(cls, gpt2)) {
        /* GPT2Converter: ByteLevel(add_prefix_space) with GPT-2's regex */
        t->split.add_prefix_space = prefix;
        UM_TRY(split_program_add(&t->split, TOK_GPT2_REGEX, false, SPLIT_ISOLATED, false, err));
        return tok_set_str(&t->pre_name, "gpt-2", 5, err);
    }
    if (class_is(cls, qwen2)) {
        /* Qwen2Converter: NFC, then Split(Qwen2's regex), then ByteLevel
         * without a regex; the slow class normalizes to NFC as well */
        if (prefix)
            return um_fail(err, UM_ERR_UNSUPPORTED, "%s: add_prefix_space with %s is not supported", cfg_path, cls);
        t->nfc = true;
        UM_TRY(split_program_add(&t->split, TOK_QWEN2_REGEX, false, SPLIT_ISOLATED, false, err));
        return tok_set_str(&t->pre_name, "qwen2", 5, err);
    }
    return um_fail(err, UM_ERR_UNSUPPORTED,
                   "%s: tokenizer_class '%.64s' is not supported with vocab.json + merges.txt (GPT2Tokenizer, "
                   "Qwen2Tokenizer, DreamTokenizer)",
                   cfg_path, cls);
}

/* ---- the vocabulary ---- */

/* A JSON number that is a whole id in [0, MAX_TOKENS). */
static bool valid_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < MAX_TOKENS) ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return false;
    *id = (int32_t)v->valuedouble;
    return true;
}

/* added_tokens_decoder's key: a decimal id in [0, MAX_TOKENS). */
static bool parse_key_id(const char *key, int32_t *id) {
    if (!key || *key < '0' || *key > '9')
        return false;
    char *end;
    errno = 0;
    long v = strtol(key, &end, 10);
    if (*end || errno || v >= MAX_TOKENS)
        return false;
    *id = (int32_t)v;
    return true;
}

/* Checks every id of both files and finds the vocabulary's size: the largest
 * id + 1 (ids no token uses are holes, as in tokenizer.json). */
static um_status count_ids(const vocab_ctx *c, int32_t *n_vocab, um_error *err) {
    int32_t max = -1, id;
    const cJSON *e;
    cJSON_ArrayForEach(e, c->vocab) {
        if (!valid_id(e, &id))
            return um_fail(err, UM_ERR_FORMAT, "%s: token '%.64s' has no valid id (a whole number in [0, %d))",
                           c->vocab_path, e->string, MAX_TOKENS);
        max = id > max ? id : max;
    }
    cJSON_ArrayForEach(e, c->added) {
        if (!parse_key_id(e->string, &id))
            return um_fail(err, UM_ERR_FORMAT, "%s: added_tokens_decoder key '%.64s' is not an id in [0, %d)",
                           c->config_path, e->string, MAX_TOKENS);
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "content")))
            return um_fail(err, UM_ERR_FORMAT, "%s: added_tokens_decoder entry %d has no \"content\" string",
                           c->config_path, (int)id);
        max = id > max ? id : max;
    }
    const char *problem = tok_vocab_size_problem((int64_t)max + 1, (int64_t)cJSON_GetArraySize(c->vocab) +
                                                                       cJSON_GetArraySize(c->added));
    if (problem)
        return um_fail(err, UM_ERR_FORMAT, "%s: %s", c->vocab_path, problem);
    *n_vocab = max + 1;
    return UM_OK;
}

static um_status set_vocab(um_tokenizer *t, const vocab_ctx *c, um_error *err) {
    const cJSON *e;
    cJSON_ArrayForEach(e, c->vocab) {
        int32_t id = (int32_t)e->valuedouble;
        if (t->tok[id].used)
            return um_fail(err, UM_ERR_FORMAT, "%s: tokens '%.64s' and '%.64s' both have id %d", c->vocab_path,
                           t->pool.data + t->tok[id].text_off, e->string, (int)id);
        UM_TRY(tok_set(t, id, e->string, strlen(e->string), TOK_NORMAL, 0, err));
    }
    return UM_OK;
}

/* An added token may restate a vocab.json entry (GPT-2's <|endoftext|> is in
 * both); one that gives an id another spelling is a contradiction. */
static um_status set_added(um_tokenizer *t, const vocab_ctx *c, um_error *err) {
    const cJSON *e;
    cJSON_ArrayForEach(e, c->added) {
        int32_t id = 0;
        parse_key_id(e->string, &id); /* count_ids checked it */
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        if (t->tok[id].used && strcmp(t->pool.data + t->tok[id].text_off, content) != 0)
            return um_fail(err, UM_ERR_FORMAT, "%s: added token %d '%.64s' is '%.64s' in %s", c->config_path,
                           (int)id, content, t->pool.data + t->tok[id].text_off,
                           t->tok[id].kind == TOK_NORMAL ? c->vocab_path : "an earlier added_tokens_decoder entry");
        bool special = false, lstrip = false, rstrip = false, single = false;
        UM_TRY(um_json_get_bool(e, "special", &special, c->config_path, err));
        UM_TRY(um_json_get_bool(e, "lstrip", &lstrip, c->config_path, err));
        UM_TRY(um_json_get_bool(e, "rstrip", &rstrip, c->config_path, err));
        UM_TRY(um_json_get_bool(e, "single_word", &single, c->config_path, err));
        int flags = (lstrip ? TOKF_LSTRIP : 0) | (rstrip ? TOKF_RSTRIP : 0) | (single ? TOKF_SINGLE_WORD : 0);
        UM_TRY(tok_set(t, id, content, strlen(content), special ? TOK_SPECIAL : TOK_ADDED, flags, err));
    }
    return UM_OK;
}

/* ---- merges.txt ---- */

/* Why the merge "l r" on line `line` cannot apply: which part, or the
 * result, the vocabulary lacks. */
static um_status unknown_merge(const um_tokenizer *t, const vocab_ctx *c, int line, const char *l, size_t ll,
                               const char *r, size_t rl, um_error *err) {
    const char *what = um_tokenizer_token_id(t, l, ll) < 0   ? "its left token"
                       : um_tokenizer_token_id(t, r, rl) < 0 ? "its right token"
                                                             : "the merged token";
    return um_fail(err, UM_ERR_FORMAT, "%s: line %d: merge '%.*s %.*s': %s is not in %s", c->merges_path, line,
                   (int)(ll > 64 ? 64 : ll), l, (int)(rl > 64 ? 64 : rl), r, what, c->vocab_path);
}

/* One line (no newline; a trailing CR is dropped): "left right", split at
 * its only space. */
static um_status add_merge_line(um_tokenizer *t, const vocab_ctx *c, const char *s, size_t n, int line,
                                int32_t rank, um_error *err) {
    if (n && s[n - 1] == '\r')
        n--;
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return um_fail(err, UM_ERR_FORMAT, "%s: line %d: '%.*s' is not two tokens separated by one space",
                       c->merges_path, line, (int)(n > 64 ? 64 : n), s);
    size_t ll = (size_t)(sp - s), rl = n - ll - 1, skipped = 0;
    UM_TRY(tok_add_merge(t, s, ll, sp + 1, rl, rank, &skipped, err));
    return skipped ? unknown_merge(t, c, line, s, ll, sp + 1, rl, err) : UM_OK;
}

static um_status load_merges(um_tokenizer *t, const vocab_ctx *c, um_error *err) {
    char *text;
    size_t n;
    UM_TRY(um_read_file(c->merges_path, VOCAB_FILE_MAX, &text, &n, err));
    um_status s = UM_OK;
    int32_t rank = 0;
    int line = 0; /* at most VOCAB_FILE_MAX lines: an int holds them */
    for (size_t at = 0; at < n && s == UM_OK; line++) {
        const char *ln = text + at, *nl = memchr(ln, '\n', n - at);
        size_t len = nl ? (size_t)(nl - ln) : n - at;
        at += len + 1;
        /* the "#version: 0.2" header (transformers skips it on the first
         * line, tokenizers on any) and blank lines (a CRLF file's included)
         * are skipped, as the slow tokenizers do */
        bool header = line == 0 && len >= 8 && memcmp(ln, "#version", 8) == 0;
        if (!header && len && !(len == 1 && *ln == '\r'))
            s = add_merge_line(t, c, ln, len, line + 1, rank++, err);
    }
    free(text);
    return s;
}

/* ---- the whole load ---- */

static um_status build(um_tokenizer *t, vocab_ctx *c, const cJSON *cfg, um_error *err) {
    if (cfg) {
        c->added = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        if (c->added && !cJSON_IsObject(c->added))
            return um_fail(err, UM_ERR_FORMAT, "%s: added_tokens_decoder is not an object", c->config_path);
    }
    UM_TRY(choose_pre_tokenizer(t, cfg, c->config_path, err));
    int32_t n_vocab = 0;
    UM_TRY(count_ids(c, &n_vocab, err));
    UM_TRY(tok_alloc_vocab(t, n_vocab, err));
    UM_TRY(set_vocab(t, c, err));
    UM_TRY(set_added(t, c, err));
    UM_TRY(tok_finish_vocab(t, err));
    UM_TRY(load_merges(t, c, err));
    return cfg ? tok_apply_config(t, cfg, c->config_path, err) : UM_OK;
}

static um_status load_vocab(um_tokenizer *t, const char *vocab_path, const char *merges_path,
                            const char *config_path, um_error *err) {
    UM_TRY(tok_init(t, "vocab.json", err));
    char dir[4096], merges[4200], config[4200];
    tok_dir_of(vocab_path, dir, sizeof dir);
    snprintf(merges, sizeof merges, "%smerges.txt", dir);
    snprintf(config, sizeof config, "%stokenizer_config.json", dir);
    vocab_ctx c = {vocab_path, merges_path ? merges_path : merges, config_path ? config_path : config, NULL, NULL};
    if (!um_file_exists(c.merges_path))
        return um_fail(err, UM_ERR_IO, "%s: no such file (a vocab.json tokenizer needs merges.txt beside it)",
                       c.merges_path);
    cJSON *cfg, *vocab;
    UM_TRY(tok_load_config(c.config_path, config_path != NULL, &cfg, err));
    um_status s = um_json_load(vocab_path, VOCAB_FILE_MAX, &vocab, err);
    if (s == UM_OK) {
        c.vocab = vocab;
        s = build(t, &c, cfg, err);
        cJSON_Delete(vocab);
    }
    cJSON_Delete(cfg);
    return s == UM_OK ? tok_finish_hf(t, dir, err) : s;
}

um_status um_tokenizer_load_vocab(const char *vocab_path, const char *merges_path, const char *config_path,
                                  um_tokenizer **out, um_error *err) {
    *out = NULL;
    um_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_status s = load_vocab(t, vocab_path, merges_path, config_path, err);
    if (s != UM_OK) {
        um_tokenizer_free(t);
        return s;
    }
    *out = t;
    return UM_OK;
}
