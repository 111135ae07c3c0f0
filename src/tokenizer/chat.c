/* Chat templates. unmask has no jinja engine: it recognises the published
 * templates of the model families it runs and renders each in C, to the
 * byte what the jinja renders (transformers' apply_chat_template).
 *
 * llada   GSAI-ML/LLaDA-8B-Instruct's tokenizer_config.json:
 *         {% set loop_messages = messages %}{% for message in loop_messages %}
 *         {% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'
 *            + message['content'] | trim + '<|eot_id|>' %}
 *         {% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
 *         {% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}
 * ling    the Ling-2.0 template of inclusionAI's LLaDA2.x: a system block
 *         that always ends in "detailed thinking off",
 *         <role>HUMAN|ASSISTANT|SYSTEM|OBSERVATION</role> turns closed by
 *         <|role_end|>, assistant reasoning in <think> kept only after the
 *         last user turn (tool definitions are not supported).
 * llada-moe  LLaDA-MoE's simpler Ling template (fixtures/llada-moe):
 *         {% for message in messages %}{% set role = message['role'] | lower %}
 *         {% if role == 'user' %}{% set role = 'HUMAN' %}{% endif %}{% set role = role | upper %}
 *         {{ '<role>' + role + '</role>' + message['content'] + '<|role_end|>' }}{% endfor %}
 *         {% if add_generation_prompt %}{{ '<role>ASSISTANT</role>' }}{% endif %}
 * chatml  Dream-v0-Instruct-7B (Qwen2 style):
 *         {% for message in messages %}{% if loop.first and message['role'] != 'system' %}
 *         {{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}
 *         {{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}
 *         {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tokenizer/internal.h"

#define DREAM_DEFAULT_SYSTEM "You are a helpful assistant."

/* ---- a growable string ---- */
typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

/* ---- Python's str.strip() (what jinja's trim calls): the characters
 * str.isspace() accepts ---- */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decodes the character starting at s (n bytes left); 0xFFFFFFFF and one
 * byte for invalid UTF-8, which is never a space. */
static uint32_t utf8_at(const unsigned char *s, size_t n, size_t *len) {
    uint32_t c = s[0];
    size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    *len = 1;
    if (k == 0 || k > n)
        return 0xffffffffu;
    if (k == 1)
        return c;
    c &= 0x7fu >> k;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0xffffffffu;
        c = c << 6 | (s[i] & 0x3fu);
    }
    *len = k;
    return c;
}

static void trimmed(const char *s, const char **start, size_t *len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), a = 0, b = n;
    while (a < n) {
        size_t k;
        if (!py_space(utf8_at(p + a, n - a, &k)))
            break;
        a += k;
    }
    while (b > a) {
        /* step back to the start of the last character */
        size_t st = b - 1;
        while (st > a && (p[st] & 0xc0) == 0x80 && b - st < 4)
            st--;
        size_t k;
        uint32_t c = utf8_at(p + st, b - st, &k);
        if (st + k != b || !py_space(c))
            break;
        b = st;
    }
    *start = s + a;
    *len = b - a;
}

/* ---- detection ---- */

bool um_chat_detect(const char *jinja, um_chat_family *family) {
    if (!jinja)
        return false;
    if (strstr(jinja, "<|start_header_id|>") && strstr(jinja, "<|end_header_id|>")) {
        *family = UM_CHAT_LLADA;
        return true;
    }
    if (strstr(jinja, "<role>") && strstr(jinja, "<|role_end|>") &&
        (strstr(jinja, "HUMAN") || strstr(jinja, "ASSISTANT"))) {
        /* Ling-2.0's always writes a system block; LLaDA-MoE's writes only the turns */
        *family = strstr(jinja, "detailed thinking") ? UM_CHAT_LING : UM_CHAT_LLADA_MOE;
        return true;
    }
    if (strstr(jinja, "<|im_start|>")) {
        *family = UM_CHAT_CHATML;
        return true;
    }
    return false;
}

