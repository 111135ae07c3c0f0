/* Loading a tokenizer from GGUF metadata, as llama.cpp reads it
 * (llama-vocab.cpp, llama_vocab::impl::load): tokenizer.ggml.model "gpt2" is
 * byte-level BPE; tokens, token_type and merges describe the vocabulary; the
 * pre name chooses the split regexes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/internal.h"

/* llama.cpp's token types (gguf-py TokenType) */
enum { GGUF_TOK_NORMAL = 1, GGUF_TOK_UNKNOWN = 2, GGUF_TOK_CONTROL = 3, GGUF_TOK_USER_DEFINED = 4,
       GGUF_TOK_UNUSED = 5, GGUF_TOK_BYTE = 6 };

static int kind_of(int64_t type) {
    switch (type) {
    case GGUF_TOK_CONTROL:
    case GGUF_TOK_UNKNOWN:
        return TOK_SPECIAL; /* llama.cpp matches these only with parse_special */
    case GGUF_TOK_USER_DEFINED:
        return TOK_ADDED; /* matched always */
    case GGUF_TOK_UNUSED:
        return TOK_UNUSED;
    default:
        return TOK_NORMAL;
    }
}

/* An optional u32 id key: -1 when absent or out of range. */
static int32_t opt_id(const um_gguf_file *f, const char *key, int32_t n_vocab) {
    const um_gguf_kv *kv = um_gguf_find_kv(f, key);
    int64_t v;
    if (!kv || kv->type == UM_GGUF_ARRAY || !um_gguf_elem_i64(kv, 0, &v) || v < 0 || v >= n_vocab)
        return -1;
    return (int32_t)v;
}

static um_status load_gguf(um_tokenizer *t, const um_gguf_file *f, um_error *err) {
    UM_TRY(tok_init(t, "gguf", err));
    um_gguf_str model;
    if (!um_gguf_find_kv(f, "tokenizer.ggml.model"))
        return um_fail(err, UM_ERR_FORMAT, "%s: no tokenizer in this GGUF (missing tokenizer.ggml.model)", f->path);
    UM_TRY(um_gguf_get_str(f, "tokenizer.ggml.model", &model, err));
    if (!um_gguf_str_eq(model, "gpt2"))
        return um_fail(err, UM_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.model '%.*s' is not supported (only \"gpt2\", byte-level BPE)", f->path,
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const um_gguf_kv *tokens, *merges, *types = NULL;
    UM_TRY(um_gguf_get_arr(f, "tokenizer.ggml.tokens", UM_GGUF_STRING, &tokens, err));
    UM_TRY(um_gguf_get_arr(f, "tokenizer.ggml.merges", UM_GGUF_STRING, &merges, err));
    if (um_gguf_find_kv(f, "tokenizer.ggml.token_type"))
        UM_TRY(um_gguf_get_arr(f, "tokenizer.ggml.token_type", UM_GGUF_INT32, &types, err));
    if (tokens->count == 0 || tokens->count >= (1u << 26))
        return um_fail(err, UM_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", f->path,
                       (unsigned long long)tokens->count);
    if (types && types->count != tokens->count)
        return um_fail(err, UM_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens",
                       f->path, (unsigned long long)types->count, (unsigned long long)tokens->count);
    int32_t n = (int32_t)tokens->count;
    UM_TRY(tok_alloc_vocab(t, n, err));
    for (int32_t i = 0; i < n; i++) {
        um_gguf_str s;
        int64_t type = GGUF_TOK_NORMAL;
        if (!um_gguf_elem_str(tokens, (uint64_t)i, &s) || (types && !um_gguf_elem_i64(types, (uint64_t)i, &type)))
            return um_fail(err, UM_ERR_FORMAT, "%s: bad tokenizer entry %d", f->path, i);
        UM_TRY(tok_set(t, i, s.ptr, s.len, kind_of(type), 0, err));
    }
    UM_TRY(tok_finish_vocab(t, err));
    size_t skipped = 0;
    for (uint64_t i = 0; i < merges->count; i++) {
        um_gguf_str s;
        const char *sp = NULL;
        if (um_gguf_elem_str(merges, i, &s) && s.len > 1)
            sp = memchr(s.ptr + 1, ' ', s.len - 1);
        if (!sp)
            return um_fail(err, UM_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not \"left right\"", f->path,
                           (unsigned long long)i);
        size_t l = (size_t)(sp - s.ptr);
        UM_TRY(tok_add_merge(t, s.ptr, l, sp + 1, s.len - l - 1, (int32_t)i, &skipped, err));
    }
    if (skipped) {
        char w[512];
        snprintf(w, sizeof w, "%s: %zu merges name tokens the vocabulary does not have; they are ignored", f->path,
                 skipped);
        UM_TRY(tok_set_str(&t->warning, w, strlen(w), err));
    }

    /* the pre-tokenizer: an absent name is llama.cpp's "default" without a
     * word; an unknown one is "default" with a warning */
    const char *pre = "default";
    char pre_buf[128];
    const um_gguf_kv *pre_kv = um_gguf_find_kv(f, "tokenizer.ggml.pre");
    if (pre_kv) {
        um_gguf_str s;
        UM_TRY(um_gguf_get_str(f, "tokenizer.ggml.pre", &s, err));
        snprintf(pre_buf, sizeof pre_buf, "%.*s", (int)(s.len > 100 ? 100 : s.len), s.ptr);
        pre = pre_buf;
    }
    um_status st;
    if (!tok_pre_lookup(pre, &t->split, &t->ignore_merges, err, &st)) {
        char w[1024];
        snprintf(w, sizeof w, "%s: unknown tokenizer.ggml.pre '%s'; using llama.cpp's 'default' split regexes%s%s",
                 f->path, pre, t->warning ? "; " : "", t->warning ? t->warning : "");
        UM_TRY(tok_set_str(&t->warning, w, strlen(w), err));
        pre = "default";
        if (!tok_pre_lookup(pre, &t->split, &t->ignore_merges, err, &st))
            return um_fail(err, UM_ERR_UNSUPPORTED, "no default pre-tokenizer");
    }
    UM_TRY(st);
    UM_TRY(tok_set_str(&t->pre_name, pre, strlen(pre), err));

    t->specials.bos = opt_id(f, "tokenizer.ggml.bos_token_id", n);
    t->specials.eos = opt_id(f, "tokenizer.ggml.eos_token_id", n);
    t->specials.eot = opt_id(f, "tokenizer.ggml.eot_token_id", n);
    t->specials.mask = opt_id(f, "tokenizer.ggml.mask_token_id", n);
    t->specials.pad = opt_id(f, "tokenizer.ggml.padding_token_id", n);
    const um_gguf_kv *kv = um_gguf_find_kv(f, "tokenizer.ggml.add_bos_token");
    if (kv && kv->type == UM_GGUF_BOOL)
        um_gguf_elem_bool(kv, 0, &t->specials.add_bos);
    tok_guess_specials(t);

    kv = um_gguf_find_kv(f, "tokenizer.chat_template");
    if (kv) {
        um_gguf_str s;
        UM_TRY(um_gguf_get_str(f, "tokenizer.chat_template", &s, err));
        UM_TRY(tok_set_str(&t->chat_template, s.ptr, s.len, err));
    }
    tok_chat_prepare(t);
    return UM_OK;
}

um_status um_tokenizer_load_gguf(const um_gguf_file *f, um_tokenizer **out, um_error *err) {
    *out = NULL;
    um_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_status s = load_gguf(t, f, err);
    if (s != UM_OK) {
        um_tokenizer_free(t);
        return s;
    }
    *out = t;
    return UM_OK;
}
