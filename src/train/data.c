/* Training data: packed text documents and prompt/response pairs. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "train/train.h"

typedef struct {
    int32_t *v;
    size_t n, cap;
} ids_buf;

static int ids_push(ids_buf *b, const int32_t *ids, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n)
            cap *= 2;
        int32_t *p = realloc(b->v, cap * sizeof *p);
        if (!p)
            return 0;
        b->v = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->v + b->n, ids, n * sizeof *ids);
    b->n += n;
    return 1;
}

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || hn < nn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0)
            return h + i;
    return NULL;
}

um_status um_train_data_text(um_tokenizer *t, const char *text, size_t len, const char *sep, int eos, int seq,
                             um_train_data *d, um_error *err) {
    memset(d, 0, sizeof *d);
    if (seq < 2)
        return um_fail(err, UM_ERR_ARG, "sequence length %d: need at least 2", seq);
    if (!sep || !*sep)
        sep = "<|endoftext|>";
    size_t sep_len = strlen(sep);
    ids_buf all = {0};
    int32_t e = eos;
    for (size_t pos = 0; pos < len;) {
        const char *hit = find_bytes(text + pos, len - pos, sep, sep_len);
        size_t end = hit ? (size_t)(hit - text) : len, a = pos, b = end;
        while (a < b && is_space(text[a]))
            a++;
        while (b > a && is_space(text[b - 1]))
            b--;
        if (b > a) {
            int32_t *ids = NULL;
            size_t n = 0;
            um_status s = um_tokenizer_encode(t, text + a, b - a, false, &ids, &n, err);
            if (s != UM_OK) {
                free(all.v);
                return s;
            }
            int ok = ids_push(&all, ids, n) && ids_push(&all, &e, 1);
            free(ids);
            if (!ok) {
                free(all.v);
                return um_fail(err, UM_ERR_NOMEM, "out of memory tokenizing the data");
            }
        }
        pos = hit ? end + sep_len : len;
    }
    if (all.n == 0) {
        free(all.v);
        return um_fail(err, UM_ERR_ARG, "the data holds no text");
    }
    size_t rows = (all.n + (size_t)seq - 1) / (size_t)seq;
    while (all.n < rows * (size_t)seq)
        if (!ids_push(&all, &e, 1)) {
            free(all.v);
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        }
    d->tokens = all.v;
    d->n_rows = (int)rows;
    d->seq = seq;
    return UM_OK;
}

static um_status encode_str(um_tokenizer *t, const char *s, bool special, ids_buf *b, um_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    UM_TRY(um_tokenizer_encode(t, s, strlen(s), special, &ids, &n, err));
    int ok = ids_push(b, ids, n);
    free(ids);
    return ok ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
}

um_status um_train_data_sft(um_tokenizer *t, const char *jsonl, size_t len, const um_chat_format *fmt, int eos,
                            int seq, um_train_data *d, um_error *err) {
    memset(d, 0, sizeof *d);
    if (seq < 2)
        return um_fail(err, UM_ERR_ARG, "sequence length %d: need at least 2", seq);
    ids_buf rows = {0}, plens = {0}, cur = {0};
    um_status s = UM_OK;
    int line = 0;
    int32_t e = eos;
    for (size_t pos = 0; pos < len && s == UM_OK;) {
        const char *nl = memchr(jsonl + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - jsonl) : len;
        line++;
        size_t a = pos;
        while (a < end && is_space(jsonl[a]))
            a++;
        if (a < end) {
            cJSON *j = cJSON_ParseWithLength(jsonl + pos, end - pos);
            const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
            const cJSON *re = cJSON_GetObjectItemCaseSensitive(j, "response");
            cur.n = 0;
            if (!cJSON_IsString(pr) || !cJSON_IsString(re)) {
                s = um_fail(err, UM_ERR_FORMAT, "line %d: expected {\"prompt\": string, \"response\": string}", line);
            } else if (fmt) {
                um_chat_message msg = {"user", pr->valuestring};
                char *txt = NULL;
                size_t tl = 0;
                s = um_chat_render(fmt, &msg, 1, true, &txt, &tl, err);
                if (s == UM_OK)
                    s = encode_str(t, txt, true, &cur, err);
                free(txt);
            } else {
                s = encode_str(t, pr->valuestring, false, &cur, err);
            }
            int32_t plen = (int32_t)cur.n;
            if (s == UM_OK && plen >= seq)
                s = um_fail(err, UM_ERR_ARG, "line %d: the prompt has %d tokens, the row length is %d", line, plen,
                            seq);
            if (s == UM_OK)
                s = encode_str(t, re->valuestring, false, &cur, err);
            if (s == UM_OK) {
                if (cur.n > (size_t)seq - 1)
                    cur.n = (size_t)seq - 1;
                while (cur.n < (size_t)seq && ids_push(&cur, &e, 1))
                    ;
                if (cur.n < (size_t)seq || !ids_push(&rows, cur.v, (size_t)seq) || !ids_push(&plens, &plen, 1))
                    s = um_fail(err, UM_ERR_NOMEM, "out of memory");
            }
            cJSON_Delete(j);
        }
        pos = nl ? end + 1 : len;
    }
    free(cur.v);
    if (s == UM_OK && plens.n == 0)
        s = um_fail(err, UM_ERR_ARG, "the data holds no prompt/response pair");
    if (s != UM_OK) {
        free(rows.v);
        free(plens.v);
        return s;
    }
    d->tokens = rows.v;
    d->prompt_lengths = plens.v;
    d->n_rows = (int)plens.n;
    d->seq = seq;
    return UM_OK;
}

void um_train_data_free(um_train_data *d) {
    free(d->tokens);
    free(d->prompt_lengths);
    memset(d, 0, sizeof *d);
}
