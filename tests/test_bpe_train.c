/* The BPE learner (`unmask train-tokenizer`) against Hugging Face
 * `tokenizers`: tests/data/bpe_train/reference.json (made by
 * make_reference.py there) holds the merges Hugging Face's BpeTrainer learns
 * on the same corpora, which ours must equal merge for merge, and the ids
 * Hugging Face gives when it encodes texts with the tokenizer.json OUR learner
 * writes, which our loader must reproduce. Also round trips, the file's
 * special tokens, the command line and bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "testutil.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

#define DATA "tests/data/bpe_train/"
#define CORPUS DATA "tinystories_20k.txt"

static const char *const SPECIALS[] = {"<|endoftext|>", "<|mdm_mask|>"};

static cJSON *load_json(const char *path) {
    size_t n;
    char *text = read_whole_file(path, &n);
    if (!text)
        fail_msg("cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength(text, n);
    free(text);
    if (!j)
        fail_msg("%s is not JSON", path);
    return j;
}

/* Learns from text as make_reference.py does (specials, separator
 * <|endoftext|>, min_frequency 2) and writes dir/tokenizer.json (and
 * tokenizer_config.json); returns the json path (static buffer). */
static const char *learn(const char *text, size_t len, int vocab, const char *dir, um_bpe_train_stats *st) {
    static char path[4096];
    um_bpe_train_opts o = {.vocab_size = vocab, .specials = SPECIALS, .n_specials = 2,
                           .separator = "<|endoftext|>", .min_frequency = 2};
    um_bpe_trainer *t = NULL;
    um_error err = {0};
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    if (um_bpe_trainer_new(&o, &t, &err) != UM_OK || um_bpe_trainer_feed(t, text, len, &err) != UM_OK ||
        um_bpe_trainer_learn(t, &err) != UM_OK || um_bpe_trainer_write_json(t, path, &err) != UM_OK ||
        um_bpe_trainer_write_config(t, cfg, &err) != UM_OK)
        fail_msg("learning from %zu bytes: %s", len, err.msg);
    if (st)
        um_bpe_trainer_stats(t, st);
    um_bpe_trainer_free(t);
    return path;
}

static const char *learn_file(const char *corpus, int vocab, const char *dir, um_bpe_train_stats *st) {
    size_t n;
    char *text = read_whole_file(corpus, &n);
    if (!text)
        fail_msg("cannot read %s", corpus);
    const char *p = learn(text, n, vocab, dir, st);
    free(text);
    return p;
}

/* Our tokenizer.json's merges equal the reference list, in order. */
static void expect_merges(const char *json_path, const cJSON *want, const char *what) {
    cJSON *j = load_json(json_path);
    const cJSON *got = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "merges");
    int ng = cJSON_GetArraySize(got), nw = cJSON_GetArraySize(want);
    for (int i = 0; i < ng && i < nw; i++) {
        const char *g = cJSON_GetArrayItem(got, i)->valuestring, *w = cJSON_GetArrayItem(want, i)->valuestring;
        if (strcmp(g, w) != 0)
            fail_msg("%s: merge %d is '%s', Hugging Face's is '%s'", what, i, g, w);
    }
    if (ng != nw)
        fail_msg("%s: %d merges, Hugging Face learns %d", what, ng, nw);
    cJSON_Delete(j);
}

