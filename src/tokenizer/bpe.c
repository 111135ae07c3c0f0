/* The byte-level BPE core: GPT-2's byte <-> character table, the hash maps
 * the vocabulary and merges live in, the merge loop, and the word cache that
 * makes encoding fast (ordinary text repeats its words, so most words are
 * merged once and looked up afterwards). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/internal.h"

/* ---- pool ---- */

um_status tok_pool_add(tok_pool *p, const void *s, size_t n, size_t *off, um_error *err) {
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n + 1)
            cap *= 2;
        char *d = realloc(p->data, cap);
        if (!d)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        p->data = d;
        p->cap = cap;
    }
    if (n)
        memcpy(p->data + p->len, s, n);
    p->data[p->len + n] = 0;
    *off = p->len;
    p->len += n + 1;
    return UM_OK;
}

/* FNV-1a with a final mix: words are short, so a byte loop is as fast as
 * anything wider, and the mix spreads FNV's weak low bits over the mask. */
uint64_t tok_hash(const void *s, size_t n) {
    const unsigned char *p = s;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* ---- string map ---- */

static um_status strmap_grow(tok_strmap *m, um_error *err) {
    size_t nslot = m->mask ? (m->mask + 1) * 2 : 1024;
    uint32_t *slot = calloc(nslot, sizeof *slot);
    if (!slot)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        size_t j = m->e[i].hash & (nslot - 1);
        while (slot[j])
            j = (j + 1) & (nslot - 1);
        slot[j] = (uint32_t)i + 1;
    }
    free(m->slot);
    m->slot = slot;
    m->mask = nslot - 1;
    return UM_OK;
}

um_status tok_strmap_put(tok_strmap *m, const tok_pool *pool, size_t off, uint32_t len, int32_t val,
                         int32_t *existing, um_error *err) {
    *existing = -1;
    if ((m->n + 1) * 2 > (m->mask ? m->mask + 1 : 0))
        UM_TRY(strmap_grow(m, err));
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        tok_strmap_entry *e = realloc(m->e, cap * sizeof *e);
        if (!e)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        m->e = e;
        m->cap = cap;
    }
    const char *key = pool->data + off;
    uint64_t h = tok_hash(key, len);
    size_t j = h & m->mask;
    while (m->slot[j]) {
        const tok_strmap_entry *x = &m->e[m->slot[j] - 1];
        if (x->hash == h && x->len == len && memcmp(pool->data + x->off, key, len) == 0) {
            *existing = x->val;
            return UM_OK;
        }
        j = (j + 1) & m->mask;
    }
    m->e[m->n] = (tok_strmap_entry){off, len, val, h};
    m->slot[j] = (uint32_t)++m->n;
    return UM_OK;
}

int32_t tok_strmap_get(const tok_strmap *m, const tok_pool *pool, const char *key, size_t len) {
    if (!m->slot || len > UINT32_MAX)
        return -1;
    uint64_t h = tok_hash(key, len);
    for (size_t j = h & m->mask; m->slot[j]; j = (j + 1) & m->mask) {
        const tok_strmap_entry *x = &m->e[m->slot[j] - 1];
        if (x->hash == h && x->len == len && memcmp(pool->data + x->off, key, len) == 0)
            return x->val;
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->e);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

/* ---- GPT-2's bytes_to_unicode ----
 * The printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for the
 * characters with the same code; the other 68 bytes (controls, space, 0x7F..0xA0,
 * 0xAD) take U+0100, U+0101, ... in byte order. So every token is printable
 * text, and a space is 'Ġ' (U+0120). */
static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b))
        return b;
    uint32_t n = 0; /* how many non-printable bytes come before b */
    for (unsigned x = 0; x < b; x++)
        n += !byte_is_printable(x);
    return 0x100 + n;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    uint32_t n = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!byte_is_printable(x) && n-- == 0)
            return (int)x;
    return -1;
}

/* ---- merges: (left id, right id) -> (rank, merged id) ---- */

static size_t merge_index(uint64_t key, size_t mask) {
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ull;
    return (size_t)(key >> 17) & mask;
}

static const tok_merge_slot *merge_find(const um_tokenizer *t, int32_t a, int32_t b) {
    if (!t->merges)
        return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t j = merge_index(key, t->merge_mask);; j = (j + 1) & t->merge_mask) {
        const tok_merge_slot *s = &t->merges[j];
        if (s->key == key)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
    }
}

static um_status merges_grow(um_tokenizer *t, um_error *err) {
    size_t n = t->merges ? (t->merge_mask + 1) * 2 : 1024;
    tok_merge_slot *m = malloc(n * sizeof *m);
    if (!m)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        m[i].key = UINT64_MAX;
    if (t->merges) {
        for (size_t i = 0; i <= t->merge_mask; i++) {
            if (t->merges[i].key == UINT64_MAX)
                continue;
            size_t j = merge_index(t->merges[i].key, n - 1);
            while (m[j].key != UINT64_MAX)
                j = (j + 1) & (n - 1);
            m[j] = t->merges[i];
        }
    }
    free(t->merges);
    t->merges = m;
    t->merge_mask = n - 1;
    return UM_OK;
}

