/* The tokenizer itself: the vocabulary both loaders fill, the added-token
 * matcher, encoding, decoding and lookups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/sys.h"
#include "tokenizer/internal.h"

/* ---- building ---- */

um_status tok_set_str(char **dst, const char *s, size_t len, um_error *err) {
    free(*dst);
    *dst = malloc(len + 1);
    if (!*dst)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    memcpy(*dst, s, len);
    (*dst)[len] = 0;
    return UM_OK;
}

um_status tok_init(um_tokenizer *t, const char *source, um_error *err) {
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->specials = (um_tokenizer_specials){-1, -1, -1, -1, -1, false};
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;
    return tok_set_str(&t->source, source, strlen(source), err);
}

const char *tok_vocab_size_problem(int64_t n_vocab, int64_t n_tokens) {
    if (n_vocab <= 0)
        return "empty vocabulary";
    if (n_vocab >= (1 << 26))
        return "vocabulary too large";
    if (n_vocab - n_tokens > (1 << 20))
        return "vocabulary too sparse (over 2^20 ids no token uses)";
    return NULL;
}

um_status tok_alloc_vocab(um_tokenizer *t, int32_t n_vocab, um_error *err) {
    if (n_vocab <= 0)
        return um_fail(err, UM_ERR_FORMAT, "empty vocabulary");
    t->tok = calloc((size_t)n_vocab, sizeof *t->tok);
    if (!t->tok)
        return um_fail(err, UM_ERR_NOMEM, "out of memory for %d tokens", (int)n_vocab);
    t->n_vocab = n_vocab;
    return UM_OK;
}

/* Maps a vocabulary spelling back to bytes through the GPT-2 table; false
 * when some character is not one of the 256 (the token is then not a
 * byte-level token and decodes as its text). */
static bool unmap_bytes(const char *s, size_t n, char *out, size_t *out_n) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0)
            return false;
        int b = tok_cp_to_byte((uint32_t)cp);
        if (b < 0)
            return false;
        out[k++] = (char)b;
        i += (size_t)l;
    }
    *out_n = k;
    return true;
}

um_status tok_set(um_tokenizer *t, int32_t id, const char *text, size_t len, int kind, int flags, um_error *err) {
    if (id < 0 || id >= t->n_vocab)
        return um_fail(err, UM_ERR_FORMAT, "token id %d outside the vocabulary [0, %d)", id, t->n_vocab);
    if (len > UINT32_MAX)
        return um_fail(err, UM_ERR_FORMAT, "token %d is too long", id);
    tok_entry *e = &t->tok[id];
    size_t off;
    UM_TRY(tok_pool_add(&t->pool, text, len, &off, err));
    e->text_off = off;
    e->text_len = (uint32_t)len;
    e->bytes_off = off;
    e->bytes_len = (uint32_t)len;
    e->kind = (uint8_t)kind;
    e->flags = (uint8_t)flags;
    e->used = true;
    if (kind == TOK_NORMAL && len) {
        char *buf = malloc(len);
        size_t bn;
        if (!buf)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        if (unmap_bytes(text, len, buf, &bn)) {
            um_status s = tok_pool_add(&t->pool, buf, bn, &off, err);
            if (s != UM_OK) {
                free(buf);
                return s;
            }
            e->bytes_off = off;
            e->bytes_len = (uint32_t)bn;
        }
        free(buf);
    }
    return UM_OK;
}

static um_status trie_node_new(um_tokenizer *t, uint8_t byte, int32_t *idx, um_error *err) {
    if (t->n_trie == t->cap_trie) {
        size_t cap = t->cap_trie ? t->cap_trie * 2 : 64;
        trie_node *n = realloc(t->trie, cap * sizeof *n);
        if (!n)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        t->trie = n;
        t->cap_trie = cap;
    }
    t->trie[t->n_trie] = (trie_node){0, 0, -1, byte};
    *idx = (int32_t)t->n_trie++;
    return UM_OK;
}

static int32_t trie_child(const um_tokenizer *t, int32_t node, uint8_t byte) {
    for (int32_t c = t->trie[node].child; c; c = t->trie[c].sibling)
        if (t->trie[c].byte == byte)
            return c;
    return 0;
}