static void merges_match_hugging_face(void **state) {
    cJSON *ref = load_json(DATA "reference.json");
    const cJSON *c;
    int ran = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "merge_cases")) {
        const char *corpus = cJSON_GetObjectItem(c, "corpus")->valuestring;
        int vocab = cJSON_GetObjectItem(c, "vocab_size")->valueint;
        int n_vocab = cJSON_GetObjectItem(c, "n_vocab")->valueint;
        char path[4096], what[4200];
        char *dir = make_temp_dir();
        um_bpe_train_stats st;
        const char *json;
        double t0 = um_now();
        if (strcmp(corpus, "text") == 0) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            json = learn(text, strlen(text), vocab, dir, &st);
        } else {
            if (strncmp(corpus, "shared:", 7) == 0)
                snprintf(path, sizeof path, "%s/../%s", fixtures_dir(), corpus + 7);
            else
                snprintf(path, sizeof path, DATA "%s", corpus);
            if (!um_file_exists(path)) {
                printf("  (skipped %s: not found)\n", path);
                remove_tree(dir);
                free(dir);
                continue;
            }
            json = learn_file(path, vocab, dir, &st);
        }
        double secs = um_now() - t0;
        snprintf(what, sizeof what, "%s, vocab %d", corpus, vocab);
        expect_merges(json, cJSON_GetObjectItem(c, "merges"), what);
        assert_int_equal(st.n_vocab, n_vocab);
        /* seconds, not minutes: the 2 MiB case takes well under one */
        if (secs > 30)
            fail_msg("%s took %.1f s", what, secs);
        remove_tree(dir);
        free(dir);
        ran++;
    }
    assert_true(ran >= 4);
    cJSON_Delete(ref);
}

static void expect_round_trip(um_tokenizer *t, const char *s, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0, bn = 0;
    char *back = NULL;
    um_error err = {0};
    if (um_tokenizer_encode(t, s, len, true, &ids, &n, &err) != UM_OK ||
        um_tokenizer_decode(t, ids, n, false, &back, &bn, &err) != UM_OK)
        fail_msg("round trip of '%.40s': %s", s, err.msg);
    if (bn != len || memcmp(back, s, len) != 0)
        fail_msg("round trip of %zu bytes '%.40s' gives %zu bytes '%.40s'", len, s, bn, back);
    free(ids);
    free(back);
}

/* Hugging Face encodes with our tokenizer.json exactly as our loader does. */
static void encodings_match_hugging_face(void **state) {
    cJSON *ref = load_json(DATA "reference.json");
    char *dir = make_temp_dir();
    const char *json = learn_file(CORPUS, cJSON_GetObjectItem(ref, "encode_vocab_size")->valueint, dir, NULL);
    um_tokenizer *t = NULL;
    um_error err = {0};
    if (um_tokenizer_load(json, &t, &err) != UM_OK)
        fail_msg("%s: %s", json, err.msg);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "encodings")) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int nw;
        int32_t *want = json_int_array(cJSON_GetObjectItem(c, "ids"), &nw);
        int32_t *ids = NULL;
        size_t n = 0;
        if (um_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err) != UM_OK)
            fail_msg("encode: %s", err.msg);
        if (n != (size_t)nw)
            fail_msg("'%.60s': %zu ids, Hugging Face gives %d", text, n, nw);
        for (size_t i = 0; i < n; i++)
            if (ids[i] != want[i])
                fail_msg("'%.60s': id %zu is %d, Hugging Face's is %d", text, i, ids[i], want[i]);
        expect_round_trip(t, text, strlen(text));
        free(ids);
        free(want);
        cases++;
    }
    assert_true(cases >= 6);
    um_tokenizer_free(t);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(ref);
}

/* Bytes are ids 0..255 in GPT-2's order, specials last, and
 * tokenizer_config.json names EOS and the mask so the loader finds them. */
static void vocabulary_layout_and_specials(void **state) {
    char *dir = make_temp_dir();
    um_bpe_train_stats st;
    const char *json = learn_file(CORPUS, 600, dir, &st);
    um_tokenizer *t = NULL;
    um_error err = {0};
    if (um_tokenizer_load(json, &t, &err) != UM_OK)
        fail_msg("%s: %s", json, err.msg);
    assert_int_equal(um_tokenizer_n_vocab(t), 600);
    assert_string_equal(um_tokenizer_token_text(t, 0), "!");    /* GPT-2's id 0 */
    assert_string_equal(um_tokenizer_token_text(t, 188), "Ā");  /* byte 0, GPT-2's id 188 */
    assert_string_equal(um_tokenizer_token_text(t, 220), "Ġ");  /* the space */
    assert_string_equal(um_tokenizer_token_text(t, 598), "<|endoftext|>");
    assert_string_equal(um_tokenizer_token_text(t, 599), "<|mdm_mask|>");
    assert_true(um_tokenizer_is_special(t, 598) && um_tokenizer_is_special(t, 599));
    assert_false(um_tokenizer_is_special(t, 597));
    um_tokenizer_specials sp;
    um_tokenizer_get_specials(t, &sp);
    assert_int_equal(sp.eos, 598);
    assert_int_equal(sp.pad, 598);
    assert_int_equal(sp.mask, 599);
    assert_int_equal(sp.bos, -1);
    /* "<|endoftext|>" in text is the special token, never learned pieces */
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(um_tokenizer_encode(t, "<|endoftext|>", 13, true, &ids, &n, &err), UM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 598);
    free(ids);
    um_tokenizer_free(t);
    remove_tree(dir);
    free(dir);
}

