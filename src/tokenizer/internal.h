/* What the tokenizer's source files share: the tokenizer's layout, the hash
 * maps, the split program (pre-tokenizer regexes) and the BPE core. Not for
 * use outside src/tokenizer. */
#ifndef UM_TOKENIZER_INTERNAL_H
#define UM_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "format/json.h"
#include "tokenizer/tokenizer.h"

/* ---- a growable byte pool; entries are addressed by offset, so growing it
 * never invalidates them ---- */
typedef struct {
    char *data;
    size_t len, cap;
} tok_pool;

/* Appends n bytes and a NUL; *off receives their offset. */
um_status tok_pool_add(tok_pool *p, const void *s, size_t n, size_t *off, um_error *err);

uint64_t tok_hash(const void *s, size_t n);

/* ---- string -> int32 map; keys live in a tok_pool ---- */
typedef struct {
    size_t off;
    uint32_t len;
    int32_t val;
    uint64_t hash;
} tok_strmap_entry;

typedef struct {
    tok_strmap_entry *e;
    size_t n, cap;
    uint32_t *slot; /* index + 1 into e; 0 = empty */
    size_t mask;
} tok_strmap;

/* Inserts key (already in pool at off) -> val unless present; *existing gets
 * the value already there, or -1. */
um_status tok_strmap_put(tok_strmap *m, const tok_pool *pool, size_t off, uint32_t len, int32_t val,
                         int32_t *existing, um_error *err);
int32_t tok_strmap_get(const tok_strmap *m, const tok_pool *pool, const char *key, size_t len);
void tok_strmap_free(tok_strmap *m);

/* ---- the pre-tokenizer: a sequence of regex splits, each applied to every
 * piece the previous ones made (Hugging Face's Sequence of Split, llama.cpp's
 * regex_exprs) ---- */
typedef enum {
    SPLIT_ISOLATED,    /* matches and the text between them are pieces */
    SPLIT_REMOVED,     /* matches are dropped */
    SPLIT_MERGED_PREV, /* a match joins the piece before it */
    SPLIT_MERGED_NEXT, /* a match joins the piece after it */
    SPLIT_CONTIGUOUS   /* consecutive matches form one piece */
} split_behavior;

typedef struct {
    pcre2_code *re;
    split_behavior behavior;
    bool invert; /* the text between matches is what the behavior acts on */
} split_step;

typedef struct {
    split_step *steps;
    int n_steps;
    bool add_prefix_space; /* ByteLevel add_prefix_space: a space before each piece of text
                              that does not start with one */
} split_program;

typedef struct {
    size_t start, end;
} tok_span;

/* Per-call scratch for splitting: match data, JIT stack, span buffers. */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    tok_span *a, *b;
    size_t cap_a, cap_b;
    unsigned char *flags; /* per raw segment: is_match */
    size_t cap_flags;
} split_scratch;

/* Compiles pattern (PCRE2 syntax; literal: matched as a plain string) and
 * appends it as a step. The pattern is named in compile errors. */
um_status split_program_add(split_program *p, const char *pattern, bool literal, split_behavior b, bool invert,
                            um_error *err);
void split_program_free(split_program *p);

/* Splits s[0..len) into pieces (*out, *n_out point into the scratch). */
um_status split_run(const split_program *p, const char *s, size_t len, split_scratch *sc, tok_span **out,
                    size_t *n_out, um_error *err);
void split_scratch_free(split_scratch *sc);

/* The regexes llama.cpp uses for a tokenizer.ggml.pre name. Returns false for
 * an unknown name. *ignore_merges: llama.cpp's per-name flag (a word that is
 * itself a token is not merged). */
bool tok_pre_lookup(const char *name, split_program *p, bool *ignore_merges, um_error *err, um_status *status);
/* The GPT-2 split regex (Hugging Face ByteLevel use_regex). */
extern const char *const TOK_GPT2_REGEX;
/* Qwen2's split regex (Qwen2 and Dream; llama.cpp's "qwen2"): like Llama 3's
 * but with single digits (\p{N}, not \p{N}{1,3}). Hugging Face's Qwen2
 * tokenizer.json writes it as a Split pre-tokenizer, its slow tokenizer as
 * PRETOKENIZE_REGEX. */
extern const char *const TOK_QWEN2_REGEX;

/* ---- the tokenizer ---- */
enum { TOK_NORMAL = 0, TOK_SPECIAL = 1, TOK_ADDED = 2, TOK_UNUSED = 3 };
enum { TOKF_LSTRIP = 1, TOKF_RSTRIP = 2, TOKF_SINGLE_WORD = 4 };

typedef struct {
    size_t text_off;  /* vocabulary spelling, in pool */
    size_t bytes_off; /* decoded bytes, in pool */
    uint32_t text_len, bytes_len;
    uint8_t kind;  /* TOK_* */
    uint8_t flags; /* TOKF_*: added tokens only */
    bool used;     /* an entry exists for this id */
} tok_entry;

