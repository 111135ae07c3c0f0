/* The pre-tokenizer: regex splits run with PCRE2 (UTF, Unicode properties,
 * JIT when available), and the regexes llama.cpp associates with each
 * tokenizer.ggml.pre name.
 *
 * Semantics follow Hugging Face's Split pre-tokenizer: every match and every
 * stretch of text between matches is a candidate piece, which the behavior
 * then keeps, drops or joins; empty pieces vanish. A step applies to each
 * piece the previous step produced, with that piece as the whole subject (so
 * a lookahead never sees past the piece's end). llama.cpp's regex lists
 * behave as a Sequence of such splits with the Isolated behavior. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/internal.h"

/* GPT-2's pattern as Hugging Face's ByteLevel pre-tokenizer writes it. */
const char *const TOK_GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

um_status split_program_add(split_program *p, const char *pattern, bool literal, split_behavior b, bool invert,
                            um_error *err) {
    /* PCRE2_MATCH_INVALID_UTF: invalid UTF-8 in the subject is not an error,
     * it is simply never part of a match (see tokenizer.h). */
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return um_fail(err, UM_ERR_UNSUPPORTED, "pre-tokenizer regex /%.200s/ does not compile at offset %zu: %s",
                       pattern, (size_t)at, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when unavailable */
    split_step *s = realloc(p->steps, (size_t)(p->n_steps + 1) * sizeof *s);
    if (!s) {
        pcre2_code_free(re);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    p->steps = s;
    p->steps[p->n_steps++] = (split_step){re, b, invert};
    return UM_OK;
}

void split_program_free(split_program *p) {
    for (int i = 0; i < p->n_steps; i++)
        pcre2_code_free(p->steps[i].re);
    free(p->steps);
    memset(p, 0, sizeof *p);
}

void split_scratch_free(split_scratch *sc) {
    if (sc->md)
        pcre2_match_data_free(sc->md);
    if (sc->mctx)
        pcre2_match_context_free(sc->mctx);
    if (sc->jit)
        pcre2_jit_stack_free(sc->jit);
    free(sc->a);
    free(sc->b);
    free(sc->flags);
    memset(sc, 0, sizeof *sc);
}

static um_status reserve(tok_span **v, size_t *cap, size_t need, um_error *err) {
    if (need <= *cap)
        return UM_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    tok_span *n = realloc(*v, c * sizeof *n);
    if (!n)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    *v = n;
    *cap = c;
    return UM_OK;
}

static um_status scratch_init(split_scratch *sc, um_error *err) {
    if (sc->md)
        return UM_OK;
    sc->md = pcre2_match_data_create(1, NULL);
    sc->mctx = pcre2_match_context_create(NULL);
    /* the JIT's default 32 KiB stack is too small for the lookahead-heavy
     * patterns on long words */
    sc->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!sc->md || !sc->mctx)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    if (sc->jit)
        pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit);
    return UM_OK;
}

/* Length of the UTF-8 character at s (1 for a byte that does not start a
 * valid sequence), never past n. */
static size_t char_len(const unsigned char *s, size_t n) {
    size_t k = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
    if (k > n)
        return 1;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return k;
}

/* Appends a raw segment (a match or the text before one) to sc->b. */
static um_status raw_push(split_scratch *sc, size_t *n_raw, size_t start, size_t end, bool match, um_error *err) {
    UM_TRY(reserve(&sc->b, &sc->cap_b, *n_raw + 1, err));
    if (*n_raw + 1 > sc->cap_flags) {
        size_t c = sc->cap_flags ? sc->cap_flags * 2 : 1024;
        unsigned char *f = realloc(sc->flags, c);
        if (!f)
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        sc->flags = f;
        sc->cap_flags = c;
    }
    sc->b[*n_raw] = (tok_span){start, end};
    sc->flags[(*n_raw)++] = match;
    return UM_OK;
}

/* Splits the piece s[base + 0 .. base + len) with one step, appending the
 * resulting pieces (absolute offsets) to *out. */
