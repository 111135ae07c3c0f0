/* Byte-level BPE learning: see bpe_train.h. The merge loop follows Hugging
 * Face's BpeTrainer (tokenizers/src/models/bpe/trainer.rs) step for step —
 * the same counts, the same heap order, the same lazy re-insertion of stale
 * heap entries — so that the merges come out identical, ties included. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/sys.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/internal.h"

/* ---- pair -> count ----
 * The pair (a, b) is the key (a + 1) << 32 | b: never 0 (the empty slot), and
 * keys order as the pairs do (by a, then b), which is the tie-break. */
static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)b;
}
static int32_t key_left(uint64_t k) { return (int32_t)(k >> 32) - 1; }
static int32_t key_right(uint64_t k) { return (int32_t)(uint32_t)k; }

typedef struct {
    uint64_t *key;
    int64_t *val;
    size_t mask, n;
} pair_map;

static size_t pair_hash(uint64_t k) {
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20);
}

static um_status pair_map_grow(pair_map *m, um_error *err) {
    size_t cap = m->key ? (m->mask + 1) * 2 : (size_t)1 << 16;
    uint64_t *key = calloc(cap, sizeof *key);
    int64_t *val = malloc(cap * sizeof *val);
    if (!key || !val) {
        free(key);
        free(val);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; m->key && i <= m->mask; i++) {
        if (!m->key[i])
            continue;
        size_t j = pair_hash(m->key[i]) & (cap - 1);
        while (key[j])
            j = (j + 1) & (cap - 1);
        key[j] = m->key[i];
        val[j] = m->val[i];
    }
    free(m->key);
    free(m->val);
    m->key = key;
    m->val = val;
    m->mask = cap - 1;
    return UM_OK;
}

/* *val points at key's count (created as 0), valid until the next insert. */
static um_status pair_map_at(pair_map *m, uint64_t key, int64_t **val, um_error *err) {
    if (!m->key || (m->n + 1) * 2 > m->mask + 1)
        UM_TRY(pair_map_grow(m, err));
    size_t j = pair_hash(key) & m->mask;
    while (m->key[j] && m->key[j] != key)
        j = (j + 1) & m->mask;
    if (!m->key[j]) {
        m->key[j] = key;
        m->val[j] = 0;
        m->n++;
    }
    *val = &m->val[j];
    return UM_OK;
}

static int64_t pair_map_get(const pair_map *m, uint64_t key) {
    if (!m->key)
        return 0;
    size_t j = pair_hash(key) & m->mask;
    while (m->key[j] && m->key[j] != key)
        j = (j + 1) & m->mask;
    return m->key[j] ? m->val[j] : 0;
}