um_status tok_add_merge(um_tokenizer *t, const char *left, size_t llen, const char *right, size_t rlen,
                        int32_t rank, size_t *skipped, um_error *err) {
    int32_t a = tok_strmap_get(&t->by_text, &t->pool, left, llen);
    int32_t b = tok_strmap_get(&t->by_text, &t->pool, right, rlen);
    char buf[256];
    char *joined = llen + rlen <= sizeof buf ? buf : malloc(llen + rlen);
    if (!joined)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    memcpy(joined, left, llen);
    memcpy(joined + llen, right, rlen);
    int32_t c = tok_strmap_get(&t->by_text, &t->pool, joined, llen + rlen);
    if (joined != buf)
        free(joined);
    /* A merge that cannot apply (a part or the result missing from the
     * vocabulary) would never produce a token; Hugging Face refuses such a
     * file, llama.cpp ignores the merge. We ignore it too and count it. */
    if (a < 0 || b < 0 || c < 0) {
        ++*skipped;
        return UM_OK;
    }
    /* keep the load factor at most a half */
    if (!t->merges || (t->n_merges + 1) * 2 > t->merge_mask + 1)
        UM_TRY(merges_grow(t, err));
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t j = merge_index(key, t->merge_mask);
    while (t->merges[j].key != UINT64_MAX) {
        if (t->merges[j].key == key)
            return UM_OK; /* a repeated pair keeps its first (best) rank */
        j = (j + 1) & t->merge_mask;
    }
    t->merges[j] = (tok_merge_slot){key, rank, c};
    t->n_merges++;
    return UM_OK;
}

/* ---- the merge loop ----
 * Symbols start as the word's byte tokens and sit in a doubly linked list;
 * candidate pairs wait in a min-heap ordered by (rank, position), so equal
 * ranks merge left to right as Hugging Face's BPE does. A popped pair that
 * no longer matches its symbols (one side merged since) is stale and
 * dropped. */
typedef struct {
    int32_t rank;
    int32_t pos;         /* left symbol */
    int32_t left, right; /* the ids it was made for */
    int32_t merged;      /* what they merge into */
} bpe_pair;

typedef struct {
    int32_t id, prev, next;
} bpe_sym;

