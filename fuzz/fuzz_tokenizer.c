/* libFuzzer target for the tokenizer loaders and the chat templates. The
 * first byte picks a loader; the rest is cut at each 0x1E byte (ASCII record
 * separator) into the files it reads, written to a scratch directory that is
 * then loaded as a model directory, and a text:
 *
 *   even: tokenizer.json 1E tokenizer_config.json 1E chat_template.jinja 1E text
 *   odd, and byte % 4 == 1: vocab.json 1E merges.txt 1E tokenizer_config.json
 *         1E chat_template.jinja 1E text
 *   byte % 4 == 3: the rest is a GGUF file (tokenizer.ggml.* metadata)
 *
 * A section the input lacks is a missing file. A load must succeed or fail
 * with a one-line message naming the file; a tokenizer that loads must encode
 * the text and some fixed strings (or refuse a byte it has no token for) into
 * ids of its vocabulary that decode back to the text's bytes, the same ids
 * again from its word cache, and every chat format must render a
 * conversation made of the text's lines.
 *
 * Built and run by `make fuzz`; tests/test_tokenizer.c includes this file to
 * replay fuzz/corpus/tokenizer and fuzz/regressions/tok-* through the same
 * checks (with FUZZ_CHECK failing the test instead of aborting). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "tokenizer/internal.h"

#ifndef FUZZ_CHECK
#define FUZZ_CHECK(cond)  \
    do {                  \
        if (!(cond))      \
            abort();      \
    } while (0)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Removes the scratch directory (at exit, or when the tests call it). */
void fuzz_tokenizer_cleanup(void);

#define SEP 0x1e
#define MAX_SECTIONS 5

static char scratch_dir[64];
static const char *const FILES[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json",
                                    "merges.txt"};
#define N_FILES (sizeof FILES / sizeof *FILES)

static const char *scratch_path(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", scratch_dir, name);
    return path;
}

void fuzz_tokenizer_cleanup(void) {
    if (!scratch_dir[0])
        return;
    for (size_t i = 0; i < N_FILES; i++)
        unlink(scratch_path(FILES[i]));
    rmdir(scratch_dir);
    scratch_dir[0] = 0;
}

/* Writes the named file, or removes it when data is NULL. */
static void put_file(const char *name, const uint8_t *data, size_t n) {
    const char *path = scratch_path(name);
    if (!data) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0);
}

/* A failed load: a status, and one line naming the file at fault (or the
 * directory, when no file is). */
static void check_error(um_status s, const um_error *err, const char *name) {
    FUZZ_CHECK(s != UM_OK && err->code == s && err->msg[0]);
    FUZZ_CHECK(!strchr(err->msg, '\n'));
    FUZZ_CHECK(s == UM_ERR_NOMEM || strstr(err->msg, name));
}

/* The documented decode(encode(s)) == s holds for plain byte-level BPE: no
 * normalizer or prefix space rewriting the text, no added token taking the
 * whitespace around it, and ids the merges and byte tokens produced (a merge
 * may name an added or unused token of a hostile vocabulary, whose text is
 * not byte-level spelling). */
static bool plain_text; /* set per tokenizer by check_tokenizer */

static bool round_trips(const um_tokenizer *t, const int32_t *ids, size_t n) {
    if (!plain_text)
        return false;
    for (size_t i = 0; i < n; i++)
        if (t->tok[ids[i]].kind != TOK_NORMAL)
            return false;
    return true;
}

static void check_encode(um_tokenizer *t, const char *text, size_t len) {
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        um_error err = {0};
        um_status s = um_tokenizer_encode(t, text, len, special, &ids, &n, &err);
        if (s != UM_OK) {
            /* a byte the vocabulary has no token for */
            FUZZ_CHECK(s == UM_ERR_ARG && ids == NULL && err.msg[0] && !strchr(err.msg, '\n'));
            continue;
        }
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < um_tokenizer_n_vocab(t));
        /* again, every word now from the cache: the same ids */
        int32_t *again = NULL;
        size_t n2 = 0;
        FUZZ_CHECK(um_tokenizer_encode(t, text, len, special, &again, &n2, &err) == UM_OK);
        FUZZ_CHECK(n2 == n && (n == 0 || memcmp(again, ids, n * sizeof *ids) == 0));
        free(again);
        char *back = NULL;
        size_t blen = 0;
        FUZZ_CHECK(um_tokenizer_decode(t, ids, n, false, &back, &blen, &err) == UM_OK);
        FUZZ_CHECK(strlen(back) <= blen);
        if (round_trips(t, ids, n))
            FUZZ_CHECK(blen == len && memcmp(back, text, len) == 0);
        free(back);
        FUZZ_CHECK(um_tokenizer_decode(t, ids, n, true, &back, &blen, &err) == UM_OK);
        free(back);
        free(ids);
    }
}