/* The default system prompt a ChatML template writes itself: the literal
 * text after "<|im_start|>system\n" (a real newline or jinja's \n escape) up
 * to <|im_end|>, when it is literal (no quote or jinja tag in it). */
static char *chatml_default_system(const char *jinja) {
    static const char *const heads[] = {"<|im_start|>system\n", "<|im_start|>system\\n"};
    for (int h = 0; h < 2; h++) {
        for (const char *p = jinja; (p = strstr(p, heads[h])) != NULL; p++) {
            const char *text = p + strlen(heads[h]);
            const char *end = strstr(text, "<|im_end|>");
            if (!end || end == text)
                continue;
            size_t n = (size_t)(end - text);
            if (memchr(text, '\'', n) || memchr(text, '"', n) || memchr(text, '{', n) || memchr(text, '\\', n))
                continue;
            char *s = malloc(n + 1);
            if (!s)
                return NULL;
            memcpy(s, text, n);
            s[n] = 0;
            return s;
        }
    }
    return NULL;
}

static const struct {
    const char *name;
    um_chat_family family;
} NAMES[] = {{"llada", UM_CHAT_LLADA},   {"llada-moe", UM_CHAT_LLADA_MOE}, {"llada2", UM_CHAT_LING},
             {"ling", UM_CHAT_LING},     {"chatml", UM_CHAT_CHATML},  {"dream", UM_CHAT_CHATML}};

static const char *family_name(um_chat_family f) {
    return f == UM_CHAT_LLADA ? "llada" : f == UM_CHAT_LING ? "llada2" : f == UM_CHAT_LLADA_MOE ? "llada-moe" : "chatml";
}

static bool vocab_has(const um_tokenizer *t, const char *s) {
    return t && um_tokenizer_token_id(t, s, strlen(s)) >= 0;
}

um_status um_chat_select(const um_tokenizer *t, const char *override_name, um_chat_format *fmt, char *warning,
                         size_t warning_size, um_error *err) {
    if (warning && warning_size)
        warning[0] = 0;
    const char *tpl = t ? t->chat_template : NULL;
    um_chat_family fam = UM_CHAT_LLADA;
    const char *name = NULL;
    if (override_name && *override_name) {
        for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES && !name; i++)
            if (strcmp(override_name, NAMES[i].name) == 0)
                fam = NAMES[i].family, name = NAMES[i].name;
        if (!name)
            return um_fail(err, UM_ERR_ARG, "unknown chat template '%s' (known: %s)", override_name,
                           UM_CHAT_TEMPLATE_NAMES);
    } else if (um_chat_detect(tpl, &fam)) {
        name = family_name(fam);
    } else {
        /* the documented fallback: by the vocabulary's marker tokens */
        const char *why;
        if (vocab_has(t, "<|im_start|>"))
            fam = UM_CHAT_CHATML, why = "the vocabulary has <|im_start|>";
        else if (vocab_has(t, "<|role_end|>"))
            fam = UM_CHAT_LING, why = "the vocabulary has <|role_end|>";
        else if (vocab_has(t, "<|start_header_id|>"))
            fam = UM_CHAT_LLADA, why = "the vocabulary has <|start_header_id|>";
        else
            fam = UM_CHAT_LLADA, why = "the default";
        name = family_name(fam);
        if (warning && warning_size)
            snprintf(warning, warning_size,
                     "%s; using the '%s' chat format (%s); choose one with --chat-template (%s)",
                     tpl ? "the model's chat template is not one unmask recognises"
                         : "the model has no chat template",
                     name, why, UM_CHAT_TEMPLATE_NAMES);
    }
    fmt->family = fam;
    fmt->name = name;
    fmt->bos = NULL;
    fmt->default_system = NULL;
    if (fam == UM_CHAT_LLADA) {
        /* the template writes bos_token: the tokenizer's BOS spelling */
        const char *bos = t && t->specials.bos >= 0 ? um_tokenizer_token_text(t, t->specials.bos) : NULL;
        fmt->bos = bos && *bos ? bos : "<|startoftext|>";
    } else if (fam == UM_CHAT_CHATML) {
        um_chat_family tf;
        if (t && t->chat_default_system)
            fmt->default_system = t->chat_default_system;
        else if (!(tpl && um_chat_detect(tpl, &tf) && tf == UM_CHAT_CHATML))
            fmt->default_system = DREAM_DEFAULT_SYSTEM; /* no ChatML template of the model's own to follow */
    }
    return UM_OK;
}

