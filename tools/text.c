#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "cli.h"

bool cli_text_open(cli_text *t, const char *cmd, const char *model_path, const char *template_name) {
    memset(t, 0, sizeof *t);
    t->cmd = cmd;
    um_error err;
    if (um_tokenizer_load(model_path, &t->tok, &err) != UM_OK) {
        cli_error(cmd, "%s", err.msg);
        return false;
    }
    if (um_tokenizer_warning(t->tok))
        fprintf(stderr, "unmask %s: warning: %s\n", cmd, um_tokenizer_warning(t->tok));
    um_tokenizer_get_specials(t->tok, &t->sp);
    char warning[512] = "";
    if (um_chat_select(t->tok, template_name, &t->chat, warning, sizeof warning, &err) != UM_OK) {
        cli_error(cmd, "%s", err.msg);
        cli_text_close(t);
        return false;
    }
    t->chat_warning_pending = warning[0] != 0;
    snprintf(t->chat_warning, sizeof t->chat_warning, "%s", warning);
    return true;
}

void cli_text_close(cli_text *t) {
    um_tokenizer_free(t->tok);
    t->tok = NULL;
}

/* Encodes text and prepends bos when bos >= 0. */
static bool encode(cli_text *t, const char *text, size_t len, int32_t bos, int32_t **ids, int *n) {
    int32_t *raw;
    size_t n_raw;
    um_error err;
    if (um_tokenizer_encode(t->tok, text, len, true, &raw, &n_raw, &err) != UM_OK) {
        cli_error(t->cmd, "%s", err.msg);
        return false;
    }
    int extra = bos >= 0 ? 1 : 0;
    int32_t *out = malloc((n_raw + 1) * sizeof *out);
    if (!out) {
        free(raw);
        cli_error(t->cmd, "out of memory");
        return false;
    }
    if (extra)
        out[0] = bos;
    if (n_raw)
        memcpy(out + extra, raw, n_raw * sizeof *raw);
    free(raw);
    *ids = out;
    *n = (int)n_raw + extra;
    return true;
}

bool cli_text_prompt_raw(cli_text *t, const char *text, int32_t **ids, int *n) {
    return encode(t, text, strlen(text), t->sp.add_bos ? t->sp.bos : -1, ids, n);
}

bool cli_text_prompt_chat(cli_text *t, const um_chat_message *msgs, int n_msgs, int32_t **ids, int *n) {
    if (t->chat_warning_pending) { /* said once, when a chat is first rendered */
        fprintf(stderr, "unmask %s: warning: %s\n", t->cmd, t->chat_warning);
        t->chat_warning_pending = false;
    }
    char *rendered;
    size_t len;
    um_error err;
    if (um_chat_render(&t->chat, msgs, (size_t)n_msgs, true, &rendered, &len, &err) != UM_OK) {
        cli_error(t->cmd, "%s", err.msg);
        return false;
    }
    bool ok = encode(t, rendered, len, -1, ids, n); /* the rendering holds its own BOS */
    free(rendered);
    return ok;
}

static bool append(cli_text *t, int32_t **out, int *count, int *cap, const int32_t *ids, int n) {
    if (*count + n > *cap) {
        int ncap = (*count + n) * 2 + 16;
        int32_t *grown = realloc(*out, (size_t)ncap * sizeof *grown);
        if (!grown) {
            cli_error(t->cmd, "out of memory");
            return false;
        }
        *out = grown;
        *cap = ncap;
    }
    memcpy(*out + *count, ids, (size_t)n * sizeof *ids);
    *count += n;
    return true;
}

/* "{mask}" or "{mask:N}" at p: the count, and where the placeholder ends; 0 when malformed. */
static int placeholder(const char *p, const char **after) {
    char *end = (char *)p + 5;
    long k = 1;
    if (*end == ':')
        k = strtol(end + 1, &end, 10);
    if (*end != '}' || k < 1 || k > 4096)
        return 0;
    *after = end + 1;
    return (int)k;
}

bool cli_text_prompt_infill(cli_text *t, const char *tmpl, int mask_id, int32_t **ids, int *n) {
    int32_t *out = NULL;
    int count = 0, cap = 0;
    bool ok = true;
    if (t->sp.add_bos && t->sp.bos >= 0)
        ok = append(t, &out, &count, &cap, &t->sp.bos, 1);
    for (const char *p = tmpl; ok && *p;) {
        const char *open = strstr(p, "{mask");
        size_t text_len = open ? (size_t)(open - p) : strlen(p);
        int32_t *piece = NULL;
        int n_piece = 0;
        if (text_len) {
            ok = encode(t, p, text_len, -1, &piece, &n_piece) && append(t, &out, &count, &cap, piece, n_piece);
            free(piece);
        }
        if (!ok || !open)
            break;
        int k = placeholder(open, &p);
        if (k == 0) {
            cli_error(t->cmd, "--infill: bad placeholder at '%.16s' (write {mask} or {mask:N}, N in 1..4096)", open);
            ok = false;
        }
        for (int i = 0; ok && i < k; i++)
            ok = append(t, &out, &count, &cap, &mask_id, 1);
    }
    if (!ok) {
        free(out);
        return false;
    }
    *ids = out;
    *n = count;
    return true;
}

/* Decodes ids[0, n) that the vocabulary knows (a model's head may be wider
 * than its tokenizer), special tokens left out. */
static char *decode_known(cli_text *t, const int32_t *ids, int n) {
    int32_t *keep = malloc((size_t)(n > 0 ? n : 1) * sizeof *keep), vocab = um_tokenizer_n_vocab(t->tok);
    int k = 0;
    for (int i = 0; keep && i < n; i++)
        if (ids[i] >= 0 && ids[i] < vocab)
            keep[k++] = ids[i];
    char *text = NULL;
    size_t len;
    um_error err;
    if (!keep)
        cli_error(t->cmd, "out of memory");
    else if (um_tokenizer_decode(t->tok, keep, (size_t)k, true, &text, &len, &err) != UM_OK)
        cli_error(t->cmd, "%s", err.msg);
    free(keep);
    return text;
}

char *cli_text_answer(cli_text *t, const int32_t *ids, int n) {
    int end = 0;
    while (end < n && ids[end] != t->sp.eos && ids[end] != t->sp.eot)
        end++;
    return decode_known(t, ids, end);
}

char *cli_text_answer_all(cli_text *t, const int32_t *ids, int n) { return decode_known(t, ids, n); }

char *cli_text_read_file(const char *cmd, const char *path) {
    char *text;
    size_t n;
    um_error err;
    if (um_read_file(path, 64u << 20, &text, &n, &err) != UM_OK) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    return text;
}