/* The text's lines as a conversation: each line's first byte picks the role. */
static void check_chat(um_tokenizer *t, const char *text, size_t len) {
    static const char *const roles[] = {"system", "user", "assistant", "tool", "user", "ipython"};
    static const char *const names[] = {NULL, "llada", "llada2", "chatml", "dream", "no-such-format"};
    um_chat_message msgs[8];
    char *lines[8];
    size_t n = 0;
    for (size_t at = 0; at < len && n < 8;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t k = nl ? (size_t)(nl - text - at) : len - at;
        lines[n] = strndup(text + at, k); /* stops at a NUL, as a C caller's string would */
        FUZZ_CHECK(lines[n]);
        msgs[n] = (um_chat_message){roles[k ? (unsigned char)text[at] % 6 : 1], lines[n]};
        n++;
        at += k + 1;
    }
    um_chat_family fam;
    um_chat_detect(text, &fam);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        um_chat_format fmt;
        char warning[512];
        um_error err = {0};
        um_status s = um_chat_select(t, names[i], &fmt, warning, sizeof warning, &err);
        if (s != UM_OK) {
            FUZZ_CHECK(i == sizeof names / sizeof *names - 1 && s == UM_ERR_ARG);
            continue;
        }
        FUZZ_CHECK(!strchr(warning, '\n'));
        for (int gen = 0; gen < 2; gen++) {
            char *out;
            size_t olen;
            FUZZ_CHECK(um_chat_render(&fmt, msgs, n, gen, &out, &olen, &err) == UM_OK);
            FUZZ_CHECK(strlen(out) == olen);
            if (t && i == 0 && gen)
                check_encode(t, out, olen);
            free(out);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
}

/* Everything a caller may ask a loaded tokenizer. */
static void check_tokenizer(um_tokenizer *t, const char *text, size_t len) {
    int32_t nv = um_tokenizer_n_vocab(t);
    FUZZ_CHECK(nv > 0);
    plain_text = !t->nfc && !t->split.add_prefix_space;
    for (int32_t id = 0; id < nv; id++)
        if (t->tok[id].flags & (TOKF_LSTRIP | TOKF_RSTRIP))
            plain_text = false;
    for (int32_t id = 0; id < nv && id < 4096; id++) {
        size_t n;
        const char *s = um_tokenizer_token_text(t, id);
        FUZZ_CHECK(s && um_tokenizer_token_bytes(t, id, &n));
        int32_t back = um_tokenizer_token_id(t, s, strlen(s));
        FUZZ_CHECK(back >= -1 && back < nv);
    }
    FUZZ_CHECK(!um_tokenizer_token_text(t, nv) && !um_tokenizer_token_text(t, -1));
    um_tokenizer_specials sp;
    um_tokenizer_get_specials(t, &sp);
    const int32_t ids[] = {sp.bos, sp.eos, sp.eot, sp.mask, sp.pad};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        FUZZ_CHECK(ids[i] >= -1 && ids[i] < nv);
    FUZZ_CHECK(um_tokenizer_source(t) && um_tokenizer_pre_name(t));
    const char *w = um_tokenizer_warning(t);
    FUZZ_CHECK(!w || !strchr(w, '\n'));

    static const char *const fixed[] = {"Hello, world! It's 12345 caf\xc3\xa9\r\n\r\n  x",
                                        "<|im_start|>user\nhi<|im_end|>\n", "\xff\xfe\xc3 \xe2\x82", "'S  a"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        check_encode(t, fixed[i], strlen(fixed[i]));
    check_encode(t, text, len);
    check_chat(t, text, len);
}

static void fuzz_gguf(const uint8_t *data, size_t size) {
    um_gguf_file f;
    um_error err = {0};
    if (um_gguf_parse(data, size, "fuzz.gguf", &f, &err) != UM_OK)
        return; /* the GGUF fuzzer's business */
    um_tokenizer *t = NULL;
    um_status s = um_tokenizer_load_gguf(&f, &t, &err);
    um_gguf_close(&f); /* the tokenizer must not point into the file */
    if (s != UM_OK) {
        check_error(s, &err, "fuzz.gguf");
        FUZZ_CHECK(!t);
        return;
    }
    check_tokenizer(t, "", 0);
    um_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!scratch_dir[0]) {
        snprintf(scratch_dir, sizeof scratch_dir, "/tmp/fuzz-tokenizer-XXXXXX");
        FUZZ_CHECK(mkdtemp(scratch_dir));
        atexit(fuzz_tokenizer_cleanup); /* libFuzzer ends runs with exit() */
    }
    if (size == 0)
        return 0;
    int mode = data[0] % 4;
    if (mode == 3) {
        fuzz_gguf(data + 1, size - 1);
        return 0;
    }
    /* cut the rest into sections */
    const uint8_t *sec[MAX_SECTIONS] = {0};
    size_t len[MAX_SECTIONS] = {0}, n_sec = 0;
    for (size_t at = 1; at <= size && n_sec < MAX_SECTIONS;) {
        const uint8_t *end = memchr(data + at, SEP, size - at);
        size_t k = end ? (size_t)(end - data - at) : size - at;
        sec[n_sec] = data + at;
        len[n_sec++] = k;
        at += k + 1;
    }
    static const char *const json_files[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    static const char *const vocab_files[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                              "chat_template.jinja"};
    const char *const *files = mode == 1 ? vocab_files : json_files;
    size_t n_files = mode == 1 ? 4 : 3;
    for (size_t i = 0; i < N_FILES; i++)
        put_file(FILES[i], NULL, 0);
    for (size_t i = 0; i < n_files && i < n_sec; i++)
        put_file(files[i], sec[i], len[i]);
    /* the text: NUL-terminated for the chat code, which reads C strings */
    size_t tlen = n_sec > n_files ? len[n_files] : 0;
    char *text = malloc(tlen + 1);
    FUZZ_CHECK(text);
    if (tlen)
        memcpy(text, sec[n_files], tlen);
    text[tlen] = 0;

    um_tokenizer *t = NULL;
    um_error err = {0};
    um_status s = um_tokenizer_load(scratch_dir, &t, &err);
    if (s == UM_OK) {
        check_tokenizer(t, text, tlen);
        um_tokenizer_free(t);
    } else {
        check_error(s, &err, scratch_dir);
        FUZZ_CHECK(!t);
        check_chat(NULL, text, tlen);
    }
    free(text);
    return 0;
}