void tok_chat_prepare(um_tokenizer *t) {
    um_chat_family f;
    if (t->chat_template && um_chat_detect(t->chat_template, &f) && f == UM_CHAT_CHATML)
        t->chat_default_system = chatml_default_system(t->chat_template);
}

/* ---- rendering ---- */

static bool role_is(const um_chat_message *m, const char *r) {
    return m->role && strcmp(m->role, r) == 0;
}

static void render_llada(const um_chat_format *f, const um_chat_message *m, size_t n, bool gen, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0)
            sb_str(b, f->bos);
        sb_str(b, "<|start_header_id|>");
        sb_str(b, m[i].role);
        sb_str(b, "<|end_header_id|>\n\n");
        const char *c;
        size_t cl;
        trimmed(m[i].content, &c, &cl);
        sb_add(b, c, cl);
        sb_str(b, "<|eot_id|>");
    }
    if (gen)
        sb_str(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static bool starts_with(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    return n >= k && memcmp(s, p, k) == 0;
}

static bool ends_with(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

/* s with leading (lead) and/or trailing (trail) newlines removed */
static void strip_nl(const char **s, size_t *n, bool lead, bool trail) {
    while (lead && *n && **s == '\n')
        (*s)++, (*n)--;
    while (trail && *n && (*s)[*n - 1] == '\n')
        (*n)--;
}

static const char *find_last(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (memcmp(s + i, p, k) == 0)
            return s + i;
    return NULL;
}

static const char *find_first(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, p, k) == 0)
            return s + i;
    return NULL;
}

/* LLaDA-MoE's: each turn as <role>ROLE</role>content<|role_end|>, the role
 * upper-cased and "user" called HUMAN; no system block of its own. */
static void render_llada_moe(const um_chat_message *m, size_t n, bool gen, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        sb_str(b, "<role>");
        if (strcasecmp(m[i].role, "user") == 0) /* | lower == 'user' (ASCII, as the roles are) */
            sb_str(b, "HUMAN");
        else
            for (const char *c = m[i].role; *c; c++)
                sb_add(b, &(char){(char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c)}, 1);
        sb_str(b, "</role>");
        sb_str(b, m[i].content);
        sb_str(b, "<|role_end|>");
    }
    if (gen)
        sb_str(b, "<role>ASSISTANT</role>");
}