static um_status split_one(const split_step *st, const char *s, size_t base, size_t len, split_scratch *sc,
                           tok_span **out, size_t *n_out, size_t *cap_out, um_error *err) {
    /* raw segments: alternating text-between and matches, each flagged */
    size_t n_raw = 0;
    const char *subj = s + base;
    size_t off = 0, gap = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
    while (off <= len) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)subj, len, off, PCRE2_NO_UTF_CHECK, sc->md, sc->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return um_fail(err, UM_ERR_ARG, "pre-tokenizer regex failed on a %zu-byte piece: %s", len,
                           (const char *)msg);
        }
        size_t ms = ov[0], me = ov[1];
        if (ms > gap)
            UM_TRY(raw_push(sc, &n_raw, base + gap, base + ms, false, err));
        UM_TRY(raw_push(sc, &n_raw, base + ms, base + me, true, err)); /* an empty match still separates the text around it */
        gap = me;
        if (me == ms) {
            if (ms >= len)
                break;
            off = ms + char_len((const unsigned char *)subj + ms, len - ms);
        } else {
            off = me;
        }
    }
    if (gap < len || n_raw == 0)
        UM_TRY(raw_push(sc, &n_raw, base + gap, base + len, false, err));

    /* the behavior, as Hugging Face's SplitDelimiterBehavior; MergedWithNext
     * is MergedWithPrevious walked from the end */
    size_t first = *n_out;
    bool backwards = st->behavior == SPLIT_MERGED_NEXT;
    bool prev_match = false;
    for (size_t r = 0; r < n_raw; r++) {
        size_t i = backwards ? n_raw - 1 - r : r;
        bool m = sc->flags[i] ^ st->invert;
        tok_span sp = sc->b[i];
        tok_span *last = *n_out > first ? &(*out)[*n_out - 1] : NULL;
        bool join = false;
        switch (st->behavior) {
        case SPLIT_ISOLATED:
            break;
        case SPLIT_REMOVED:
            if (m) {
                prev_match = m;
                continue;
            }
            break;
        case SPLIT_MERGED_PREV:
        case SPLIT_MERGED_NEXT:
            join = m && !prev_match && last;
            break;
        case SPLIT_CONTIGUOUS:
            join = m == prev_match && last;
            break;
        }
        prev_match = m;
        if (join) {
            if (backwards)
                last->start = sp.start;
            else
                last->end = sp.end;
            continue;
        }
        UM_TRY(reserve(out, cap_out, *n_out + 1, err));
        (*out)[(*n_out)++] = sp;
    }
    if (backwards)
        for (size_t i = first, j = *n_out; i + 1 < j; i++, j--) {
            tok_span tmp = (*out)[i];
            (*out)[i] = (*out)[j - 1];
            (*out)[j - 1] = tmp;
        }
    /* empty pieces vanish */
    size_t k = first;
    for (size_t i = first; i < *n_out; i++)
        if ((*out)[i].end > (*out)[i].start)
            (*out)[k++] = (*out)[i];
    *n_out = k;
    return UM_OK;
}

um_status split_run(const split_program *p, const char *s, size_t len, split_scratch *sc, tok_span **out,
                    size_t *n_out, um_error *err) {
    UM_TRY(scratch_init(sc, err));
    UM_TRY(reserve(&sc->a, &sc->cap_a, 1, err));
    sc->a[0] = (tok_span){0, len};
    size_t n = len ? 1 : 0;
    for (int i = 0; i < p->n_steps; i++) {
        /* step i reads sc->a and writes a fresh array, which becomes sc->a */
        tok_span *next = NULL;
        size_t n_next = 0, cap_next = 0;
        for (size_t j = 0; j < n; j++) {
            um_status st = split_one(&p->steps[i], s, sc->a[j].start, sc->a[j].end - sc->a[j].start, sc, &next,
                                     &n_next, &cap_next, err);
            if (st != UM_OK) {
                free(next);
                return st;
            }
        }
        free(sc->a);
        sc->a = next;
        sc->cap_a = cap_next;
        n = n_next;
    }
    *out = sc->a;
    *n_out = n;
    return UM_OK;
}