/* decode(encode(s)) == s on the corpus, other scripts and invalid UTF-8, with
 * a tokenizer learned from text that itself holds invalid UTF-8. */
static void round_trips(void **state) {
    static const char odd[] = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82 bad \xff\xfe \x80\x80 trunc \xe6\x97"
                              " \xc3 nul \0 in it \xed\xa0\x80 surrogate \xf4\x90\x80\x80 overlong \xc0\xaf";
    size_t n_corpus;
    char *corpus = read_whole_file(CORPUS, &n_corpus);
    assert_non_null(corpus);
    /* a corpus with the odd bytes mixed in, many times so they get merged */
    size_t len = n_corpus + 50 * sizeof odd;
    char *mixed = malloc(len);
    memcpy(mixed, corpus, n_corpus);
    for (int i = 0; i < 50; i++)
        memcpy(mixed + n_corpus + i * sizeof odd, odd, sizeof odd);
    for (int pass = 0; pass < 2; pass++) {
        char *dir = make_temp_dir();
        const char *json = pass ? learn(mixed, len, 700, dir, NULL) : learn(corpus, n_corpus, 600, dir, NULL);
        um_tokenizer *t = NULL;
        um_error err = {0};
        if (um_tokenizer_load(json, &t, &err) != UM_OK)
            fail_msg("%s: %s", json, err.msg);
        expect_round_trip(t, corpus, n_corpus);
        expect_round_trip(t, odd, sizeof odd);
        expect_round_trip(t, mixed, len);
        for (int b = 0; b < 256; b++) {
            char one = (char)b;
            expect_round_trip(t, &one, 1);
        }
        um_tokenizer_free(t);
        remove_tree(dir);
        free(dir);
    }
    free(mixed);
    free(corpus);
}

/* The command end to end: learn, then `tokenize` with the result gives
 * Hugging Face's ids. */
static void command_line(void **state) {
    cJSON *ref = load_json(DATA "reference.json");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "encodings"), 0);
    char *dir = make_temp_dir();
    cmd_result r = run_unmask("train-tokenizer -o %s/new/tokenizer.json --vocab-size 600 %s", dir, CORPUS);
    if (r.status != 0)
        fail_msg("train-tokenizer: %s", r.err);
    assert_non_null(strstr(r.err, "600 tokens"));
    assert_non_null(strstr(r.err, "<|mdm_mask|> = 599"));
    cmd_result_free(&r);
    r = run_unmask("tokenize -m %s/new -p '%s' --ids", dir,
                   cJSON_GetObjectItem(first, "text")->valuestring);
    assert_int_equal(r.status, 0);
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(first, "ids"));
    /* ours prints "[1, 2]", cJSON "[1,2]": compare without spaces */
    char got[8192];
    size_t k = 0;
    for (const char *p = r.out; *p && k + 1 < sizeof got; p++)
        if (*p != ' ' && *p != '\n')
            got[k++] = *p;
    got[k] = 0;
    assert_string_equal(got, want);
    free(want);
    cmd_result_free(&r);

    /* own specials and separator: a blank line separates, "<s>" is EOS */
    r = run_unmask("train-tokenizer -q -o %s/t2.json --vocab-size 300 --special '<s>' --special '<|mask|>' "
                   "--separator '\\n\\n' %s",
                   dir, CORPUS);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    char p[4200];
    snprintf(p, sizeof p, "%s/t2.json", dir);
    um_tokenizer *t = NULL;
    um_error err = {0};
    if (um_tokenizer_load(p, &t, &err) != UM_OK)
        fail_msg("%s: %s", p, err.msg);
    um_tokenizer_specials sp;
    um_tokenizer_get_specials(t, &sp);
    assert_int_equal(sp.eos, 298);
    assert_int_equal(sp.mask, 299);
    um_tokenizer_free(t);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(ref);
}