static bool pair_less(const bpe_pair *x, const bpe_pair *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(bpe_pair *h, size_t *n, bpe_pair p) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&p, &h[up]))
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static bpe_pair heap_pop(bpe_pair *h, size_t *n) {
    bpe_pair top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c]))
            c++;
        if (!pair_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void try_pair(const um_tokenizer *t, const bpe_sym *s, int32_t i, bpe_pair *heap, size_t *nh) {
    if (i < 0 || s[i].next < 0)
        return;
    const tok_merge_slot *m = merge_find(t, s[i].id, s[s[i].next].id);
    if (m)
        heap_push(heap, nh, (bpe_pair){m->rank, i, s[i].id, s[s[i].next].id, m->id});
}

static um_status push_ids(const int32_t *ids, size_t n, int32_t **out, size_t *n_out, size_t *cap_out,
                          um_error *err) {
    if (*n_out + n > *cap_out) {
        size_t cap = *cap_out ? *cap_out : 256;
        while (cap < *n_out + n)
            cap *= 2;
        int32_t *o = realloc(*out, cap * sizeof *o);
        if (!o)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        *out = o;
        *cap_out = cap;
    }
    memcpy(*out + *n_out, ids, n * sizeof *ids);
    *n_out += n;
    return UM_OK;
}

/* Merges one word; writes its ids to *res (malloc'd, *n_res). */
static um_status bpe_merge(const um_tokenizer *t, const char *w, size_t n, int32_t **res, size_t *n_res,
                           um_error *err) {
    *res = NULL;
    *n_res = 0;
    if (n > INT32_MAX / 2)
        return um_fail(err, UM_ERR_ARG, "a pre-tokenized word of %zu bytes is too long", n);
    bpe_sym *s = malloc(n * sizeof *s);
    /* every merge pushes at most two pairs: 3n bounds the heap, stale ones included */
    bpe_pair *heap = malloc(3 * n * sizeof *heap);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!s || !heap || !ids) {
        free(s), free(heap), free(ids);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[(unsigned char)w[i]];
        if (id < 0) {
            free(s), free(heap), free(ids);
            return um_fail(err, UM_ERR_ARG, "byte 0x%02x has no token in this vocabulary",
                           (unsigned char)w[i]);
        }
        s[i] = (bpe_sym){id, (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(t, s, (int32_t)i, heap, &nh);
    while (nh) {
        bpe_pair p = heap_pop(heap, &nh);
        int32_t r = s[p.pos].next;
        if (s[p.pos].id != p.left || r < 0 || s[r].id != p.right)
            continue; /* stale */
        s[p.pos].id = p.merged;
        s[p.pos].next = s[r].next;
        if (s[r].next >= 0)
            s[s[r].next].prev = p.pos;
        s[r].id = -1;
        try_pair(t, s, s[p.pos].prev, heap, &nh);
        try_pair(t, s, p.pos, heap, &nh);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = s[i].next)
        ids[k++] = s[i].id;
    free(s);
    free(heap);
    *res = ids;
    *n_res = k;
    return UM_OK;
}

/* ---- the word cache ---- */

enum { CACHE_MAX_WORDS = 1 << 18, CACHE_MAX_KEY_BYTES = 64 << 20, CACHE_MAX_WORD = 256 };

void tok_cache_free(tok_cache *c) {
    free(c->keys.data);
    free(c->ids);
    free(c->slot);
    memset(c, 0, sizeof *c);
}

static void cache_clear(tok_cache *c) {
    c->keys.len = 0;
    c->n_ids = 0;
    c->n = 0;
    if (c->slot)
        memset(c->slot, 0, (c->mask + 1) * sizeof *c->slot);
}

static const struct cache_slot *cache_get(const tok_cache *c, uint64_t h, const char *w, size_t n) {
    if (!c->slot)
        return NULL;
    for (size_t j = h & c->mask; c->slot[j].n; j = (j + 1) & c->mask) {
        const struct cache_slot *s = &c->slot[j];
        if (s->hash == h && s->key_len == n && memcmp(c->keys.data + s->key_off, w, n) == 0)
            return s;
    }
    return NULL;
}

/* Best effort: a failed allocation only means the word is not cached. */
static void cache_put(tok_cache *c, uint64_t h, const char *w, size_t n, const int32_t *ids, size_t k) {
    if (c->n >= CACHE_MAX_WORDS || c->keys.len + n + 1 > CACHE_MAX_KEY_BYTES)
        cache_clear(c);
    if (!c->slot || (c->n + 1) * 2 > c->mask + 1) {
        size_t nslot = c->slot ? (c->mask + 1) * 2 : 4096;
        struct cache_slot *ns = calloc(nslot, sizeof *ns);
        if (!ns)
            return;
        for (size_t i = 0; c->slot && i <= c->mask; i++) {
            if (!c->slot[i].n)
                continue;
            size_t j = c->slot[i].hash & (nslot - 1);
            while (ns[j].n)
                j = (j + 1) & (nslot - 1);
            ns[j] = c->slot[i];
        }
        free(c->slot);
        c->slot = ns;
        c->mask = nslot - 1;
    }
    if (c->n_ids + k > c->cap_ids) {
        size_t cap = c->cap_ids ? c->cap_ids : 65536;
        while (cap < c->n_ids + k)
            cap *= 2;
        int32_t *ni = realloc(c->ids, cap * sizeof *ni);
        if (!ni)
            return;
        c->ids = ni;
        c->cap_ids = cap;
    }
    size_t off;
    if (tok_pool_add(&c->keys, w, n, &off, NULL) != UM_OK)
        return;
    memcpy(c->ids + c->n_ids, ids, k * sizeof *ids);
    size_t j = h & c->mask;
    while (c->slot[j].n)
        j = (j + 1) & c->mask;
    c->slot[j] = (struct cache_slot){h, off, (uint32_t)n, (uint32_t)c->n_ids, (uint32_t)k};
    c->n_ids += k;
    c->n++;
}

um_status tok_bpe_word(um_tokenizer *t, const char *w, size_t n, int32_t **out, size_t *n_out, size_t *cap_out,
                       um_error *err) {
    if (n == 0)
        return UM_OK;
    if (n == 1) {
        int32_t id = t->byte_id[(unsigned char)w[0]];
        if (id < 0)
            return um_fail(err, UM_ERR_ARG, "byte 0x%02x has no token in this vocabulary", (unsigned char)w[0]);
        return push_ids(&id, 1, out, n_out, cap_out, err);
    }
    if (t->ignore_merges) {
        int32_t id = tok_strmap_get(&t->by_bytes, &t->pool, w, n);
        if (id >= 0)
            return push_ids(&id, 1, out, n_out, cap_out, err);
    }
    /* Long words (a run of CJK or of punctuation) are rare and would crowd
     * the cache out; they are merged every time. */
    uint64_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = tok_hash(w, n);
        const struct cache_slot *s = cache_get(&t->cache, h, w, n);
        if (s)
            return push_ids(t->cache.ids + s->ids_off, s->n, out, n_out, cap_out, err);
    }
    int32_t *ids;
    size_t k;
    UM_TRY(bpe_merge(t, w, n, &ids, &k, err));
    um_status st = push_ids(ids, k, out, n_out, cap_out, err);
    if (st == UM_OK && n <= CACHE_MAX_WORD)
        cache_put(&t->cache, h, w, n, ids, k);
    free(ids);
    return st;
}