static um_status trie_add(um_tokenizer *t, const unsigned char *s, size_t n, int32_t id, um_error *err) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t next = trie_child(t, node, s[i]);
        if (!next) {
            UM_TRY(trie_node_new(t, s[i], &next, err));
            t->trie[next].sibling = t->trie[node].child;
            t->trie[node].child = next;
        }
        node = next;
    }
    /* two added tokens with one spelling: the first (lowest id) wins */
    if (t->trie[node].id < 0)
        t->trie[node].id = id;
    return UM_OK;
}

um_status tok_finish_vocab(um_tokenizer *t, um_error *err) {
    int32_t root;
    UM_TRY(trie_node_new(t, 0, &root, err));
    for (int32_t id = 0; id < t->n_vocab; id++) {
        tok_entry *e = &t->tok[id];
        if (!e->used)
            continue;
        int32_t existing;
        /* a spelling used twice maps to its first id, as in llama.cpp's
         * token_to_id (Hugging Face files have unique spellings) */
        UM_TRY(tok_strmap_put(&t->by_text, &t->pool, e->text_off, e->text_len, id, &existing, err));
        if (e->kind == TOK_NORMAL && e->bytes_off != e->text_off)
            UM_TRY(tok_strmap_put(&t->by_bytes, &t->pool, e->bytes_off, e->bytes_len, id, &existing, err));
        if ((e->kind == TOK_SPECIAL || e->kind == TOK_ADDED) && e->text_len) {
            UM_TRY(trie_add(t, (const unsigned char *)t->pool.data + e->text_off, e->text_len, id, err));
            t->first_byte[(unsigned char)t->pool.data[e->text_off]] = true;
        }
    }
    /* the token of each byte: its one-character spelling */
    for (int b = 0; b < 256; b++) {
        utf8proc_uint8_t buf[4];
        utf8proc_ssize_t n = utf8proc_encode_char((utf8proc_int32_t)tok_byte_to_cp((uint8_t)b), buf);
        int32_t id = tok_strmap_get(&t->by_text, &t->pool, (const char *)buf, (size_t)n);
        if (id >= 0 && t->tok[id].kind == TOK_NORMAL)
            t->byte_id[b] = id;
    }
    return UM_OK;
}

static int32_t find_special_text(const um_tokenizer *t, const char *const *names) {
    for (int i = 0; names[i]; i++) {
        int32_t id = tok_strmap_get(&t->by_text, &t->pool, names[i], strlen(names[i]));
        if (id >= 0 && t->tok[id].kind != TOK_NORMAL)
            return id;
    }
    return -1;
}

void tok_guess_specials(um_tokenizer *t) {
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|role_end|>", "<|end|>", "<end_of_turn>",
                                      NULL};
    static const char *const mask[] = {"<|mdm_mask|>", "<|mask|>", NULL};
    if (t->specials.eot < 0)
        t->specials.eot = find_special_text(t, eot);
    if (t->specials.mask < 0)
        t->specials.mask = find_special_text(t, mask);
}