static void pair_map_free(pair_map *m) {
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* ---- the max-heap of candidate merges ----
 * An entry remembers the count its pair had when pushed and the words it was
 * seen in then (Hugging Face's Merge { pair, count, pos }). Counts only fall
 * after a pair is pushed, so a popped entry whose count is stale goes back
 * with the current one; an entry whose count is current is the best pair. */
typedef struct {
    int64_t count;
    uint64_t key;
    int32_t *pos; /* word indices */
    int32_t n_pos;
} heap_entry;

typedef struct {
    heap_entry *e;
    size_t n, cap;
} pair_heap;

/* Higher count first; among equal counts the smaller pair. */
static bool heap_before(const heap_entry *x, const heap_entry *y) {
    return x->count != y->count ? x->count > y->count : x->key < y->key;
}

static um_status heap_push(pair_heap *h, heap_entry e, um_error *err) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        heap_entry *n = realloc(h->e, cap * sizeof *n);
        if (!n) {
            free(e.pos);
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        }
        h->e = n;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && heap_before(&e, &h->e[(i - 1) / 2])) {
        h->e[i] = h->e[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->e[i] = e;
    return UM_OK;
}

static heap_entry heap_pop(pair_heap *h) {
    heap_entry top = h->e[0], last = h->e[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && heap_before(&h->e[c + 1], &h->e[c]))
            c++;
        if (!heap_before(&h->e[c], &last))
            break;
        h->e[i] = h->e[c];
        i = c;
    }
    if (h->n)
        h->e[i] = last;
    return top;
}

static void heap_free(pair_heap *h) {
    for (size_t i = 0; i < h->n; i++)
        free(h->e[i].pos);
    free(h->e);
    memset(h, 0, sizeof *h);
}

/* A pair seen in a word, waiting to be grouped into heap entries. */
typedef struct {
    uint64_t key;
    int32_t word;
} pair_occ;

/* ---- the trainer ---- */
struct um_bpe_trainer {
    int32_t vocab_size;
    int64_t min_frequency;
    char **specials;
    int n_specials;
    char *separator;
    FILE *progress;

    split_program split;
    split_scratch scratch;

    /* distinct words (bytes in word_pool) and their counts */
    tok_pool word_pool;
    tok_strmap word_map;
    size_t *word_off;
    uint32_t *word_bytes;
    int64_t *word_count;
    size_t n_distinct, cap_words, n_words;

    /* while learning: each word as token ids, shrinking in place */
    int32_t *sym;
    size_t *sym_off;
    int32_t *sym_len;

    /* the vocabulary: token bytes (tok_pool) and bytes -> id */
    tok_pool tok_pool;
    tok_strmap tok_map;
    size_t *tok_off;
    uint32_t *tok_len;
    int32_t n_tok, cap_tok;
    int32_t byte_token[256]; /* the id of each byte */

    uint64_t *merges; /* pair keys, in order */
    size_t n_merges, cap_merges;
    int64_t last_count;

    pair_map pairs;
    pair_heap heap;
    pair_occ *occ;
    size_t n_occ, cap_occ;
    bool learned;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

void um_bpe_trainer_free(um_bpe_trainer *t) {
    if (!t)
        return;
    for (int i = 0; i < t->n_specials; i++)
        free(t->specials[i]);
    free(t->specials);
    free(t->separator);
    split_program_free(&t->split);
    split_scratch_free(&t->scratch);
    free(t->word_pool.data);
    tok_strmap_free(&t->word_map);
    free(t->word_off);
    free(t->word_bytes);
    free(t->word_count);
    free(t->sym);
    free(t->sym_off);
    free(t->sym_len);
    free(t->tok_pool.data);
    tok_strmap_free(&t->tok_map);
    free(t->tok_off);
    free(t->tok_len);
    free(t->merges);
    pair_map_free(&t->pairs);
    heap_free(&t->heap);
    free(t->occ);
    free(t);
}

static um_status check_opts(const um_bpe_train_opts *o, um_error *err) {
    if (o->n_specials < 0 || (o->n_specials > 0 && !o->specials))
        return um_fail(err, UM_ERR_ARG, "bad special token list");
    for (int i = 0; i < o->n_specials; i++) {
        if (!o->specials[i] || !*o->specials[i])
            return um_fail(err, UM_ERR_ARG, "special token %d is empty", i + 1);
        for (int j = 0; j < i; j++)
            if (strcmp(o->specials[i], o->specials[j]) == 0)
                return um_fail(err, UM_ERR_ARG, "special token '%s' is given twice", o->specials[i]);
    }
    if ((int64_t)o->vocab_size < 256 + (int64_t)o->n_specials)
        return um_fail(err, UM_ERR_ARG,
                       "vocabulary size %d is below 256 bytes + %d special tokens = %d", (int)o->vocab_size,
                       o->n_specials, 256 + o->n_specials);
    if (o->vocab_size > (1 << 26))
        return um_fail(err, UM_ERR_ARG, "vocabulary size %d is too large (at most %d)", (int)o->vocab_size, 1 << 26);
    return UM_OK;
}

um_status um_bpe_trainer_new(const um_bpe_train_opts *o, um_bpe_trainer **out, um_error *err) {
    *out = NULL;
    UM_TRY(check_opts(o, err));
    um_bpe_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    t->vocab_size = o->vocab_size;
    t->min_frequency = o->min_frequency;
    t->progress = o->progress;
    t->specials = calloc((size_t)o->n_specials + 1, sizeof *t->specials);
    bool ok = t->specials != NULL;
    for (int i = 0; ok && i < o->n_specials; i++, t->n_specials++)
        ok = (t->specials[i] = dup_str(o->specials[i])) != NULL;
    if (ok && o->separator && *o->separator)
        ok = (t->separator = dup_str(o->separator)) != NULL;
    if (!ok) {
        um_bpe_trainer_free(t);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    /* Hugging Face's ByteLevel pre-tokenizer with use_regex: one Isolated split */
    um_status s = split_program_add(&t->split, TOK_GPT2_REGEX, false, SPLIT_ISOLATED, false, err);
    if (s != UM_OK) {
        um_bpe_trainer_free(t);
        return s;
    }
    *out = t;
    return UM_OK;
}

/* ---- counting words ---- */

static um_status count_word(um_bpe_trainer *t, const char *w, size_t n, um_error *err) {
    t->n_words++;
    int32_t id = tok_strmap_get(&t->word_map, &t->word_pool, w, n);
    if (id >= 0) {
        t->word_count[id]++;
        return UM_OK;
    }
    if (t->n_distinct == t->cap_words) {
        size_t cap = t->cap_words ? t->cap_words * 2 : 4096;
        size_t *off = realloc(t->word_off, cap * sizeof *off);
        if (off)
            t->word_off = off;
        uint32_t *len = realloc(t->word_bytes, cap * sizeof *len);
        if (len)
            t->word_bytes = len;
        int64_t *cnt = realloc(t->word_count, cap * sizeof *cnt);
        if (cnt)
            t->word_count = cnt;
        if (!off || !len || !cnt)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        t->cap_words = cap;
    }
    if (n > UINT32_MAX || t->n_distinct >= INT32_MAX)
        return um_fail(err, UM_ERR_ARG, "corpus too large (a word of %zu bytes, or 2^31 distinct words)", n);
    size_t off;
    int32_t existing;
    UM_TRY(tok_pool_add(&t->word_pool, w, n, &off, err));
    UM_TRY(tok_strmap_put(&t->word_map, &t->word_pool, off, (uint32_t)n, (int32_t)t->n_distinct, &existing, err));
    t->word_off[t->n_distinct] = off;
    t->word_bytes[t->n_distinct] = (uint32_t)n;
    t->word_count[t->n_distinct++] = 1;
    return UM_OK;
}

/* Splits one stretch of text between cuts into words and counts them. */
static um_status count_piece(um_bpe_trainer *t, const char *s, size_t len, um_error *err) {
    if (!len)
        return UM_OK;
    tok_span *sp;
    size_t n;
    UM_TRY(split_run(&t->split, s, len, &t->scratch, &sp, &n, err));
    for (size_t i = 0; i < n; i++)
        UM_TRY(count_word(t, s + sp[i].start, sp[i].end - sp[i].start, err));
    return UM_OK;
}

/* The strings the text is cut at: the specials, then the separator. */
static const char *cut_string(const um_bpe_trainer *t, int i) {
    return i < t->n_specials ? t->specials[i] : t->separator;
}

um_status um_bpe_trainer_feed(um_bpe_trainer *t, const char *text, size_t len, um_error *err) {
    if (t->learned)
        return um_fail(err, UM_ERR_ARG, "feed after learn");
    int n_cut = t->n_specials + (t->separator != NULL);
    /* the next occurrence of each cut string, found again only once passed,
     * so the text is scanned once per string rather than once per cut */
    size_t *next = malloc(((size_t)n_cut + 1) * sizeof *next);
    if (!next)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_cut; i++)
        next[i] = (size_t)-1;
    um_status s = UM_OK;
    size_t pos = 0;
    while (s == UM_OK && pos <= len) {
        size_t at = len, cut_len = 0;
        for (int i = 0; i < n_cut; i++) {
            const char *c = cut_string(t, i);
            size_t cl = strlen(c);
            if (next[i] == (size_t)-1 || next[i] < pos) {
                const char *hit = memmem(text + pos, len - pos, c, cl);
                next[i] = hit ? (size_t)(hit - text) : len;
            }
            /* the earliest, the longest where several start together */
            if (next[i] < len && (next[i] < at || (next[i] == at && cl > cut_len)))
                at = next[i], cut_len = cl;
        }
        s = count_piece(t, text + pos, at - pos, err);
        if (at == len)
            break;
        pos = at + cut_len;
    }
    free(next);
    return s;
}

/* ---- the vocabulary ---- */

static um_status add_token(um_bpe_trainer *t, const char *bytes, size_t n, int32_t *id, um_error *err) {
    if (t->n_tok == t->cap_tok) {
        int32_t cap = t->cap_tok ? t->cap_tok * 2 : 1024;
        size_t *off = realloc(t->tok_off, (size_t)cap * sizeof *off);
        if (off)
            t->tok_off = off;
        uint32_t *len = realloc(t->tok_len, (size_t)cap * sizeof *len);
        if (len)
            t->tok_len = len;
        if (!off || !len)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        t->cap_tok = cap;
    }
    size_t off;
    int32_t existing;
    UM_TRY(tok_pool_add(&t->tok_pool, bytes, n, &off, err));
    UM_TRY(tok_strmap_put(&t->tok_map, &t->tok_pool, off, (uint32_t)n, t->n_tok, &existing, err));
    t->tok_off[t->n_tok] = off;
    t->tok_len[t->n_tok] = (uint32_t)n;
    *id = t->n_tok++;
    return UM_OK;
}

static int cmp_by_char(const void *a, const void *b) {
    uint32_t x = tok_byte_to_cp(*(const uint8_t *)a), y = tok_byte_to_cp(*(const uint8_t *)b);
    return (x > y) - (x < y);
}

/* Ids 0..255 are the bytes in the order of the characters GPT-2 maps them
 * to: GPT-2's own first 256 ids, and the order Hugging Face's trainer gives
 * its initial alphabet (sorted by character), which the tie-break depends on. */
static um_status add_byte_tokens(um_bpe_trainer *t, um_error *err) {
    uint8_t order[256];
    for (int b = 0; b < 256; b++)
        order[b] = (uint8_t)b;
    qsort(order, 256, 1, cmp_by_char);
    for (int i = 0; i < 256; i++)
        UM_TRY(add_token(t, (const char *)&order[i], 1, &t->byte_token[order[i]], err));
    return UM_OK;
}

/* The token made of a's bytes then b's, added when it is new. */
static um_status token_for_pair(um_bpe_trainer *t, int32_t a, int32_t b, int32_t *id, um_error *err) {
    size_t la = t->tok_len[a], lb = t->tok_len[b];
    char *buf = malloc(la + lb);
    if (!buf)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    memcpy(buf, t->tok_pool.data + t->tok_off[a], la);
    memcpy(buf + la, t->tok_pool.data + t->tok_off[b], lb);
    *id = tok_strmap_get(&t->tok_map, &t->tok_pool, buf, la + lb);
    um_status s = *id >= 0 ? UM_OK : add_token(t, buf, la + lb, id, err);
    free(buf);
    return s;
}

/* ---- learning ---- */

/* Each distinct word as its byte tokens. */
static um_status build_words(um_bpe_trainer *t, um_error *err) {
    size_t total = 0;
    for (size_t w = 0; w < t->n_distinct; w++)
        total += t->word_bytes[w];
    t->sym = malloc((total ? total : 1) * sizeof *t->sym);
    t->sym_off = malloc(t->n_distinct * sizeof *t->sym_off);
    t->sym_len = malloc(t->n_distinct * sizeof *t->sym_len);
    if (!t->sym || !t->sym_off || !t->sym_len)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    size_t at = 0;
    for (size_t w = 0; w < t->n_distinct; w++) {
        const uint8_t *b = (const uint8_t *)t->word_pool.data + t->word_off[w];
        t->sym_off[w] = at;
        t->sym_len[w] = (int32_t)t->word_bytes[w];
        for (uint32_t i = 0; i < t->word_bytes[w]; i++)
            t->sym[at++] = t->byte_token[b[i]];
    }
    return UM_OK;
}

static um_status note_occ(um_bpe_trainer *t, uint64_t key, int32_t word, um_error *err) {
    if (t->n_occ == t->cap_occ) {
        size_t cap = t->cap_occ ? t->cap_occ * 2 : 4096;
        pair_occ *n = realloc(t->occ, cap * sizeof *n);
        if (!n)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        t->occ = n;
        t->cap_occ = cap;
    }
    t->occ[t->n_occ++] = (pair_occ){key, word};
    return UM_OK;
}

static int cmp_occ(const void *a, const void *b) {
    const pair_occ *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->word > y->word) - (x->word < y->word);
}

/* Turns the noted (pair, word) occurrences into heap entries, one per pair
 * with its distinct words, for the pairs whose count is positive. */
static um_status push_noted(um_bpe_trainer *t, um_error *err) {
    qsort(t->occ, t->n_occ, sizeof *t->occ, cmp_occ);
    for (size_t i = 0, j; i < t->n_occ; i = j) {
        size_t distinct = 0;
        for (j = i; j < t->n_occ && t->occ[j].key == t->occ[i].key; j++)
            distinct += j == i || t->occ[j].word != t->occ[j - 1].word;
        int64_t count = pair_map_get(&t->pairs, t->occ[i].key);
        if (count <= 0)
            continue;
        heap_entry e = {count, t->occ[i].key, malloc(distinct * sizeof(int32_t)), 0};
        if (!e.pos)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        for (size_t k = i; k < j; k++)
            if (k == i || t->occ[k].word != t->occ[k - 1].word)
                e.pos[e.n_pos++] = t->occ[k].word;
        UM_TRY(heap_push(&t->heap, e, err));
    }
    t->n_occ = 0;
    return UM_OK;
}

static um_status pair_add(um_bpe_trainer *t, uint64_t key, int64_t delta, um_error *err) {
    int64_t *c;
    UM_TRY(pair_map_at(&t->pairs, key, &c, err));
    *c += delta;
    return UM_OK;
}

static um_status count_pairs(um_bpe_trainer *t, um_error *err) {
    for (size_t w = 0; w < t->n_distinct; w++) {
        const int32_t *s = t->sym + t->sym_off[w];
        for (int32_t i = 0; i + 1 < t->sym_len[w]; i++) {
            uint64_t key = pair_key(s[i], s[i + 1]);
            UM_TRY(pair_add(t, key, t->word_count[w], err));
            UM_TRY(note_occ(t, key, (int32_t)w, err));
        }
    }
    return push_noted(t, err);
}

/* Merges every (a, b) of word w into z, left to right, and updates the pair
 * counts as Hugging Face's Word::merge reports them: each pair the merge
 * breaks loses the word's count, each pair it forms gains it and is noted so
 * that the word is listed for it. (The merged pair's own count is left as
 * it is: that pair is never pushed again.) */
static um_status merge_word(um_bpe_trainer *t, int32_t w, int32_t a, int32_t b, int32_t z, um_error *err) {
    int32_t *s = t->sym + t->sym_off[w];
    int32_t n = t->sym_len[w], out = 0;
    int64_t c = t->word_count[w];
    for (int32_t r = 0; r < n;) {
        if (s[r] != a || r + 1 >= n || s[r + 1] != b) {
            s[out++] = s[r++];
            continue;
        }
        if (out > 0) { /* the symbol before, possibly a z just made */
            UM_TRY(pair_add(t, pair_key(s[out - 1], a), -c, err));
            UM_TRY(pair_add(t, pair_key(s[out - 1], z), c, err));
            UM_TRY(note_occ(t, pair_key(s[out - 1], z), w, err));
        }
        if (r + 2 < n) { /* the symbol after, not yet merged */
            UM_TRY(pair_add(t, pair_key(b, s[r + 2]), -c, err));
            UM_TRY(pair_add(t, pair_key(z, s[r + 2]), c, err));
            UM_TRY(note_occ(t, pair_key(z, s[r + 2]), w, err));
        }
        s[out++] = z;
        r += 2;
    }
    t->sym_len[w] = out;
    return UM_OK;
}

static um_status apply_merge(um_bpe_trainer *t, const heap_entry *top, um_error *err) {
    int32_t a = key_left(top->key), b = key_right(top->key), z = -1;
    UM_TRY(token_for_pair(t, a, b, &z, err));
    if (t->n_merges == t->cap_merges) {
        size_t cap = t->cap_merges ? t->cap_merges * 2 : 1024;
        uint64_t *m = realloc(t->merges, cap * sizeof *m);
        if (!m)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        t->merges = m;
        t->cap_merges = cap;
    }
    t->merges[t->n_merges++] = top->key;
    t->last_count = top->count;
    for (int32_t i = 0; i < top->n_pos; i++)
        UM_TRY(merge_word(t, top->pos[i], a, b, z, err));
    return push_noted(t, err);
}

static void report(const um_bpe_trainer *t, double t0, bool last) {
    if (!t->progress)
        return;
    fprintf(t->progress, "\rmerges %zu, vocabulary %d/%d, last pair seen %lld times, %.1f s%s", t->n_merges,
            (int)(t->n_tok + t->n_specials), (int)t->vocab_size, (long long)t->last_count, um_now() - t0,
            last ? "\n" : "");
    fflush(t->progress);
}

static um_status merge_loop(um_bpe_trainer *t, um_error *err) {
    double t0 = um_now(), shown = t0;
    while (t->n_tok + t->n_specials < t->vocab_size && t->heap.n) {
        heap_entry top = heap_pop(&t->heap);
        int64_t now = pair_map_get(&t->pairs, top.key);
        if (top.count != now) { /* stale: back in with its current count */
            top.count = now;
            UM_TRY(heap_push(&t->heap, top, err));
            continue;
        }
        if (top.count < 1 || top.count < t->min_frequency) {
            free(top.pos);
            break;
        }
        um_status s = apply_merge(t, &top, err);
        free(top.pos);
        UM_TRY(s);
        if (um_now() - shown > 0.25) {
            report(t, t0, false);
            shown = um_now();
        }
    }
    report(t, t0, true);
    return UM_OK;
}

um_status um_bpe_trainer_learn(um_bpe_trainer *t, um_error *err) {
    if (t->learned)
        return um_fail(err, UM_ERR_ARG, "learn called twice");
    t->learned = true;
    if (!t->n_words)
        return um_fail(err, UM_ERR_ARG, "the corpus has no text to learn from");
    if (t->progress)
        fprintf(t->progress, "%zu words, %zu distinct\n", t->n_words, t->n_distinct);
    UM_TRY(add_byte_tokens(t, err));
    for (int i = 0; i < t->n_specials; i++)
        if (tok_strmap_get(&t->tok_map, &t->tok_pool, t->specials[i], strlen(t->specials[i])) >= 0)
            return um_fail(err, UM_ERR_ARG, "special token '%s' is a single byte, which is already a token",
                           t->specials[i]);
    UM_TRY(build_words(t, err));
    UM_TRY(count_pairs(t, err));
    return merge_loop(t, err);
}

void um_bpe_trainer_stats(const um_bpe_trainer *t, um_bpe_train_stats *s) {
    s->n_words = t->n_words;
    s->n_distinct_words = t->n_distinct;
    s->n_merges = t->n_merges;
    s->n_vocab = t->learned ? t->n_tok + t->n_specials : 0;
    s->last_count = t->last_count;
}

/* ---- writing ---- */

/* Token bytes as the vocabulary spells them: each byte as its GPT-2
 * character, UTF-8 encoded (all of them are below U+0800). */
static char *spell(const um_bpe_trainer *t, int32_t id) {
    const uint8_t *b = (const uint8_t *)t->tok_pool.data + t->tok_off[id];
    char *s = malloc(2 * (size_t)t->tok_len[id] + 1), *p = s;
    if (!s)
        return NULL;
    for (uint32_t i = 0; i < t->tok_len[id]; i++) {
        uint32_t cp = tok_byte_to_cp(b[i]);
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xc0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    *p = 0;
    return s;
}

static cJSON *byte_level(bool prefix_space, bool trim_offsets) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", true);
    return o;
}

static cJSON *added_tokens(const um_bpe_trainer *t) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < t->n_specials; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", t->n_tok + i);
        cJSON_AddStringToObject(o, "content", t->specials[i]);
        cJSON_AddBoolToObject(o, "single_word", false);
        cJSON_AddBoolToObject(o, "lstrip", false);
        cJSON_AddBoolToObject(o, "rstrip", false);
        cJSON_AddBoolToObject(o, "normalized", false);
        cJSON_AddBoolToObject(o, "special", true);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* "left right" per merge. A pair merged twice (possible only when a merge
 * re-made an existing token) is listed once, at its last rank, as Hugging
 * Face's BPE model keeps it. */
static um_status merges_json(const um_bpe_trainer *t, cJSON *arr, um_error *err) {
    pair_map last = {0};
    um_status s = UM_OK;
    for (size_t i = 0; s == UM_OK && i < t->n_merges; i++) {
        int64_t *v;
        s = pair_map_at(&last, t->merges[i], &v, err);
        if (s == UM_OK)
            *v = (int64_t)i;
    }
    for (size_t i = 0; s == UM_OK && i < t->n_merges; i++) {
        if (pair_map_get(&last, t->merges[i]) != (int64_t)i)
            continue;
        char *l = spell(t, key_left(t->merges[i])), *r = spell(t, key_right(t->merges[i]));
        char *both = l && r ? malloc(strlen(l) + strlen(r) + 2) : NULL;
        if (both) {
            sprintf(both, "%s %s", l, r);
            cJSON_AddItemToArray(arr, cJSON_CreateString(both));
        } else {
            s = um_fail(err, UM_ERR_NOMEM, "out of memory");
        }
        free(l);
        free(r);
        free(both);
    }
    pair_map_free(&last);
    return s;
}

static um_status model_json(const um_bpe_trainer *t, cJSON *root, um_error *err) {
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", false);
    cJSON_AddBoolToObject(m, "byte_fallback", false);
    cJSON_AddBoolToObject(m, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int32_t id = 0; id < t->n_tok; id++) {
        char *s = spell(t, id);
        if (!s)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        cJSON_AddNumberToObject(vocab, s, id);
        free(s);
    }
    return merges_json(t, cJSON_AddArrayToObject(m, "merges"), err);
}

static um_status write_json_file(cJSON *root, const char *path, um_error *err) {
    char *text = cJSON_Print(root);
    if (!text)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        return um_fail(err, UM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, fp) == n && fputc('\n', fp) != EOF;
    ok = fclose(fp) == 0 && ok;
    free(text);
    return ok ? UM_OK : um_fail(err, UM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

um_status um_bpe_trainer_write_json(const um_bpe_trainer *t, const char *path, um_error *err) {
    if (!t->learned || !t->n_tok)
        return um_fail(err, UM_ERR_ARG, "nothing learned to write");
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToObject(root, "added_tokens", added_tokens(t));
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", byte_level(false, true));
    cJSON_AddItemToObject(root, "post_processor", byte_level(true, false));
    cJSON_AddItemToObject(root, "decoder", byte_level(true, true));
    um_status s = model_json(t, root, err);
    if (s == UM_OK)
        s = write_json_file(root, path, err);
    cJSON_Delete(root);
    return s;
}

static bool is_mask_spelling(const char *s) {
    return strcmp(s, "<|mdm_mask|>") == 0 || strcmp(s, "<|mask|>") == 0;
}

um_status um_bpe_trainer_write_config(const um_bpe_trainer *t, const char *path, um_error *err) {
    const char *eos = NULL, *mask = NULL;
    for (int i = 0; i < t->n_specials; i++) {
        if (is_mask_spelling(t->specials[i]))
            mask = mask ? mask : t->specials[i];
        else
            eos = eos ? eos : t->specials[i];
    }
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    cJSON_AddBoolToObject(root, "add_bos_token", false);
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", false);
    if (eos) {
        cJSON_AddStringToObject(root, "eos_token", eos);
        cJSON_AddStringToObject(root, "pad_token", eos);
    }
    if (mask)
        cJSON_AddStringToObject(root, "mask_token", mask);
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    um_status s = write_json_file(root, path, err);
    cJSON_Delete(root);
    return s;
}