/* ---- llama.cpp's pre-tokenizer names (src/llama-vocab.cpp) ----
 * Each name maps to a list of regexes applied in turn, each isolating its
 * matches. The patterns are the same text as llama.cpp's, written with
 * \x{...} escapes where llama.cpp has literal non-ASCII characters; where
 * llama.cpp rewrote a Hugging Face pattern for std::regex (case-insensitive
 * groups, possessive quantifiers), the original is used, as PCRE2 has them. */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"    \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen2's split, shared with the tokenizer.json and vocab.json loaders */
const char *const TOK_QWEN2_REGEX = RX_QWEN2;
/* Ling / BailingMoE (LLaDA-MoE, LLaDA2): the tokenizer.json original, with
 * its possessive quantifiers */
#define RX_BAILING                                                                                            \
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|"             \
    "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"
/* CJK ideographs, U+0800..U+4E00 (sic) and Hangul, as DeepSeek's tokenizers write it */
#define RX_DEEPSEEK_CJK "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
/* DeepSeek LLM: the cased letters of many scripts, one class */
#define RX_DEEPSEEK_LETTERS                                                                                   \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}"      \
    "\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}"     \
    "\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}"           \
    "\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}"         \
    "\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"         \
    "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}" \
    "\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}" \
    "\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}"          \
    "\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}"           \
    "\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}"           \
    "\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"          \
    "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}"         \
    "\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}"       \
    "\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}"                    \
    "\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+"
#define RX_DEEPSEEK_PUNCT "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"
#define RX_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"

typedef struct {
    const char *names; /* space separated */
    const char *regex[6];
    bool ignore_merges;
} pre_def;

static const pre_def PRE_DEFS[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, false},
    {"gpt-2 phi-2 jina-es jina-de gigachat jina-v1-en jina-v2-es jina-v2-de jina-v2-code roberta-bpe a.x-4.0 "
     "mellum exaone4 mpt olmo jais trillion granite-docling modern-bert",
     {RX_GPT2},
     false},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2", {RX_LLAMA3}, true},
    {"dbrx smaug-bpe chatglm-bpe glm4", {RX_LLAMA3}, false},
    {"qwen2 deepseek-r1-qwen kormo megrez stablelm2 hunyuan", {RX_QWEN2}, false},
    {"bailingmoe bailingmoe2 llada-moe", {RX_BAILING}, false},
    {"deepseek-llm",
     {"[\\r\\n]", RX_DEEPSEEK_LETTERS, RX_DEEPSEEK_PUNCT, "\\s+$", RX_DEEPSEEK_CJK, "\\p{N}+"},
     false},
    {"deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_DEEPSEEK_CJK, "\\p{N}"}, false},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, false},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b", {"\\p{N}", RX_GPT2}, false},
    {"poro-chat bloom gpt3-finnish", {RX_BLOOM}, false},
    {"viking", {RX_BLOOM, "\\p{N}"}, false},
};

static bool name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && memcmp(p, name, n) == 0)
            return true;
        p += k + (e != NULL);
    }
    return false;
}

bool tok_pre_lookup(const char *name, split_program *p, bool *ignore_merges, um_error *err, um_status *status) {
    *status = UM_OK;
    for (size_t i = 0; i < sizeof PRE_DEFS / sizeof *PRE_DEFS; i++) {
        if (!name_in(PRE_DEFS[i].names, name))
            continue;
        for (int k = 0; k < 6 && PRE_DEFS[i].regex[k]; k++) {
            *status = split_program_add(p, PRE_DEFS[i].regex[k], false, SPLIT_ISOLATED, false, err);
            if (*status != UM_OK)
                return true;
        }
        *ignore_merges = PRE_DEFS[i].ignore_merges;
        return true;
    }
    return false;
}