void um_tokenizer_free(um_tokenizer *t) {
    if (!t)
        return;
    free(t->pool.data);
    free(t->tok);
    tok_strmap_free(&t->by_text);
    tok_strmap_free(&t->by_bytes);
    free(t->merges);
    split_program_free(&t->split);
    free(t->trie);
    free(t->chat_template);
    free(t->chat_default_system);
    free(t->source);
    free(t->pre_name);
    free(t->warning);
    tok_cache_free(&t->cache);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* ---- loading ---- */

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool starts_with_gguf_magic(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char m[4];
    bool yes = fread(m, 1, 4, f) == 4 && memcmp(m, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

um_status um_tokenizer_load(const char *path, um_tokenizer **out, um_error *err) {
    *out = NULL;
    if (um_is_directory(path)) {
        char json[4096], vocab[4096];
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
        snprintf(vocab, sizeof vocab, "%s/vocab.json", path);
        if (um_file_exists(json))
            return um_tokenizer_load_json(json, NULL, out, err);
        if (um_file_exists(vocab))
            return um_tokenizer_load_vocab(vocab, NULL, NULL, out, err);
        return um_fail(err, UM_ERR_IO, "%s: no tokenizer.json (nor vocab.json + merges.txt) in the model directory",
                       path);
    }
    if (!um_file_exists(path))
        return um_fail(err, UM_ERR_IO, "%s: no such file or directory", path);
    if (has_suffix(path, ".gguf") || starts_with_gguf_magic(path)) {
        um_gguf_file f;
        UM_TRY(um_gguf_open(path, &f, err));
        um_status s = um_tokenizer_load_gguf(&f, out, err);
        um_gguf_close(&f);
        return s;
    }
    const char *base = strrchr(path, '/');
    if (strcmp(base ? base + 1 : path, "vocab.json") == 0)
        return um_tokenizer_load_vocab(path, NULL, NULL, out, err);
    return um_tokenizer_load_json(path, NULL, out, err);
}

/* ---- encoding ---- */

typedef struct {
    int32_t *ids;
    size_t n, cap;
    split_scratch sc;
} encode_state;

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_word_byte(unsigned char c) {
    return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
}

/* The longest added token starting at s[i] that may match here, or -1;
 * *len its length. */
static int32_t match_added(const um_tokenizer *t, const char *s, size_t n, size_t i, bool parse_special,
                           size_t *len) {
    int32_t node = 0, best = -1;
    for (size_t k = i; k < n; k++) {
        node = trie_child(t, node, (unsigned char)s[k]);
        if (!node)
            break;
        int32_t id = t->trie[node].id;
        if (id < 0)
            continue;
        const tok_entry *e = &t->tok[id];
        if (e->kind == TOK_SPECIAL && !parse_special)
            continue;
        if ((e->flags & TOKF_SINGLE_WORD) &&
            ((i > 0 && is_word_byte((unsigned char)s[i - 1])) || (k + 1 < n && is_word_byte((unsigned char)s[k + 1]))))
            continue;
        best = id;
        *len = k + 1 - i;
    }
    return best;
}

static um_status encode_words(um_tokenizer *t, const char *s, size_t n, encode_state *st, um_error *err) {
    tok_span *sp;
    size_t ns;
    UM_TRY(split_run(&t->split, s, n, &st->sc, &sp, &ns, err));
    for (size_t i = 0; i < ns; i++)
        UM_TRY(tok_bpe_word(t, s + sp[i].start, sp[i].end - sp[i].start, &st->ids, &st->n, &st->cap, err));
    return UM_OK;
}

/* Text between added tokens: normalize, add the prefix space, split, merge. */
static um_status encode_segment(um_tokenizer *t, const char *s, size_t n, encode_state *st, um_error *err) {
    if (n == 0)
        return UM_OK;
    char *own = NULL;
    if (t->nfc) {
        /* Code points below U+0300 are never changed by NFC, and they are
         * exactly the UTF-8 bytes below 0xCC: most text skips the call. */
        bool plain = true;
        for (size_t i = 0; i < n && plain; i++)
            plain = (unsigned char)s[i] < 0xcc;
        utf8proc_uint8_t *d = NULL;
        utf8proc_ssize_t k =
            plain ? 0
                  : utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &d,
                                 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (!plain && k >= 0) { /* k < 0: invalid UTF-8, left as it is */
            own = (char *)d;
            s = own;
            n = (size_t)k;
        } else {
            free(d);
        }
    }
    if (t->split.add_prefix_space && s[0] != ' ') {
        char *p = malloc(n + 1);
        if (!p) {
            free(own);
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        }
        p[0] = ' ';
        memcpy(p + 1, s, n);
        free(own);
        own = p;
        s = p;
        n++;
    }
    um_status r = encode_words(t, s, n, st, err);
    free(own);
    return r;
}

static um_status encode_locked(um_tokenizer *t, const char *text, size_t len, bool parse_special, encode_state *st,
                               um_error *err) {
    size_t pos = 0;
    for (size_t i = 0; i < len;) {
        size_t mlen = 0;
        int32_t id = t->first_byte[(unsigned char)text[i]] ? match_added(t, text, len, i, parse_special, &mlen) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        /* lstrip / rstrip: the token takes the whitespace beside it */
        size_t seg_end = i;
        if (t->tok[id].flags & TOKF_LSTRIP)
            while (seg_end > pos && is_space((unsigned char)text[seg_end - 1]))
                seg_end--;
        UM_TRY(encode_segment(t, text + pos, seg_end - pos, st, err));
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 256;
            int32_t *ids = realloc(st->ids, cap * sizeof *ids);
            if (!ids)
                return um_fail(err, UM_ERR_NOMEM, "out of memory");
            st->ids = ids;
            st->cap = cap;
        }
        st->ids[st->n++] = id;
        i += mlen;
        if (t->tok[id].flags & TOKF_RSTRIP)
            while (i < len && is_space((unsigned char)text[i]))
                i++;
        pos = i;
    }
    return encode_segment(t, text + pos, len - pos, st, err);
}

um_status um_tokenizer_encode(um_tokenizer *t, const char *text, size_t len, bool parse_special, int32_t **ids,
                              size_t *n_ids, um_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (len && !text)
        return um_fail(err, UM_ERR_ARG, "encode: NULL text");
    encode_state st = {0};
    pthread_mutex_lock(&t->lock);
    um_status s = encode_locked(t, text, len, parse_special, &st, err);
    pthread_mutex_unlock(&t->lock);
    split_scratch_free(&st.sc);
    if (s != UM_OK) {
        free(st.ids);
        return s;
    }
    *ids = st.ids;
    *n_ids = st.n;
    return UM_OK;
}

/* ---- decoding ---- */

um_status um_tokenizer_decode(const um_tokenizer *t, const int32_t *ids, size_t n_ids, bool skip_special,
                              char **text, size_t *len, um_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return um_fail(err, UM_ERR_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)",
                           (int)ids[i], i, t->n_vocab);
        const tok_entry *e = &t->tok[ids[i]];
        if (e->used && !(skip_special && e->kind == TOK_SPECIAL) && e->kind != TOK_UNUSED)
            total += e->bytes_len;
    }
    char *out = malloc(total + 1);
    if (!out)
        return um_fail(err, UM_ERR_NOMEM, "out of memory decoding %zu tokens", n_ids);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const tok_entry *e = &t->tok[ids[i]];
        if (e->used && !(skip_special && e->kind == TOK_SPECIAL) && e->kind != TOK_UNUSED) {
            memcpy(out + k, t->pool.data + e->bytes_off, e->bytes_len);
            k += e->bytes_len;
        }
    }
    out[k] = 0;
    *text = out;
    *len = k;
    return UM_OK;
}