static void expect_failure(int status, const char *needle, const char *fmt, const char *a1, const char *a2) {
    cmd_result r = run_unmask(fmt, a1, a2);
    if (r.status != status || !strstr(r.err, needle))
        fail_msg("'%s' (%s): exit %d, stderr '%s'; wanted exit %d naming '%s'", fmt, a1, r.status, r.err, status,
                 needle);
    cmd_result_free(&r);
}

static void bad_input(void **state) {
    char *dir = make_temp_dir();
    char empty[4200], seps[4200], sub[4200];
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(seps, sizeof seps, "%s/seps.txt", dir);
    snprintf(sub, sizeof sub, "%s/empty.txt/dir/tokenizer.json", dir); /* under a file: even root fails */
    write_file(empty, "", 0);
    write_file(seps, "<|endoftext|><|endoftext|><|mdm_mask|>", 38);

    expect_failure(2, "below 256 bytes + 2 special tokens = 258",
                   "train-tokenizer -o %s/t.json --vocab-size 257 %s", dir, CORPUS);
    expect_failure(2, "need -o", "train-tokenizer --vocab-size 300 %s%s", CORPUS, "");
    expect_failure(2, "need -o", "train-tokenizer -o %s/t.json --vocab-size 300%s", dir, "");
    expect_failure(2, "given twice", "train-tokenizer -o %s/t.json --vocab-size 300 --special x --special x %s",
                   dir, CORPUS);
    expect_failure(2, "unknown argument", "train-tokenizer -o %s/t.json --vocab-size 300 --bogus %s", dir, CORPUS);
    expect_failure(1, "missing.txt", "train-tokenizer -o %s/t.json --vocab-size 300 %s/missing.txt", dir, dir);
    expect_failure(1, "no text", "train-tokenizer -o %s/t.json --vocab-size 300 %s", dir, empty);
    expect_failure(1, "no text", "train-tokenizer -o %s/t.json --vocab-size 300 %s", dir, seps);
    expect_failure(1, "cannot write", "train-tokenizer -o %s --vocab-size 300 %s", sub, CORPUS);
    expect_failure(1, "cannot write", "train-tokenizer -o %s --vocab-size 300 %s", dir, CORPUS);
    assert_false(um_file_exists(sub));

    /* the library says the same */
    um_bpe_train_opts o = {.vocab_size = 100};
    um_bpe_trainer *t = NULL;
    um_error err = {0};
    assert_int_equal(um_bpe_trainer_new(&o, &t, &err), UM_ERR_ARG);
    assert_null(t);
    static const char *const one_byte[] = {"!"};
    o = (um_bpe_train_opts){.vocab_size = 300, .specials = one_byte, .n_specials = 1};
    assert_int_equal(um_bpe_trainer_new(&o, &t, &err), UM_OK);
    assert_int_equal(um_bpe_trainer_feed(t, "hello hello", 11, &err), UM_OK);
    assert_int_equal(um_bpe_trainer_learn(t, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "single byte"));
    um_bpe_trainer_free(t);
    remove_tree(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(merges_match_hugging_face),
    cmocka_unit_test(encodings_match_hugging_face),
    cmocka_unit_test(vocabulary_layout_and_specials),
    cmocka_unit_test(round_trips),
    cmocka_unit_test(command_line),
    cmocka_unit_test(bad_input),
};

const test_group bpe_train_group = {"bpe_train", tests, sizeof tests / sizeof *tests};