typedef struct {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX = empty */
    int32_t rank, id;
} tok_merge_slot;

/* word bytes -> ids, cleared when it grows past its budget */
typedef struct {
    tok_pool keys;
    int32_t *ids;
    size_t n_ids, cap_ids;
    struct cache_slot {
        uint64_t hash;
        size_t key_off;
        uint32_t key_len;
        uint32_t ids_off, n;
    } *slot;
    size_t mask, n;
} tok_cache;

/* The added tokens the encoder looks for in the text, as a byte trie whose
 * children form a sibling list (few nodes have more than a handful). */
typedef struct {
    int32_t child;   /* first child, 0 = none (node 0 is the root) */
    int32_t sibling; /* next child of the same parent, 0 = none */
    int32_t id;      /* the token ending here, or -1 */
    uint8_t byte;    /* the byte leading here from the parent */
} trie_node;

struct um_tokenizer {
    tok_pool pool;
    tok_entry *tok;
    int32_t n_vocab;
    tok_strmap by_text;  /* vocabulary spelling -> id */
    tok_strmap by_bytes; /* decoded bytes -> id, normal tokens only (ignore_merges) */

    int32_t byte_id[256];  /* the token of each single byte, -1 if none */
    tok_merge_slot *merges;
    size_t merge_mask, n_merges;
    bool ignore_merges;
    bool nfc;

    split_program split;
    trie_node *trie;
    size_t n_trie, cap_trie;
    bool first_byte[256]; /* some added token starts with this byte */

    um_tokenizer_specials specials;
    char *chat_template;
    char *chat_default_system; /* a ChatML template's own system prompt */
    char *source, *pre_name, *warning;

    pthread_mutex_t lock; /* guards cache */
    tok_cache cache;
};

/* The GPT-2 byte <-> character mapping: printable bytes stand for
 * themselves, the others for U+0100 + n in byte order. */
uint32_t tok_byte_to_cp(uint8_t b);
/* -1 when cp is not one of the 256 */
int tok_cp_to_byte(uint32_t cp);

/* Building (used by the loaders): */
/* The loaders' bounds on a vocabulary of ids [0, n_vocab) given as n_tokens
 * entries: n_vocab below 2^26, far beyond any real vocabulary, and at most
 * 2^20 ids no entry uses, so that a small hostile file cannot make us
 * allocate gigabytes. NULL when they hold, else what is wrong. */
const char *tok_vocab_size_problem(int64_t n_vocab, int64_t n_tokens);
um_status tok_init(um_tokenizer *t, const char *source, um_error *err);
um_status tok_alloc_vocab(um_tokenizer *t, int32_t n_vocab, um_error *err);
/* Sets id's text; kind TOK_*; for TOK_NORMAL the bytes are the text mapped
 * back through the GPT-2 table (a token that does not map stays as is). */
um_status tok_set(um_tokenizer *t, int32_t id, const char *text, size_t len, int kind, int flags, um_error *err);
/* Registers the merge "left right" with the given rank; pairs whose parts or
 * result are not tokens are skipped (*skipped counts them). */
um_status tok_add_merge(um_tokenizer *t, const char *left, size_t llen, const char *right, size_t rlen,
                        int32_t rank, size_t *skipped, um_error *err);
/* Call once all tokens are set and before adding merges: builds the lookup
 * maps, the byte table and the added-token trie. */
um_status tok_finish_vocab(um_tokenizer *t, um_error *err);
/* Fills eot/mask by their usual spellings when unset. */
void tok_guess_specials(um_tokenizer *t);
/* Derives what the chat code needs from t->chat_template (chat.c). */
void tok_chat_prepare(um_tokenizer *t);
um_status tok_set_str(char **dst, const char *s, size_t len, um_error *err);

/* Hugging Face's files beside the vocabulary (load_json.c), shared by the
 * tokenizer.json and vocab.json loaders: */
/* Parses tokenizer_config.json at cfg_path into *cfg; a missing file is
 * UM_ERR_IO when required, else *cfg = NULL. */
um_status tok_load_config(const char *cfg_path, bool required, cJSON **cfg, um_error *err);
/* Applies a parsed tokenizer_config.json: bos/eos/pad/mask tokens,
 * add_bos_token, the chat template. */
um_status tok_apply_config(um_tokenizer *t, const cJSON *cfg, const char *cfg_path, um_error *err);
/* The directory part of path with its '/', or "" (dir holds size bytes). */
void tok_dir_of(const char *path, char *dir, size_t size);
/* The last step of a Hugging Face load: chat_template.jinja from dir (when
 * the config had no template), the guessed specials, the chat preparation. */
um_status tok_finish_hf(um_tokenizer *t, const char *dir, um_error *err);

/* The BPE of one word (its raw bytes): appends ids to *out. */
um_status tok_bpe_word(um_tokenizer *t, const char *w, size_t n, int32_t **out, size_t *n_out, size_t *cap_out,
                       um_error *err);
void tok_cache_free(tok_cache *c);

#endif