/* ---- lookups ---- */

int32_t um_tokenizer_n_vocab(const um_tokenizer *t) {
    return t->n_vocab;
}

const char *um_tokenizer_token_text(const um_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    return t->tok[id].used ? t->pool.data + t->tok[id].text_off : "";
}

const char *um_tokenizer_token_bytes(const um_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    const tok_entry *e = &t->tok[id];
    if (!e->used || e->kind == TOK_UNUSED) {
        *len = 0;
        return "";
    }
    *len = e->bytes_len;
    return t->pool.data + e->bytes_off;
}

int32_t um_tokenizer_token_id(const um_tokenizer *t, const char *text, size_t len) {
    return tok_strmap_get(&t->by_text, &t->pool, text, len);
}

bool um_tokenizer_is_special(const um_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->tok[id].kind == TOK_SPECIAL;
}

void um_tokenizer_get_specials(const um_tokenizer *t, um_tokenizer_specials *s) {
    *s = t->specials;
}

const char *um_tokenizer_source(const um_tokenizer *t) {
    return t->source;
}

const char *um_tokenizer_pre_name(const um_tokenizer *t) {
    return t->pre_name ? t->pre_name : "none";
}

const char *um_tokenizer_chat_template(const um_tokenizer *t) {
    return t->chat_template;
}

const char *um_tokenizer_warning(const um_tokenizer *t) {
    return t->warning;
}