static void render_ling(const um_chat_message *m, size_t n, bool gen, sbuf *b) {
    sb_str(b, "<role>SYSTEM</role>");
    if (n && role_is(&m[0], "system")) {
        sb_str(b, m[0].content);
        sb_str(b, "\n");
    }
    sb_str(b, "detailed thinking off<|role_end|>");
    /* the last user turn that is not a tool response */
    size_t last_query = n ? n - 1 : 0;
    for (size_t i = n; i-- > 0;) {
        size_t cl = strlen(m[i].content);
        if (role_is(&m[i], "user") &&
            !(starts_with(m[i].content, cl, "<tool_response>") && ends_with(m[i].content, cl, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *content = m[i].content;
        size_t cl = strlen(content);
        if (role_is(&m[i], "user")) {
            sb_str(b, "<role>HUMAN</role>");
            sb_add(b, content, cl);
            sb_str(b, "<|role_end|>");
        } else if (role_is(&m[i], "system")) {
            if (i == 0)
                continue;
            sb_str(b, "<role>SYSTEM</role>");
            sb_add(b, content, cl);
            sb_str(b, "<|role_end|>");
        } else if (role_is(&m[i], "assistant")) {
            /* content.split('</think>'): reasoning is what precedes the first
             * </think> (after its last <think>), the answer what follows the
             * last one */
            const char *reason = NULL;
            size_t rl = 0;
            const char *close = find_first(content, cl, "</think>");
            if (close) {
                reason = content;
                rl = (size_t)(close - content);
                strip_nl(&reason, &rl, false, true);
                const char *open = find_last(reason, rl, "<think>");
                if (open) {
                    rl -= (size_t)(open + 7 - reason);
                    reason = open + 7;
                }
                strip_nl(&reason, &rl, true, false);
                const char *last = find_last(content, cl, "</think>") + 8;
                cl -= (size_t)(last - content);
                content = last;
                strip_nl(&content, &cl, true, false);
            }
            sb_str(b, "<role>ASSISTANT</role>");
            if (i > last_query && reason && rl) {
                strip_nl(&reason, &rl, true, true);
                sb_str(b, "\n<think>\n");
                sb_add(b, reason, rl);
                sb_str(b, "\n</think>\n\n");
                strip_nl(&content, &cl, true, false);
            }
            sb_add(b, content, cl);
            sb_str(b, "<|role_end|>");
        } else if (role_is(&m[i], "tool")) {
            if (i == 0 || !role_is(&m[i - 1], "tool"))
                sb_str(b, "<role>OBSERVATION</role>");
            sb_str(b, "\n<tool_response>\n");
            sb_add(b, content, cl);
            sb_str(b, "\n</tool_response>");
            if (i + 1 == n || !role_is(&m[i + 1], "tool"))
                sb_str(b, "<|role_end|>");
        }
        /* other roles: the template writes nothing for them */
    }
    if (gen)
        sb_str(b, "<role>ASSISTANT</role>");
}

static void render_chatml(const um_chat_format *f, const um_chat_message *m, size_t n, bool gen, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && !role_is(&m[0], "system") && f->default_system) {
            sb_str(b, "<|im_start|>system\n");
            sb_str(b, f->default_system);
            sb_str(b, "<|im_end|>\n");
        }
        sb_str(b, "<|im_start|>");
        sb_str(b, m[i].role);
        sb_str(b, "\n");
        sb_str(b, m[i].content);
        sb_str(b, "<|im_end|>\n");
    }
    if (gen)
        sb_str(b, "<|im_start|>assistant\n");
}

um_status um_chat_render(const um_chat_format *fmt, const um_chat_message *msgs, size_t n,
                         bool add_generation_prompt, char **out, size_t *len, um_error *err) {
    *out = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return um_fail(err, UM_ERR_ARG, "chat message %zu has no %s", i, msgs[i].role ? "content" : "role");
    sbuf b = {0};
    sb_add(&b, "", 0);
    switch (fmt->family) {
    case UM_CHAT_LLADA:
        render_llada(fmt, msgs, n, add_generation_prompt, &b);
        break;
    case UM_CHAT_LING:
        render_ling(msgs, n, add_generation_prompt, &b);
        break;
    case UM_CHAT_LLADA_MOE:
        render_llada_moe(msgs, n, add_generation_prompt, &b);
        break;
    case UM_CHAT_CHATML:
        render_chatml(fmt, msgs, n, add_generation_prompt, &b);
        break;
    default:
        free(b.s);
        return um_fail(err, UM_ERR_ARG, "unknown chat format %d", (int)fmt->family);
    }
    if (b.oom) {
        free(b.s);
        return um_fail(err, UM_ERR_NOMEM, "out of memory rendering the chat");
    }
    *out = b.s;
    *len = b.n;
    return UM_OK;
}

um_status um_chat_prompt(um_tokenizer *t, const um_chat_message *msgs, size_t n, int32_t **ids, size_t *n_ids,
                         um_error *err) {
    um_chat_format fmt;
    char *text;
    size_t len;
    *ids = NULL;
    *n_ids = 0;
    UM_TRY(um_chat_select(t, NULL, &fmt, NULL, 0, err));
    UM_TRY(um_chat_render(&fmt, msgs, n, true, &text, &len, err));
    um_status s = um_tokenizer_encode(t, text, len, true, ids, n_ids, err); /* the rendering holds its BOS */
    free(text);
    return s;
}
