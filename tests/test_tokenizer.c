/* The tokenizer against ground truth it did not produce: llama.cpp's test
 * vectors for its vocabulary GGUFs (ids from the Hugging Face tokenizers
 * library), Hugging Face vectors for the tiny LLaDA and GPT-2 tokenizer.json
 * files, the same ids from tokenizer.json and from llama.cpp-made GGUFs, exact
 * round trips; chat templates byte for byte against the published jinja
 * renderings; hostile input. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "testutil.h"
#include "tokenizer/internal.h" /* the split program, to check the pieces themselves */
#include "tokenizer/tokenizer.h"

#define VOCAB_DIR "tokenizers/llama.cpp-vocab"

static um_tokenizer *load_tok(const char *path) {
    um_error err = {0};
    um_tokenizer *t = NULL;
    um_status s = um_tokenizer_load(path, &t, &err);
    if (s != UM_OK)
        fail_msg("%s: %s", path, err.msg);
    return t;
}

static int32_t *encode(um_tokenizer *t, const char *s, size_t len, bool special, size_t *n) {
    um_error err = {0};
    int32_t *ids = NULL;
    if (um_tokenizer_encode(t, s, len, special, &ids, n, &err) != UM_OK)
        fail_msg("encode '%.60s': %s", s ? s : "(null)", err.msg);
    return ids;
}

/* decode(encode(s)) == s, byte for byte */
static void expect_round_trip(um_tokenizer *t, const char *s, size_t len, const int32_t *ids, size_t n,
                              const char *what) {
    um_error err = {0};
    char *back;
    size_t bn;
    if (um_tokenizer_decode(t, ids, n, false, &back, &bn, &err) != UM_OK)
        fail_msg("%s: decode: %s", what, err.msg);
    if (bn != len || memcmp(back, s, len) != 0)
        fail_msg("%s: round trip of '%.60s' gives '%.60s'", what, s, back);
    free(back);
}

static void expect_ids(const int32_t *got, size_t n, const int32_t *want, size_t nw, const char *what,
                       const char *text) {
    bool same = n == nw && (n == 0 || memcmp(got, want, n * sizeof *got) == 0);
    if (!same) {
        char g[2048] = "", w[2048] = "";
        for (size_t i = 0; i < n && strlen(g) < 2000; i++)
            snprintf(g + strlen(g), sizeof g - strlen(g), " %d", got[i]);
        for (size_t i = 0; i < nw && strlen(w) < 2000; i++)
            snprintf(w + strlen(w), sizeof w - strlen(w), " %d", want[i]);
        fail_msg("%s: '%.80s'\n  got: %s\n want: %s", what, text, g, w);
    }
}

/* ---- llama.cpp's .inp/.out vectors ---- */

typedef struct {
    char **text;
    size_t *len;
    char **out; /* the .out line */
    int n;
} vocab_cases;

/* .inp: strings separated by "\n__ggml_vocab_test__\n" (the file ends with
 * one); .out: one line of space-separated ids per string. */
static bool read_vocab_cases(const char *gguf, vocab_cases *vc) {
    char ip[4200], op[4200];
    snprintf(ip, sizeof ip, "%s.inp", gguf);
    snprintf(op, sizeof op, "%s.out", gguf);
    size_t ni, no;
    FILE *f = fopen(ip, "rb");
    if (!f)
        return false;
    fclose(f);
    char *inp = read_whole_file(ip, &ni), *out = read_whole_file(op, &no);
    memset(vc, 0, sizeof *vc);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    char *p = inp, *ol = out;
    while (p < inp + ni) {
        char *e = strstr(p, sep);
        assert_non_null(e); /* every string is followed by a separator */
        char *oe = strchr(ol, '\n');
        assert_non_null(oe);
        *oe = 0;
        vc->text = realloc(vc->text, (size_t)(vc->n + 1) * sizeof *vc->text);
        vc->len = realloc(vc->len, (size_t)(vc->n + 1) * sizeof *vc->len);
        vc->out = realloc(vc->out, (size_t)(vc->n + 1) * sizeof *vc->out);
        vc->len[vc->n] = (size_t)(e - p);
        vc->text[vc->n] = malloc(vc->len[vc->n] + 1);
        memcpy(vc->text[vc->n], p, vc->len[vc->n]);
        vc->text[vc->n][vc->len[vc->n]] = 0;
        vc->out[vc->n] = strdup(ol);
        vc->n++;
        ol = oe + 1;
        p = e + sl;
    }
    free(inp);
    free(out);
    return true;
}

static void free_vocab_cases(vocab_cases *vc) {
    for (int i = 0; i < vc->n; i++)
        free(vc->text[i]), free(vc->out[i]);
    free(vc->text), free(vc->len), free(vc->out);
}

static int32_t *parse_ids(const char *line, size_t *n) {
    int32_t *ids = malloc((strlen(line) / 2 + 1) * sizeof *ids);
    *n = 0;
    for (char *e; *line;) {
        long v = strtol(line, &e, 10);
        if (e == line)
            break;
        ids[(*n)++] = (int32_t)v;
        line = e;
    }
    return ids;
}

/* Every ggml-vocab-NAME.gguf in the folder that has .inp/.out vectors. */
static int vocab_names(char names[][64], int max) {
    DIR *d = opendir(fixture(VOCAB_DIR));
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < max;) {
        size_t len = strlen(e->d_name);
        const char *suffix = ".gguf.inp";
        if (strncmp(e->d_name, "ggml-vocab-", 11) != 0 || len <= 11 + strlen(suffix) ||
            strcmp(e->d_name + len - strlen(suffix), suffix) != 0)
            continue;
        snprintf(names[n], 64, "%.*s", (int)(len - 11 - strlen(suffix)), e->d_name + 11);
        char gguf[256];
        snprintf(gguf, sizeof gguf, VOCAB_DIR "/ggml-vocab-%s.gguf", names[n]);
        FILE *f = fopen(fixture(gguf), "rb");
        if (!f)
            continue; /* vectors kept without their vocabulary (llama-bpe, qwen2) */
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

static void llamacpp_vocab_vectors(void **state) {
    char names[32][64];
    int files = vocab_names(names, 32), strings = 0;
    assert_true(files >= 7); /* gpt-2, deepseek-coder, deepseek-llm, falcon, mpt, refact, starcoder */
    for (int v = 0; v < files; v++) {
        char rel[256];
        snprintf(rel, sizeof rel, VOCAB_DIR "/ggml-vocab-%s.gguf", names[v]);
        const char *path = fixture(rel);
        vocab_cases vc;
        if (!read_vocab_cases(path, &vc))
            fail_msg("%s.inp missing", path);
        um_tokenizer *t = load_tok(path); /* vocabulary-only GGUF: no tensors */
        assert_string_equal(um_tokenizer_pre_name(t), names[v]); /* each file's pre is named like it */
        assert_null(um_tokenizer_warning(t));
        for (int i = 0; i < vc.n; i++) {
            size_t n, nw;
            int32_t *ids = encode(t, vc.text[i], vc.len[i], false, &n);
            int32_t *want = parse_ids(vc.out[i], &nw);
            expect_ids(ids, n, want, nw, names[v], vc.text[i]);
            expect_round_trip(t, vc.text[i], vc.len[i], ids, n, names[v]);
            free(ids);
            free(want);
        }
        assert_true(vc.n >= 40);
        strings += vc.n;
        free_vocab_cases(&vc);
        um_tokenizer_free(t);
    }
    print_message("llama.cpp vocab vectors: %d files, %d strings\n", files, strings);
}

/* ---- Hugging Face vectors (jsonl: {"text", "ids"}) ---- */

typedef struct {
    char **text;
    int32_t **ids;
    int *n_ids;
    int n;
} hf_cases;

static void read_hf_cases(const char *path, hf_cases *hc) {
    size_t n;
    char *data = read_whole_file(path, &n);
    memset(hc, 0, sizeof *hc);
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        hc->text = realloc(hc->text, (size_t)(hc->n + 1) * sizeof *hc->text);
        hc->ids = realloc(hc->ids, (size_t)(hc->n + 1) * sizeof *hc->ids);
        hc->n_ids = realloc(hc->n_ids, (size_t)(hc->n + 1) * sizeof *hc->n_ids);
        hc->text[hc->n] = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "text")));
        hc->ids[hc->n] = json_int_array(cJSON_GetObjectItem(j, "ids"), &hc->n_ids[hc->n]);
        hc->n++;
        cJSON_Delete(j);
    }
    free(data);
}

static void free_hf_cases(hf_cases *hc) {
    for (int i = 0; i < hc->n; i++)
        free(hc->text[i]), free(hc->ids[i]);
    free(hc->text), free(hc->ids), free(hc->n_ids);
}

static int check_hf_vectors(const char *tokenizer, const char *vectors) {
    um_tokenizer *t = load_tok(fixture(tokenizer));
    hf_cases hc;
    read_hf_cases(fixture(vectors), &hc);
    for (int i = 0; i < hc.n; i++) {
        size_t n;
        /* the vectors match special tokens written in the text */
        int32_t *ids = encode(t, hc.text[i], strlen(hc.text[i]), true, &n);
        expect_ids(ids, n, hc.ids[i], (size_t)hc.n_ids[i], vectors, hc.text[i]);
        expect_round_trip(t, hc.text[i], strlen(hc.text[i]), ids, n, vectors);
        free(ids);
    }
    int count = hc.n;
    free_hf_cases(&hc);
    um_tokenizer_free(t);
    return count;
}

static void hf_vectors_tiny_llada(void **state) {
    int n = check_hf_vectors("llada/tokenizer/tokenizer.json", "tokenizers/hf-vectors/tiny-llada.jsonl");
    assert_true(n >= 20);
    print_message("tiny-llada.jsonl: %d strings\n", n);
}

static void hf_vectors_gpt2(void **state) {
    int n = check_hf_vectors("tokenizers/gpt2-hf/tokenizer.json", "tokenizers/hf-vectors/gpt2.jsonl");
    assert_true(n >= 20);
    print_message("gpt2.jsonl: %d strings\n", n);
}

/* ---- tokenizer.json and GGUF agree ---- */

/* Every string of both vector sets, the gpt-2 .inp strings, and some
 * hostile ones. */
typedef struct {
    char **s;
    size_t *len;
    int n;
} string_set;

static void set_add(string_set *ss, const char *s, size_t len) {
    ss->s = realloc(ss->s, (size_t)(ss->n + 1) * sizeof *ss->s);
    ss->len = realloc(ss->len, (size_t)(ss->n + 1) * sizeof *ss->len);
    ss->s[ss->n] = malloc(len + 1);
    memcpy(ss->s[ss->n], s, len);
    ss->s[ss->n][len] = 0;
    ss->len[ss->n++] = len;
}

static const char HOSTILE[][48] = {"", "\xff\xfe", "caf\xc3", "\xc3\x28 \xa0\xa1 \xe2\x82", "\xf0\x9f\x98",
                                   "a\0b", "<|eot_id|><|eot_id", "<|mdm_mask|>x<|startoftext|>", "  \n\t\r\n  ",
                                   "\xed\xa0\x80 surrogate", "\xc0\xaf overlong"};

static void all_strings(string_set *ss) {
    memset(ss, 0, sizeof *ss);
    static const char *const sets[] = {"tokenizers/hf-vectors/tiny-llada.jsonl", "tokenizers/hf-vectors/gpt2.jsonl"};
    for (int k = 0; k < 2; k++) {
        hf_cases hc;
        read_hf_cases(fixture(sets[k]), &hc);
        for (int i = 0; i < hc.n; i++)
            set_add(ss, hc.text[i], strlen(hc.text[i]));
        free_hf_cases(&hc);
    }
    vocab_cases vc;
    assert_true(read_vocab_cases(fixture(VOCAB_DIR "/ggml-vocab-gpt-2.gguf"), &vc));
    for (int i = 0; i < vc.n; i++)
        set_add(ss, vc.text[i], vc.len[i]);
    free_vocab_cases(&vc);
    for (size_t i = 0; i < sizeof HOSTILE / sizeof *HOSTILE; i++)
        set_add(ss, HOSTILE[i], i == 5 ? 3 : strlen(HOSTILE[i]));
}

static void free_strings(string_set *ss) {
    for (int i = 0; i < ss->n; i++)
        free(ss->s[i]);
    free(ss->s);
    free(ss->len);
}

static void expect_same_tokenizer(um_tokenizer *a, um_tokenizer *b, const string_set *ss, const char *what) {
    assert_int_equal(um_tokenizer_n_vocab(a), um_tokenizer_n_vocab(b));
    for (int32_t id = 0; id < um_tokenizer_n_vocab(a); id++) {
        assert_string_equal(um_tokenizer_token_text(a, id), um_tokenizer_token_text(b, id));
        assert_int_equal(um_tokenizer_is_special(a, id), um_tokenizer_is_special(b, id));
    }
    for (int i = 0; i < ss->n; i++) {
        for (int special = 0; special < 2; special++) {
            size_t na, nb;
            int32_t *ia = encode(a, ss->s[i], ss->len[i], special, &na);
            int32_t *ib = encode(b, ss->s[i], ss->len[i], special, &nb);
            expect_ids(ib, nb, ia, na, what, ss->s[i]);
            expect_round_trip(a, ss->s[i], ss->len[i], ia, na, what);
            expect_round_trip(b, ss->s[i], ss->len[i], ib, nb, what);
            free(ia);
            free(ib);
        }
    }
}

static void llada_json_equals_gguf(void **state) {
    static const char *const ggufs[] = {"tiny-llada-f32", "tiny-llada-f16", "tiny-llada-q8_0",
                                        "tiny-llada-gqa-f32", "tiny-llada-gqa-f16", "tiny-llada-gqa-q8_0"};
    string_set ss;
    all_strings(&ss);
    um_tokenizer *js = load_tok(fixture("llada/tokenizer/tokenizer.json"));
    um_tokenizer_specials sj, sg;
    um_tokenizer_get_specials(js, &sj);
    for (size_t g = 0; g < sizeof ggufs / sizeof *ggufs; g++) {
        char rel[256];
        snprintf(rel, sizeof rel, "llada/gguf/%s.gguf", ggufs[g]);
        um_tokenizer *gt = load_tok(fixture(rel));
        assert_string_equal(um_tokenizer_source(gt), "gguf");
        expect_same_tokenizer(js, gt, &ss, ggufs[g]);
        um_tokenizer_get_specials(gt, &sg);
        assert_int_equal(sg.bos, sj.bos);
        assert_int_equal(sg.eos, sj.eos);
        assert_int_equal(sg.eot, sj.eot);
        assert_int_equal(sg.mask, sj.mask);
        assert_int_equal(sg.pad, sj.pad);
        assert_true(sg.add_bos); /* LLaDA's converter sets it */
        assert_string_equal(um_tokenizer_chat_template(gt), um_tokenizer_chat_template(js));
        um_tokenizer_free(gt);
    }
    print_message("tiny LLaDA: tokenizer.json == 6 GGUFs on %d strings\n", ss.n);
    um_tokenizer_free(js);
    free_strings(&ss);
}

static void gpt2_json_equals_gguf(void **state) {
    string_set ss;
    all_strings(&ss);
    um_tokenizer *js = load_tok(fixture("tokenizers/gpt2-hf/tokenizer.json"));
    um_tokenizer *gt = load_tok(fixture(VOCAB_DIR "/ggml-vocab-gpt-2.gguf"));
    expect_same_tokenizer(js, gt, &ss, "gpt-2");
    um_tokenizer_specials a, b;
    um_tokenizer_get_specials(js, &a);
    um_tokenizer_get_specials(gt, &b);
    assert_int_equal(a.bos, 50256);
    assert_int_equal(a.eos, 50256);
    assert_int_equal(b.bos, 50256);
    assert_int_equal(b.eos, 50256);
    um_tokenizer_free(js);
    um_tokenizer_free(gt);
    free_strings(&ss);
}

/* ---- the vocabulary and special tokens ---- */

static void llada_specials_and_lookups(void **state) {
    um_tokenizer *t = load_tok(fixture("llada/tokenizer"));
    um_tokenizer_specials s;
    um_tokenizer_get_specials(t, &s);
    assert_int_equal(s.mask, 500);
    assert_int_equal(s.eos, 501);
    assert_int_equal(s.eot, 502);
    assert_int_equal(s.bos, 503);
    assert_int_equal(s.pad, 501);
    assert_false(s.add_bos); /* tokenizer_config.json says so */
    assert_int_equal(um_tokenizer_n_vocab(t), 512);
    assert_string_equal(um_tokenizer_token_text(t, 500), "<|mdm_mask|>");
    assert_int_equal(um_tokenizer_token_id(t, "<|eot_id|>", 10), 502);
    assert_int_equal(um_tokenizer_token_id(t, "no such token", 13), -1);
    assert_true(um_tokenizer_is_special(t, 504));
    assert_false(um_tokenizer_is_special(t, 65));
    assert_null(um_tokenizer_token_text(t, 512));
    assert_null(um_tokenizer_token_text(t, -1));
    /* the space byte is spelled Ġ and decodes to a space */
    int32_t sp = um_tokenizer_token_id(t, "\xc4\xa0", 2);
    assert_true(sp >= 0);
    size_t len;
    const char *bytes = um_tokenizer_token_bytes(t, sp, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(bytes, " ", 1);
    assert_string_equal(um_tokenizer_pre_name(t), "ByteLevel");
    assert_non_null(um_tokenizer_chat_template(t));

    /* special tokens in text: matched only with parse_special */
    const char *text = "a<|eot_id|>b";
    size_t n1, n2;
    int32_t *with = encode(t, text, strlen(text), true, &n1);
    int32_t *without = encode(t, text, strlen(text), false, &n2);
    bool has502 = false;
    for (size_t i = 0; i < n1; i++)
        has502 |= with[i] == 502;
    assert_true(has502);
    for (size_t i = 0; i < n2; i++)
        assert_true(without[i] < 500);
    expect_round_trip(t, text, strlen(text), without, n2, "parse_special off");
    /* skip_special leaves them out of the text */
    char *out;
    size_t olen;
    um_error err;
    assert_int_equal(um_tokenizer_decode(t, with, n1, true, &out, &olen, &err), UM_OK);
    assert_string_equal(out, "ab");
    free(out);
    free(with);
    free(without);
    um_tokenizer_free(t);
}

/* ---- hostile input ---- */

static void hostile_text(void **state) {
    um_tokenizer *t = load_tok(fixture("llada/tokenizer/tokenizer.json"));
    /* the empty string */
    size_t n;
    int32_t *ids = encode(t, "", 0, true, &n);
    assert_int_equal(n, 0);
    free(ids);
    ids = encode(t, NULL, 0, false, &n);
    assert_int_equal(n, 0);
    char *out;
    size_t olen;
    um_error err;
    assert_int_equal(um_tokenizer_decode(t, NULL, 0, false, &out, &olen, &err), UM_OK);
    assert_int_equal(olen, 0);
    assert_string_equal(out, "");
    free(out);
    /* invalid UTF-8 encodes through the byte tokens and comes back exactly */
    for (size_t i = 0; i < sizeof HOSTILE / sizeof *HOSTILE; i++) {
        size_t len = i == 5 ? 3 : strlen(HOSTILE[i]);
        ids = encode(t, HOSTILE[i], len, true, &n);
        expect_round_trip(t, HOSTILE[i], len, ids, n, "hostile");
        free(ids);
    }
    /* every single byte, and all 256 in a row */
    char all[256];
    for (int b = 0; b < 256; b++) {
        all[b] = (char)b;
        ids = encode(t, all + b, 1, false, &n);
        assert_int_equal(n, 1);
        expect_round_trip(t, all + b, 1, ids, 1, "byte");
        free(ids);
    }
    ids = encode(t, all, 256, false, &n);
    expect_round_trip(t, all, 256, ids, n, "all bytes");
    free(ids);
    /* long words: 64 KiB of one letter, of spaces, of invalid bytes */
    size_t big = 64 * 1024;
    char *s = malloc(big);
    const char fills[] = {'a', ' ', '\xff', '\n'};
    for (size_t f = 0; f < sizeof fills; f++) {
        memset(s, fills[f], big);
        ids = encode(t, s, big, false, &n);
        assert_true(n > 0 && n <= big);
        expect_round_trip(t, s, big, ids, n, "long run");
        free(ids);
    }
    free(s);
    /* ids outside the vocabulary */
    const int32_t bad[][2] = {{65, 512}, {-1, 65}, {INT32_MAX, 0}, {INT32_MIN, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out = (char *)1;
        assert_int_equal(um_tokenizer_decode(t, bad[i], 2, false, &out, &olen, &err), UM_ERR_ARG);
        assert_null(out);
        assert_non_null(strstr(err.msg, "outside the vocabulary"));
    }
    /* ids nothing uses decode to nothing */
    um_tokenizer_free(t);
}

static um_status load_json_text(const char *dir, const char *json, um_tokenizer **t, um_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, json, strlen(json));
    return um_tokenizer_load(path, t, err);
}

static void bad_tokenizer_json(void **state) {
    static const struct {
        const char *json;
        um_status want;
        const char *msg;
    } cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}", UM_ERR_FORMAT, "invalid JSON"},
        {"[1, 2]", UM_ERR_FORMAT, "expected a JSON object"},
        {"{\"version\": \"1.0\"}", UM_ERR_FORMAT, "missing \"model\""},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", UM_ERR_UNSUPPORTED, "model type 'Unigram'"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", UM_ERR_UNSUPPORTED, "'WordPiece'"},
        {"{\"model\": {\"type\": \"BPE\", \"merges\": []}}", UM_ERR_FORMAT, "without a \"vocab\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", UM_ERR_FORMAT, "without a \"merges\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", UM_ERR_FORMAT, "no valid id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1e12}, \"merges\": []}}", UM_ERR_FORMAT, "no valid id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, \"merges\": []}}", UM_ERR_FORMAT,
         "too large"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", UM_ERR_FORMAT, "empty vocabulary"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         UM_ERR_FORMAT, "not two tokens"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}", UM_ERR_FORMAT,
         "neither"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"byte_fallback\": true}}",
         UM_ERR_UNSUPPORTED, "byte_fallback"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}",
         UM_ERR_UNSUPPORTED, "dropout"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"normalizer\": {\"type\": \"Lowercase\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
         UM_ERR_UNSUPPORTED, "normalizer 'Lowercase'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Metaspace\"}}",
         UM_ERR_UNSUPPORTED, "pre_tokenizer type 'Metaspace'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}}}",
         UM_ERR_UNSUPPORTED, "does not compile"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"}}",
         UM_ERR_UNSUPPORTED, "split behavior 'Sideways'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", UM_ERR_UNSUPPORTED,
         "not a byte-level BPE"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"added_tokens\": [{\"id\": \"x\", \"content\": \"<s>\"}]}",
         UM_ERR_FORMAT, "added token"},
    };
    char *dir = make_temp_dir();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        um_error err = {0};
        um_tokenizer *t = (um_tokenizer *)1;
        um_status s = load_json_text(dir, cases[i].json, &t, &err);
        if (s != cases[i].want || !strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: status %s, message '%s'; want %s with '%s'", i, um_status_name(s), err.msg,
                     um_status_name(cases[i].want), cases[i].msg);
        assert_null(t);
        assert_non_null(strstr(err.msg, "tokenizer.json")); /* names the file */
    }
    /* a missing file or directory */
    um_error err;
    um_tokenizer *t;
    char path[4200];
    snprintf(path, sizeof path, "%s/nothing-here", dir);
    assert_int_equal(um_tokenizer_load(path, &t, &err), UM_ERR_IO);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    remove(path);
    assert_int_equal(um_tokenizer_load(dir, &t, &err), UM_ERR_IO); /* a directory without tokenizer.json */
    assert_non_null(strstr(err.msg, "tokenizer.json"));
    remove_tree(dir);
    free(dir);
}

/* A GGUF holding only tokenizer metadata, built by hand. */
static um_status gguf_tokenizer(const char *path, const char *model, const char *pre, bool with_tokens,
                                bool bad_merge, um_tokenizer **t, um_error *err) {
    um_gguf_writer *w = um_gguf_writer_new();
    const char *tokens[] = {"a", "b", "ab", "<s>"};
    const int32_t types[] = {1, 1, 1, 3};
    const char *merges[] = {"a b", "zz a"}; /* the second names a token nobody has */
    assert_int_equal(um_gguf_writer_add_str(w, "tokenizer.ggml.model", model, err), UM_OK);
    if (pre)
        assert_int_equal(um_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, err), UM_OK);
    if (with_tokens) {
        assert_int_equal(um_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tokens, NULL, 4, err), UM_OK);
        assert_int_equal(um_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", UM_GGUF_INT32, types, 4, err),
                         UM_OK);
    }
    assert_int_equal(um_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", merges, NULL, bad_merge ? 2 : 1, err),
                     UM_OK);
    assert_int_equal(um_gguf_writer_write(w, path, err), UM_OK);
    um_gguf_writer_free(w);
    return um_tokenizer_load(path, t, err);
}

static void gguf_tokenizer_metadata(void **state) {
    char *dir = make_temp_dir();
    char path[4200];
    snprintf(path, sizeof path, "%s/vocab.gguf", dir);
    um_error err = {0};
    um_tokenizer *t;
    assert_int_equal(gguf_tokenizer(path, "llama", "default", true, false, &t, &err), UM_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'llama'"));
    assert_int_equal(gguf_tokenizer(path, "gpt2", "gpt-2", false, false, &t, &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.tokens"));
    /* an unknown pre name: llama.cpp's default regexes, with a warning */
    assert_int_equal(gguf_tokenizer(path, "gpt2", "no-such-pre", true, false, &t, &err), UM_OK);
    assert_string_equal(um_tokenizer_pre_name(t), "default");
    assert_non_null(strstr(um_tokenizer_warning(t), "no-such-pre"));
    size_t n;
    int32_t *ids = encode(t, "ab<s>a", 6, true, &n);
    const int32_t want[] = {2, 3, 0};
    expect_ids(ids, n, want, 3, "hand-made gguf", "ab<s>a");
    free(ids);
    um_tokenizer_free(t);
    /* no pre name at all: the default, silently */
    assert_int_equal(gguf_tokenizer(path, "gpt2", NULL, true, false, &t, &err), UM_OK);
    assert_string_equal(um_tokenizer_pre_name(t), "default");
    assert_null(um_tokenizer_warning(t));
    um_tokenizer_free(t);
    /* a merge naming a missing token is ignored, with a warning */
    assert_int_equal(gguf_tokenizer(path, "gpt2", "gpt-2", true, true, &t, &err), UM_OK);
    assert_non_null(strstr(um_tokenizer_warning(t), "1 merges"));
    /* a byte that has no token is an error, not a crash */
    assert_int_equal(um_tokenizer_encode(t, "c", 1, false, &ids, &n, &err), UM_ERR_ARG);
    um_tokenizer_free(t);
    /* a GGUF without a tokenizer */
    um_gguf_writer *w = um_gguf_writer_new();
    assert_int_equal(um_gguf_writer_add_str(w, "general.architecture", "llada", &err), UM_OK);
    assert_int_equal(um_gguf_writer_write(w, path, &err), UM_OK);
    um_gguf_writer_free(w);
    assert_int_equal(um_tokenizer_load(path, &t, &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "no tokenizer"));
    remove_tree(dir);
    free(dir);
}

/* ---- pre-tokenizer features on a hand-made tokenizer.json ---- */

/* The 256 byte tokens (GPT-2 spelling) at ids 0..255, then extra tokens. */
static char *byte_vocab_json(const char *extra_vocab, const char *merges, const char *pre, const char *normalizer,
                             const char *added) {
    size_t cap = 65536;
    char *s = malloc(cap);
    size_t n = (size_t)snprintf(s, cap, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        unsigned cp = printable ? (unsigned)b : 0x100 + (unsigned)k++;
        char ch[8];
        if (cp == '"' || cp == '\\')
            snprintf(ch, sizeof ch, "\\%c", cp);
        else if (cp < 0x80)
            snprintf(ch, sizeof ch, "%c", cp);
        else
            snprintf(ch, sizeof ch, "%c%c", 0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
        n += (size_t)snprintf(s + n, cap - n, "%s\"%s\": %d", b ? ", " : "", ch, b);
    }
    n += (size_t)snprintf(s + n, cap - n, "%s%s}, \"merges\": [%s]}, \"pre_tokenizer\": %s, \"normalizer\": %s",
                          *extra_vocab ? ", " : "", extra_vocab, merges, pre, normalizer);
    if (added)
        n += (size_t)snprintf(s + n, cap - n, ", \"added_tokens\": [%s]", added);
    snprintf(s + n, cap - n, ", \"decoder\": {\"type\": \"ByteLevel\"}}");
    return s;
}

static void split_behaviors(void **state) {
    /* merges a- and -b exist, so which side of a piece the '-' lands on shows
     * in the ids: 256 = "a-", 257 = "-b" */
    static const struct {
        const char *behavior;
        const char *text;
        int32_t want[6];
        size_t n;
    } cases[] = {
        {"Isolated", "a-b", {'a', '-', 'b'}, 3},
        {"Removed", "a-b", {'a', 'b'}, 2},
        {"MergedWithPrevious", "a-b", {256, 'b'}, 2},
        {"MergedWithNext", "a-b", {'a', 257}, 2},
        {"Contiguous", "a--b", {'a', 258, 'b'}, 3}, /* "--" is one piece and merges */
    };
    char *dir = make_temp_dir();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char pre[512];
        snprintf(pre, sizeof pre,
                 "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": "
                 "\"-\"}, \"behavior\": \"%s\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
                 cases[i].behavior);
        char *json = byte_vocab_json("\"a-\": 256, \"-b\": 257, \"--\": 258", "\"a -\", \"- b\", \"- -\"", pre,
                                     "null", NULL);
        um_tokenizer *t;
        um_error err;
        assert_int_equal(load_json_text(dir, json, &t, &err), UM_OK);
        assert_string_equal(um_tokenizer_pre_name(t), "Sequence[Split,ByteLevel]");
        size_t n;
        int32_t *ids = encode(t, cases[i].text, strlen(cases[i].text), false, &n);
        /* a byte's id is the byte's value in this vocabulary */
        expect_ids(ids, n, cases[i].want, cases[i].n, cases[i].behavior, cases[i].text);
        free(ids);
        um_tokenizer_free(t);
        free(json);
    }
    remove_tree(dir);
    free(dir);
}

static void nfc_digits_and_added_token_options(void **state) {
    char *dir = make_temp_dir();
    const char *pre = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": "
                      "true}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false}]}";
    const char *added = "{\"id\": 300, \"content\": \"<m>\", \"special\": true, \"lstrip\": true, \"rstrip\": true},"
                        "{\"id\": 301, \"content\": \"word\", \"special\": false, \"single_word\": true}";
    /* 256: "é" in GPT-2 spelling (bytes c3 a9 -> Ã ©) */
    char *json = byte_vocab_json("\"\xc3\x83\xc2\xa9\": 256, \"12\": 257", "\"\xc3\x83 \xc2\xa9\", \"1 2\"", pre,
                                 "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}]}", added);
    um_tokenizer *t;
    um_error err;
    assert_int_equal(load_json_text(dir, json, &t, &err), UM_OK);
    size_t n;
    /* NFC composes e + U+0301 into é, which then merges */
    int32_t *ids = encode(t, "e\xcc\x81", 3, false, &n);
    const int32_t e_acute[] = {256};
    expect_ids(ids, n, e_acute, 1, "NFC", "e\\u0301");
    free(ids);
    /* invalid UTF-8 is left alone by NFC and still round-trips */
    ids = encode(t, "e\xcc\x81\xff", 4, false, &n);
    expect_round_trip(t, "e\xcc\x81\xff", 4, ids, n, "NFC invalid");
    free(ids);
    /* Digits: each digit alone, so the "1 2" merge never applies */
    ids = encode(t, "12", 2, false, &n);
    const int32_t digits[] = {'1', '2'};
    expect_ids(ids, n, digits, 2, "digits", "12");
    free(ids);
    /* lstrip/rstrip: the special token takes the spaces around it */
    ids = encode(t, "a  <m>  b", 9, true, &n);
    const int32_t strip[] = {'a', 300, 'b'};
    expect_ids(ids, n, strip, 3, "lstrip/rstrip", "a  <m>  b");
    free(ids);
    /* single_word: only a whole word matches */
    ids = encode(t, "word words", 10, false, &n);
    assert_int_equal(ids[0], 301);
    for (size_t i = 1; i < n; i++)
        assert_int_not_equal(ids[i], 301);
    free(ids);
    um_tokenizer_free(t);
    free(json);
    remove_tree(dir);
    free(dir);
}

static void merge_cache_is_consistent(void **state) {
    um_tokenizer *t = load_tok(fixture("tokenizers/gpt2-hf/tokenizer.json"));
    size_t n;
    char *text = read_whole_file(fixture("llada/gguf/llamacpp_runs.txt"), &n);
    size_t n1, n2;
    int32_t *a = encode(t, text, n, false, &n1); /* cold */
    int32_t *b = encode(t, text, n, false, &n2); /* every word from the cache */
    expect_ids(b, n2, a, n1, "cache", "llamacpp_runs.txt");
    expect_round_trip(t, text, n, b, n2, "cache");
    /* words one at a time give the same ids as the whole text (no state
     * leaks from one call into the next) */
    um_tokenizer *fresh = load_tok(fixture("tokenizers/gpt2-hf/tokenizer.json"));
    int32_t *c = encode(fresh, text, n, false, &n2);
    expect_ids(c, n2, a, n1, "fresh", "llamacpp_runs.txt");
    free(a), free(b), free(c), free(text);
    um_tokenizer_free(t);
    um_tokenizer_free(fresh);
}

/* ---- chat templates ---- */

static const char *render(const um_chat_format *f, const um_chat_message *m, size_t n, bool gen) {
    static char *last;
    free(last);
    size_t len;
    um_error err;
    if (um_chat_render(f, m, n, gen, &last, &len, &err) != UM_OK)
        fail_msg("render: %s", err.msg);
    assert_int_equal(strlen(last), len);
    return last;
}

#define SYS "Be brief."
#define U1 "What is free software?"
#define A1 "Software that respects users' freedom."
#define U2 "Name one license."
#define A2 "The GNU GPL."
#define U3 "Thanks!"

static const um_chat_message ONE[] = {{"user", U1}};
static const um_chat_message ONE_SYS[] = {{"system", SYS}, {"user", U1}};
static const um_chat_message TWO[] = {{"user", U1}, {"assistant", A1}, {"user", U2}};
static const um_chat_message TWO_SYS[] = {{"system", SYS}, {"user", U1}, {"assistant", A1}, {"user", U2}};
static const um_chat_message THREE[] = {{"user", U1}, {"assistant", A1}, {"user", U2}, {"assistant", A2},
                                        {"user", U3}};
static const um_chat_message THREE_SYS[] = {{"system", SYS}, {"user", U1},      {"assistant", A1},
                                            {"user", U2},    {"assistant", A2}, {"user", U3}};

static um_chat_format select_fmt(const um_tokenizer *t, const char *name) {
    um_chat_format f;
    um_error err;
    char warn[512];
    if (um_chat_select(t, name, &f, warn, sizeof warn, &err) != UM_OK)
        fail_msg("select %s: %s", name ? name : "(model)", err.msg);
    assert_string_equal(warn, "");
    return f;
}

#define LH(r) "<|start_header_id|>" r "<|end_header_id|>\n\n"
#define LE "<|eot_id|>"

static void chat_llada(void **state) {
    um_tokenizer *t = load_tok(fixture("llada/tokenizer"));
    um_chat_format f = select_fmt(t, NULL); /* recognised from tokenizer_config.json */
    assert_int_equal(f.family, UM_CHAT_LLADA);
    assert_string_equal(f.name, "llada");
    /* the fixtures README's rendering */
    assert_string_equal(render(&f, ONE, 1, true),
                        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is free software?<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    assert_string_equal(render(&f, ONE, 1, false), "<|startoftext|>" LH("user") U1 LE);
    assert_string_equal(render(&f, ONE_SYS, 2, true),
                        "<|startoftext|>" LH("system") SYS LE LH("user") U1 LE LH("assistant"));
    assert_string_equal(render(&f, TWO, 3, true),
                        "<|startoftext|>" LH("user") U1 LE LH("assistant") A1 LE LH("user") U2 LE LH("assistant"));
    assert_string_equal(render(&f, TWO_SYS, 4, true), "<|startoftext|>" LH("system") SYS LE LH("user") U1 LE
                                                          LH("assistant") A1 LE LH("user") U2 LE LH("assistant"));
    assert_string_equal(render(&f, THREE, 5, true), "<|startoftext|>" LH("user") U1 LE LH("assistant") A1 LE
                                                        LH("user") U2 LE LH("assistant") A2 LE LH("user") U3 LE
                                                            LH("assistant"));
    assert_string_equal(render(&f, THREE_SYS, 6, true),
                        "<|startoftext|>" LH("system") SYS LE LH("user") U1 LE LH("assistant") A1 LE LH("user") U2 LE
                            LH("assistant") A2 LE LH("user") U3 LE LH("assistant"));
    /* | trim: Python's whitespace, ASCII and Unicode, at both ends only */
    const um_chat_message padded[] = {{"user", " \t\n\xc2\xa0 a  b \xe3\x80\x80\r\n"}};
    assert_string_equal(render(&f, padded, 1, false), "<|startoftext|>" LH("user") "a  b" LE);
    const um_chat_message blank[] = {{"user", "   "}};
    assert_string_equal(render(&f, blank, 1, false), "<|startoftext|>" LH("user") LE);
    /* the rendering tokenizes to the special tokens */
    const char *text = render(&f, ONE, 1, true);
    size_t n;
    int32_t *ids = encode(t, text, strlen(text), true, &n);
    assert_int_equal(ids[0], 503);
    assert_int_equal(ids[1], 504);
    int specials = 0;
    for (size_t i = 0; i < n; i++)
        specials += ids[i] >= 500;
    assert_int_equal(specials, 6); /* bos, 2 x (start, end header), eot */
    expect_round_trip(t, text, strlen(text), ids, n, "chat");
    free(ids);
    um_tokenizer_free(t);
}

#define LS "<role>SYSTEM</role>"
#define LT "detailed thinking off<|role_end|>"
#define LU(x) "<role>HUMAN</role>" x "<|role_end|>"
#define LA(x) "<role>ASSISTANT</role>" x "<|role_end|>"

/* LLaDA-MoE's template (the fixture README's, which its tokenizer_config.json holds): turns only. */
static void chat_llada_moe(void **state) {
    um_tokenizer *t = load_tok(fixture("llada-moe/tiny-llada-moe/hf-bf16"));
    um_chat_format f = select_fmt(t, NULL); /* recognised from tokenizer_config.json */
    assert_int_equal(f.family, UM_CHAT_LLADA_MOE);
    assert_string_equal(f.name, "llada-moe");
    assert_string_equal(render(&f, ONE, 1, true), LU(U1) "<role>ASSISTANT</role>");
    assert_string_equal(render(&f, THREE_SYS, 6, false), LS SYS "<|role_end|>" LU(U1) LA(A1) LU(U2) LA(A2) LU(U3));
    const um_chat_message shouting[] = {{"User", U1}, {"tool", "r"}};
    assert_string_equal(render(&f, shouting, 2, false), LU(U1) "<role>TOOL</role>r<|role_end|>");
    /* the README's ids for one user turn */
    static const int32_t want[] = {504, 39, 52, 44, 32, 45, 505, 54, 71, 282, 330, 286, 415, 492, 30, 502,
                                   504, 32, 50, 50, 40, 50, 51, 32, 45, 51, 505};
    const char *text = render(&f, ONE, 1, true);
    size_t n;
    int32_t *ids = encode(t, text, strlen(text), true, &n);
    assert_int_equal(n, sizeof want / sizeof *want);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    um_tokenizer_free(t);
}

static void chat_ling(void **state) {
    static const char *const names[] = {"llada2"};
    for (int k = 0; k < 1; k++) {
        um_chat_format f = select_fmt(NULL, names[k]);
        assert_int_equal(f.family, UM_CHAT_LING);
        assert_string_equal(render(&f, ONE, 1, true), LS LT LU(U1) "<role>ASSISTANT</role>");
        assert_string_equal(render(&f, ONE, 1, false), LS LT LU(U1));
        assert_string_equal(render(&f, ONE_SYS, 2, true), LS SYS "\n" LT LU(U1) "<role>ASSISTANT</role>");
        assert_string_equal(render(&f, TWO, 3, true), LS LT LU(U1) LA(A1) LU(U2) "<role>ASSISTANT</role>");
        assert_string_equal(render(&f, TWO_SYS, 4, true),
                            LS SYS "\n" LT LU(U1) LA(A1) LU(U2) "<role>ASSISTANT</role>");
        assert_string_equal(render(&f, THREE, 5, true),
                            LS LT LU(U1) LA(A1) LU(U2) LA(A2) LU(U3) "<role>ASSISTANT</role>");
        assert_string_equal(render(&f, THREE_SYS, 6, true),
                            LS SYS "\n" LT LU(U1) LA(A1) LU(U2) LA(A2) LU(U3) "<role>ASSISTANT</role>");
    }
    um_chat_format f = select_fmt(NULL, "llada2");
    /* reasoning is dropped before the last user turn and kept after it */
    const um_chat_message think[] = {{"user", U1},
                                     {"assistant", "<think>\nfirst\n</think>\n\n" A1},
                                     {"user", U2},
                                     {"assistant", "\n<think>\nsecond\n\n</think>\n" A2}};
    assert_string_equal(render(&f, think, 4, false),
                        LS LT LU(U1) LA(A1) LU(U2) "<role>ASSISTANT</role>\n<think>\nsecond\n</think>\n\n" A2
                                                   "<|role_end|>");
    /* a later system message, tool results */
    const um_chat_message tools[] = {{"user", U1}, {"system", SYS}, {"tool", "r1"}, {"tool", "r2"}};
    assert_string_equal(render(&f, tools, 4, true),
                        LS LT LU(U1) LS SYS "<|role_end|><role>OBSERVATION</role>\n<tool_response>\nr1\n"
                                            "</tool_response>\n<tool_response>\nr2\n</tool_response><|role_end|>"
                                            "<role>ASSISTANT</role>");
}

#define CS(x) "<|im_start|>system\n" x "<|im_end|>\n"
#define CU(x) "<|im_start|>user\n" x "<|im_end|>\n"
#define CA(x) "<|im_start|>assistant\n" x "<|im_end|>\n"
#define CG "<|im_start|>assistant\n"
#define DREAM_SYS "You are a helpful assistant."

static void chat_chatml(void **state) {
    um_chat_format f = select_fmt(NULL, "dream");
    assert_int_equal(f.family, UM_CHAT_CHATML);
    assert_string_equal(render(&f, ONE, 1, true), CS(DREAM_SYS) CU(U1) CG);
    assert_string_equal(render(&f, ONE, 1, false), CS(DREAM_SYS) CU(U1));
    assert_string_equal(render(&f, ONE_SYS, 2, true), CS(SYS) CU(U1) CG);
    assert_string_equal(render(&f, TWO, 3, true), CS(DREAM_SYS) CU(U1) CA(A1) CU(U2) CG);
    assert_string_equal(render(&f, TWO_SYS, 4, true), CS(SYS) CU(U1) CA(A1) CU(U2) CG);
    assert_string_equal(render(&f, THREE, 5, true), CS(DREAM_SYS) CU(U1) CA(A1) CU(U2) CA(A2) CU(U3) CG);
    assert_string_equal(render(&f, THREE_SYS, 6, true), CS(SYS) CU(U1) CA(A1) CU(U2) CA(A2) CU(U3) CG);
    assert_string_equal(render(&f, NULL, 0, true), CG);
}

/* A copy of the tiny LLaDA tokenizer with another chat template. */
static um_tokenizer *with_template(const char *dir, const char *config_template, const char *jinja_file) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    copy_file(fixture("llada/tokenizer/tokenizer.json"), path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    remove(path);
    if (config_template) {
        cJSON *cfg = cJSON_CreateObject();
        cJSON_AddStringToObject(cfg, "chat_template", config_template);
        cJSON_AddStringToObject(cfg, "bos_token", "<|startoftext|>");
        char *s = cJSON_Print(cfg);
        write_file(path, s, strlen(s));
        free(s);
        cJSON_Delete(cfg);
    }
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    remove(path);
    if (jinja_file)
        write_file(path, jinja_file, strlen(jinja_file));
    return load_tok(dir);
}

static void chat_selection(void **state) {
    char *dir = make_temp_dir();
    um_chat_format f;
    um_error err;
    char warn[512];
    /* Dream's template, from chat_template.jinja */
    um_tokenizer *t = with_template(
        dir, NULL,
        "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\n"
        "You are a helpful assistant.<|im_end|>\n' }}{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|im_start|>assistant\n' }}{% endif %}");
    f = select_fmt(t, NULL);
    assert_int_equal(f.family, UM_CHAT_CHATML);
    assert_string_equal(render(&f, ONE, 1, true), CS(DREAM_SYS) CU(U1) CG);
    um_tokenizer_free(t);
    /* a Qwen2.5-style template's own default system prompt (jinja \n escapes) */
    t = with_template(dir,
                      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
                      "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are "
                      "Qwen.<|im_end|>\\n' }}{%- endif %}",
                      NULL);
    f = select_fmt(t, NULL);
    assert_string_equal(f.default_system, "You are Qwen.");
    /* the override beats the template */
    f = select_fmt(t, "llada");
    assert_int_equal(f.family, UM_CHAT_LLADA);
    um_tokenizer_free(t);
    /* a ChatML template without a default system turn adds none */
    t = with_template(dir, "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content']}}{% endfor %}",
                      NULL);
    f = select_fmt(t, NULL);
    assert_null(f.default_system);
    assert_string_equal(render(&f, ONE, 1, true), CU(U1) CG);
    um_tokenizer_free(t);
    /* the Ling-2.0 template */
    t = with_template(dir,
                      "{{- '<role>SYSTEM</role>' }}{{- 'detailed thinking ' + thinking_option + '<|role_end|>' }}"
                      "{%- if message.role == \"user\" %}{{- '<role>HUMAN</role>' + message.content + "
                      "'<|role_end|>' }}",
                      NULL);
    f = select_fmt(t, NULL);
    assert_int_equal(f.family, UM_CHAT_LING);
    um_tokenizer_free(t);
    /* an unknown template: a warning and the fallback by vocabulary */
    t = with_template(dir, "{{ messages | tojson }}", NULL);
    assert_int_equal(um_chat_select(t, NULL, &f, warn, sizeof warn, &err), UM_OK);
    assert_int_equal(f.family, UM_CHAT_LLADA);
    assert_non_null(strstr(warn, "not one unmask recognises"));
    assert_non_null(strstr(warn, "<|start_header_id|>"));
    assert_non_null(strstr(warn, "--chat-template"));
    um_tokenizer_free(t);
    /* no template at all */
    t = with_template(dir, NULL, NULL);
    assert_null(um_tokenizer_chat_template(t));
    assert_int_equal(um_chat_select(t, NULL, &f, warn, sizeof warn, &err), UM_OK);
    assert_non_null(strstr(warn, "no chat template"));
    um_tokenizer_free(t);
    assert_int_equal(um_chat_select(NULL, NULL, &f, warn, sizeof warn, &err), UM_OK);
    assert_int_equal(f.family, UM_CHAT_LLADA);
    assert_string_equal(f.bos, "<|startoftext|>");
    /* unknown override names */
    assert_int_equal(um_chat_select(NULL, "vicuna", &f, warn, sizeof warn, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "vicuna"));
    assert_non_null(strstr(err.msg, "llada2"));
    /* the GGUF's template is recognised too */
    t = load_tok(fixture("llada/gguf/tiny-llada-q8_0.gguf"));
    f = select_fmt(t, NULL);
    assert_int_equal(f.family, UM_CHAT_LLADA);
    assert_string_equal(f.bos, "<|startoftext|>");
    um_tokenizer_free(t);
    /* messages must have a role and content */
    const um_chat_message bad[] = {{"user", NULL}};
    char *out;
    size_t len;
    assert_int_equal(um_chat_render(&f, bad, 1, true, &out, &len, &err), UM_ERR_ARG);
    remove_tree(dir);
    free(dir);
}

/* ---- vocab.json + merges.txt, and Qwen2's split ---- */

#define DREAM_TOKENIZER "dream/tokenizer/tokenizer.json"

static void write_json(const char *dir, const char *name, const cJSON *j) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = cJSON_PrintUnformatted(j);
    write_file(path, s, strlen(s));
    free(s);
}

static cJSON *load_json_file(const char *path) {
    size_t n;
    char *s = read_whole_file(path, &n);
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    assert_non_null(j);
    return j;
}

/* A merge of tokenizer.json: "a b" or ["a", "b"], as merges.txt writes it. */
static void merge_line(const cJSON *m, char *line, size_t size) {
    if (cJSON_IsString(m))
        snprintf(line, size, "%s\n", m->valuestring);
    else
        snprintf(line, size, "%s %s\n", cJSON_GetArrayItem(m, 0)->valuestring, cJSON_GetArrayItem(m, 1)->valuestring);
}

/* Writes into dir the slow tokenizer's files made from a tokenizer.json:
 * vocab.json (model.vocab), merges.txt (model.merges after the "#version"
 * header transformers writes) and tokenizer_config.json (the fixture's
 * beside it, its added_tokens_decoder rebuilt from added_tokens and its
 * tokenizer_class set to cls). */
static void write_slow_tokenizer(const char *dir, const char *tokenizer_json, const char *cls) {
    cJSON *tj = load_json_file(fixture(tokenizer_json));
    const cJSON *model = cJSON_GetObjectItem(tj, "model");
    write_json(dir, "vocab.json", cJSON_GetObjectItem(model, "vocab"));
    size_t cap = 1 << 20, n = 0;
    char *merges = malloc(cap);
    n += (size_t)snprintf(merges, cap, "#version: 0.2\n");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(model, "merges")) {
        merge_line(m, merges + n, cap - n);
        n += strlen(merges + n);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    write_file(path, merges, n);
    free(merges);

    char cfg_rel[256];
    snprintf(cfg_rel, sizeof cfg_rel, "%s", tokenizer_json);
    strcpy(strrchr(cfg_rel, '/') + 1, "tokenizer_config.json");
    cJSON *cfg = load_json_file(fixture(cfg_rel));
    cJSON *dec = cJSON_CreateObject();
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(tj, "added_tokens")) {
        char id[32];
        snprintf(id, sizeof id, "%d", cJSON_GetObjectItem(a, "id")->valueint);
        cJSON *e = cJSON_Duplicate(a, true);
        cJSON_DeleteItemFromObject(e, "id");
        cJSON_AddItemToObject(dec, id, e);
    }
    cJSON_ReplaceItemInObject(cfg, "added_tokens_decoder", dec);
    cJSON_DeleteItemFromObject(cfg, "tokenizer_class");
    cJSON_AddStringToObject(cfg, "tokenizer_class", cls);
    write_json(dir, "tokenizer_config.json", cfg);
    cJSON_Delete(cfg);
    cJSON_Delete(tj);
}

/* Texts for Dream's tokenizer: ASCII, accents and other scripts, digits,
 * contractions in both cases, CR/LF runs, whitespace, its special tokens.
 * All are NFC already (Qwen2's normalizer leaves them alone). */
static const char *const DREAM_TEXTS[] = {
    "Hello, world! This is a test of the tokenizer.",
    "caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m \xe4\xb8\xad\xe6\x96\x87 \xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5"
    "\xd1\x82 \xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9 \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "12345 + 678 = 13023; pi is 3.14159, 1,000,000 and \xd9\xa3\xd9\xa4 and \xc2\xbd",
    "It's, I'm, they're, we've, you'll, he'd; IT'S, I'M, THEY'RE, WE'VE, YOU'LL, HE'D, 'S",
    "line one\nline two\r\n\r\n\tindented\n\n\n   \n",
    "  hello   world  \t\t x  ",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|><|mask|><|beginoftext|>x<|fim_prefix|>def f():<|fim_suffix|><|fim_middle|>",
    "<|im_start|", /* a special token cut short */
    "def f(x):\n    return x ** 2  # square\n",
};

static void dream_strings(string_set *ss) {
    all_strings(ss);
    for (size_t i = 0; i < sizeof DREAM_TEXTS / sizeof *DREAM_TEXTS; i++)
        set_add(ss, DREAM_TEXTS[i], strlen(DREAM_TEXTS[i]));
}

/* a and b give the same ids for every string, with and without special tokens */
static void expect_same_ids(um_tokenizer *a, um_tokenizer *b, const string_set *ss, const char *what) {
    for (int i = 0; i < ss->n; i++)
        for (int special = 0; special < 2; special++) {
            size_t na, nb;
            int32_t *ia = encode(a, ss->s[i], ss->len[i], special, &na);
            int32_t *ib = encode(b, ss->s[i], ss->len[i], special, &nb);
            expect_ids(ib, nb, ia, na, what, ss->s[i]);
            free(ia);
            free(ib);
        }
}

static void expect_same_specials(um_tokenizer *a, um_tokenizer *b) {
    um_tokenizer_specials x, y;
    um_tokenizer_get_specials(a, &x);
    um_tokenizer_get_specials(b, &y);
    assert_int_equal(x.bos, y.bos);
    assert_int_equal(x.eos, y.eos);
    assert_int_equal(x.eot, y.eot);
    assert_int_equal(x.mask, y.mask);
    assert_int_equal(x.pad, y.pad);
    assert_int_equal(x.add_bos, y.add_bos);
}

/* Dream's fixture tokenizer (GPT-2's split, as its tokenizer.json says) from
 * vocab.json + merges.txt made from that tokenizer.json, with
 * tokenizer_class GPT2Tokenizer so that both split alike: the same
 * vocabulary, specials, template and ids; and, for the texts without
 * special tokens, the ids Hugging Face's tokenizers gave for the tiny LLaDA
 * tokenizer, whose ids 0-499 and merges are Dream's fixture's. */
static void vocab_merges_equals_tokenizer_json(void **state) {
    char *dir = make_temp_dir();
    write_slow_tokenizer(dir, DREAM_TOKENIZER, "GPT2Tokenizer");
    um_tokenizer *js = load_tok(fixture(DREAM_TOKENIZER)), *vt = load_tok(dir);
    assert_string_equal(um_tokenizer_source(vt), "vocab.json");
    assert_string_equal(um_tokenizer_pre_name(vt), "gpt-2");
    assert_null(um_tokenizer_warning(vt));
    string_set ss;
    dream_strings(&ss);
    expect_same_tokenizer(js, vt, &ss, "vocab.json");
    expect_same_specials(js, vt);
    assert_int_equal(um_tokenizer_token_id(vt, "<|mask|>", 8), 511);
    assert_true(um_tokenizer_is_special(vt, 501));
    assert_string_equal(um_tokenizer_chat_template(vt), um_tokenizer_chat_template(js));

    hf_cases hc;
    read_hf_cases(fixture("tokenizers/hf-vectors/tiny-llada.jsonl"), &hc);
    int checked = 0;
    for (int i = 0; i < hc.n; i++) {
        bool plain = !strstr(hc.text[i], "<|");
        for (int k = 0; k < hc.n_ids[i]; k++)
            plain &= hc.ids[i][k] < 500;
        if (!plain)
            continue;
        size_t n;
        int32_t *ids = encode(vt, hc.text[i], strlen(hc.text[i]), true, &n);
        expect_ids(ids, n, hc.ids[i], (size_t)hc.n_ids[i], "tiny-llada.jsonl through vocab.json", hc.text[i]);
        free(ids);
        checked++;
    }
    free_hf_cases(&hc);
    assert_true(checked >= 20);
    print_message("vocab.json + merges.txt == tokenizer.json on %d strings; %d Hugging Face vectors\n", ss.n,
                  checked);
    um_tokenizer_free(vt);

    /* a Dream model directory with only these files runs: `run --chat`
     * prompts with the ids the fixture's README gives for its rendering by
     * transformers, and `info` names the tokenizer */
    static const char *const model_files[] = {"config.json", "model.safetensors"};
    char path[4200];
    for (int i = 0; i < 2; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "dream/tiny-dream/hf-bf16/%s", model_files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, model_files[i]);
        copy_file(fixture(rel), path);
    }
    static const int32_t chat_ids[] = {501, 82,  88,  334, 68,  76,  198, 381, 469, 259, 390, 68,  75,  79,  69, 84,
                                       75,  391, 82,  268, 83,  402, 13,  502, 198, 501, 84,  82,  260, 198, 54, 71,
                                       282, 330, 286, 415, 492, 30,  502, 198, 501, 449, 82,  268, 83,  402, 198};
    cJSON *o = run_unmask_json("run -m %s -p 'What is free software?' --chat -n 4 --steps 4 --json", dir);
    int n_prompt = (int)(sizeof chat_ids / sizeof *chat_ids);
    assert_int_equal(cJSON_GetObjectItem(o, "prompt_length")->valueint, n_prompt);
    for (int i = 0; i < n_prompt; i++)
        assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tokens"), i)->valueint, chat_ids[i]);
    cJSON_Delete(o);
    o = run_unmask_json("info %s --json", dir);
    const cJSON *tok = cJSON_GetObjectItem(o, "tokenizer");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tok, "source")), "vocab.json + merges.txt");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(tok, "pre")), "gpt-2");
    assert_int_equal(cJSON_GetObjectItem(tok, "vocab")->valueint, 512);
    cJSON_Delete(o);

    /* the vocab.json file itself may be named, and tokenizer.json wins over it */
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    vt = load_tok(path);
    assert_string_equal(um_tokenizer_source(vt), "vocab.json");
    um_tokenizer_free(vt);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    copy_file(fixture(DREAM_TOKENIZER), path);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    write_file(path, "not a merge\n", 12);
    vt = load_tok(dir);
    assert_string_equal(um_tokenizer_source(vt), "tokenizer.json");
    um_tokenizer_free(vt);
    um_tokenizer_free(js);
    free_strings(&ss);
    remove_tree(dir);
    free(dir);
}

/* Expected pieces of Qwen2's and GPT-2's split regexes, from Python's regex
 * module (2026.11.19), as Hugging Face's tokenizers and transformers' slow
 * Qwen2Tokenizer apply them (every match isolated):
 *   python3 -c 'import regex, json; print(json.dumps(regex.findall(RX, TEXT)))'
 * with RX = TOK_QWEN2_REGEX (src/tokenizer/pretokenize.c) or Hugging Face's
 * GPT-2 pattern  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
typedef struct {
    const char *text;
    const char *qwen2[14], *gpt2[14]; /* NULL-terminated */
} split_case;

static const split_case SPLITS[] = {
    {"12345", {"1", "2", "3", "4", "5"}, {"12345"}},
    {"  hello", {" ", " hello"}, {" ", " hello"}},
    {"\thello -world", {"\thello", " -", "world"}, {"\t", "hello", " -", "world"}},
    {"'S", {"'S"}, {"'", "S"}},
    {"He'S HERE'LL", {"He", "'S", " HERE", "'LL"}, {"He", "'", "S", " HERE", "'", "LL"}},
    {"abc\r\n\r\ndef", {"abc", "\r\n\r\n", "def"}, {"abc", "\r\n\r", "\n", "def"}},
    {"x = 3.14159;\n\n  y",
     {"x", " =", " ", "3", ".", "1", "4", "1", "5", "9", ";\n\n", " ", " y"},
     {"x", " =", " 3", ".", "14159", ";", "\n\n ", " y"}},
    {"caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xd9\xa3\xd9\xa4 \xc2\xbd",
     {"caf\xc3\xa9", " \xe4\xb8\xad\xe6\x96\x87", " ", "\xd9\xa3", "\xd9\xa4", " ", "\xc2\xbd"},
     {"caf\xc3\xa9", " \xe4\xb8\xad\xe6\x96\x87", " \xd9\xa3\xd9\xa4", " \xc2\xbd"}},
    {"$100,000!!\n", {"$", "1", "0", "0", ",", "0", "0", "0", "!!\n"}, {"$", "100", ",", "000", "!!", "\n"}},
    {"  \n\t x", {"  \n", "\t", " x"}, {"  \n\t", " x"}},
};

/* t's pre-tokenizer splits each SPLITS text into the expected pieces. */
static void expect_splits(const um_tokenizer *t, bool qwen2, const char *what) {
    split_scratch sc = {0};
    for (size_t i = 0; i < sizeof SPLITS / sizeof *SPLITS; i++) {
        const char *text = SPLITS[i].text;
        const char *const *want = qwen2 ? SPLITS[i].qwen2 : SPLITS[i].gpt2;
        tok_span *sp;
        size_t n, k = 0;
        um_error err;
        assert_int_equal(split_run(&t->split, text, strlen(text), &sc, &sp, &n, &err), UM_OK);
        for (; k < n && want[k]; k++)
            if (sp[k].end - sp[k].start != strlen(want[k]) || memcmp(text + sp[k].start, want[k], strlen(want[k])))
                break;
        if (k != n || want[k])
            fail_msg("%s: '%s' splits differently at piece %zu ('%.*s', want '%s')", what, text, k,
                     k < n ? (int)(sp[k].end - sp[k].start) : 0, k < n ? text + sp[k].start : "",
                     want[k] ? want[k] : "(end)");
    }
    split_scratch_free(&sc);
}

/* Dream's tokenizer as a GGUF vocabulary: tokens, types, merges, pre name. */
static void write_vocab_gguf(const char *path, const char *tokenizer_json, const char *pre) {
    cJSON *tj = load_json_file(fixture(tokenizer_json));
    const cJSON *model = cJSON_GetObjectItem(tj, "model"), *e;
    int n = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(tj, "added_tokens")) n++;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(model, "vocab")) n++;
    const char **tokens = calloc((size_t)n, sizeof *tokens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(model, "vocab")) tokens[e->valueint] = e->string, types[e->valueint] = 1;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(tj, "added_tokens")) {
        int id = cJSON_GetObjectItem(e, "id")->valueint;
        tokens[id] = cJSON_GetObjectItem(e, "content")->valuestring;
        types[id] = cJSON_IsTrue(cJSON_GetObjectItem(e, "special")) ? 3 : 4; /* CONTROL, USER_DEFINED */
    }
    int n_merges = cJSON_GetArraySize(cJSON_GetObjectItem(model, "merges")), k = 0;
    char **merges = calloc((size_t)n_merges, sizeof *merges);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(model, "merges")) {
        char line[256];
        merge_line(e, line, sizeof line);
        line[strlen(line) - 1] = 0;
        merges[k++] = strdup(line);
    }
    um_gguf_writer *w = um_gguf_writer_new();
    um_error err;
    assert_int_equal(um_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_str_arr(w, "tokenizer.ggml.tokens", tokens, NULL, (size_t)n, &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", UM_GGUF_INT32, types, (size_t)n, &err),
                     UM_OK);
    assert_int_equal(um_gguf_writer_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL,
                                                (size_t)n_merges, &err),
                     UM_OK);
    assert_int_equal(um_gguf_writer_write(w, path, &err), UM_OK);
    um_gguf_writer_free(w);
    for (int i = 0; i < n_merges; i++)
        free(merges[i]);
    free(merges), free(tokens), free(types);
    cJSON_Delete(tj);
}

/* Qwen2's split reached three ways: vocab.json + merges.txt with
 * tokenizer_class Qwen2Tokenizer (and DreamTokenizer), a tokenizer.json with
 * the pre-tokenizer transformers' Qwen2Converter writes, and a GGUF with
 * tokenizer.ggml.pre "qwen2". Each splits as Python's regex module does, all
 * give the same ids, and those differ from GPT-2's split where the regexes
 * do. */
static void qwen2_split_everywhere(void **state) {
    char *dir = make_temp_dir(), *qdir = make_temp_dir(), *jdir = make_temp_dir();
    write_slow_tokenizer(dir, DREAM_TOKENIZER, "GPT2Tokenizer");
    write_slow_tokenizer(qdir, DREAM_TOKENIZER, "Qwen2Tokenizer");
    /* tokenizer.json as Qwen2Converter makes it: NFC, Split(Qwen2's regex), ByteLevel without a regex */
    cJSON *tj = load_json_file(fixture(DREAM_TOKENIZER));
    cJSON *pre = cJSON_Parse("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": "
                             "{\"Regex\": \"\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": "
                             "\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": "
                             "false}]}");
    cJSON *pat = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(pre, "pretokenizers"), 0), "pattern");
    cJSON_ReplaceItemInObject(pat, "Regex", cJSON_CreateString(TOK_QWEN2_REGEX));
    cJSON_ReplaceItemInObject(tj, "pre_tokenizer", pre);
    cJSON_ReplaceItemInObject(tj, "normalizer", cJSON_Parse("{\"type\": \"NFC\"}"));
    write_json(jdir, "tokenizer.json", tj);
    cJSON_Delete(tj);
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", jdir);
    copy_file(fixture("dream/tokenizer/tokenizer_config.json"), path);
    snprintf(path, sizeof path, "%s/dream-vocab.gguf", jdir);
    write_vocab_gguf(path, DREAM_TOKENIZER, "qwen2");

    um_tokenizer *gpt2 = load_tok(dir), *vq = load_tok(qdir), *jq = load_tok(jdir), *gq = load_tok(path);
    assert_string_equal(um_tokenizer_pre_name(vq), "qwen2");
    assert_string_equal(um_tokenizer_pre_name(jq), "Sequence[Split(qwen2),ByteLevel]");
    assert_string_equal(um_tokenizer_pre_name(gq), "qwen2");
    expect_splits(vq, true, "vocab.json Qwen2Tokenizer");
    expect_splits(jq, true, "tokenizer.json Split(qwen2)");
    expect_splits(gq, true, "GGUF qwen2");
    expect_splits(gpt2, false, "vocab.json GPT2Tokenizer");
    um_tokenizer *js = load_tok(fixture(DREAM_TOKENIZER));
    expect_splits(js, false, "tokenizer.json ByteLevel");
    um_tokenizer_free(js);

    string_set ss;
    dream_strings(&ss);
    expect_same_ids(vq, jq, &ss, "qwen2: vocab.json vs tokenizer.json");
    expect_same_ids(vq, gq, &ss, "qwen2: vocab.json vs GGUF");
    expect_same_specials(vq, jq);
    for (size_t i = 0; i < sizeof DREAM_TEXTS / sizeof *DREAM_TEXTS; i++) {
        size_t n;
        int32_t *ids = encode(vq, DREAM_TEXTS[i], strlen(DREAM_TEXTS[i]), true, &n);
        expect_round_trip(vq, DREAM_TEXTS[i], strlen(DREAM_TEXTS[i]), ids, n, "qwen2");
        free(ids);
    }
    /* the split shows in the ids: GPT-2's " 12345" is one word that merges
     * "Ġ1"; Qwen2's is " ", then each digit alone */
    size_t ng, nq;
    int32_t *ig = encode(gpt2, " 12345", 6, false, &ng), *iq = encode(vq, " 12345", 6, false, &nq);
    int32_t g1 = um_tokenizer_token_id(gpt2, "\xc4\xa0" "1", 3), sp = um_tokenizer_token_id(gpt2, "\xc4\xa0", 2);
    const int32_t want_g[] = {g1, '2' - 33, '3' - 33, '4' - 33, '5' - 33};
    const int32_t want_q[] = {sp, '1' - 33, '2' - 33, '3' - 33, '4' - 33, '5' - 33};
    assert_true(g1 >= 0 && sp >= 0 && um_tokenizer_token_id(gpt2, "1", 1) == '1' - 33); /* GPT-2's byte order */
    expect_ids(ig, ng, want_g, 5, "gpt-2 digits", " 12345");
    expect_ids(iq, nq, want_q, 6, "qwen2 digits", " 12345");
    free(ig), free(iq);
    /* NFC: e + U+0301 is é before the split, as Qwen2Tokenizer normalizes */
    ig = encode(vq, "caf\xc3\xa9", 5, false, &ng);
    iq = encode(vq, "cafe\xcc\x81", 6, false, &nq);
    expect_ids(iq, nq, ig, ng, "qwen2 NFC", "cafe\\u0301");
    free(ig), free(iq);
    um_tokenizer_free(vq);
    /* Dream's own class name selects the same split */
    cJSON *cfg = load_json_file(fixture("dream/tokenizer/tokenizer_config.json"));
    cJSON_ReplaceItemInObject(cfg, "tokenizer_class", cJSON_CreateString("DreamTokenizer"));
    write_json(qdir, "tokenizer_config.json", cfg);
    cJSON_Delete(cfg);
    vq = load_tok(qdir);
    assert_string_equal(um_tokenizer_pre_name(vq), "qwen2");
    expect_same_ids(vq, jq, &ss, "qwen2: DreamTokenizer vs tokenizer.json");
    print_message("qwen2 split: %zu texts as Python's regex splits them; vocab.json == tokenizer.json == GGUF on %d "
                  "strings\n",
                  sizeof SPLITS / sizeof *SPLITS, ss.n);
    free_strings(&ss);
    um_tokenizer_free(vq), um_tokenizer_free(jq), um_tokenizer_free(gq), um_tokenizer_free(gpt2);
    remove_tree(dir), remove_tree(qdir), remove_tree(jdir);
    free(dir), free(qdir), free(jdir);
}

/* Malformed slow-tokenizer files: each an error naming the file at fault
 * (and the line, in merges.txt), never a crash or a half-loaded tokenizer. */
static void bad_vocab_merges(void **state) {
    static const char *const V = "{\"a\": 0, \"b\": 1, \"ab\": 2}";
    static const char *const M = "#version: 0.2\na b\n";
    static const struct {
        const char *vocab, *merges, *config; /* NULL: the file is missing */
        um_status want;
        const char *file, *msg;
    } cases[] = {
        {"[\"a\", \"b\"]", M, NULL, UM_ERR_FORMAT, "vocab.json", "expected a JSON object"},
        {"{\"a\": 0,", M, NULL, UM_ERR_FORMAT, "vocab.json", "invalid JSON"},
        {"{\"a\": 0, \"b\": 1.5}", M, NULL, UM_ERR_FORMAT, "vocab.json", "token 'b' has no valid id"},
        {"{\"a\": \"0\"}", M, NULL, UM_ERR_FORMAT, "vocab.json", "token 'a' has no valid id"},
        {"{\"a\": -1}", M, NULL, UM_ERR_FORMAT, "vocab.json", "token 'a' has no valid id"},
        {"{\"a\": 1e9}", M, NULL, UM_ERR_FORMAT, "vocab.json", "token 'a' has no valid id"},
        {"{\"a\": null}", M, NULL, UM_ERR_FORMAT, "vocab.json", "token 'a' has no valid id"},
        {"{\"a\": 0, \"b\": 0}", M, NULL, UM_ERR_FORMAT, "vocab.json", "tokens 'a' and 'b' both have id 0"},
        {"{\"a\": 5000000}", M, NULL, UM_ERR_FORMAT, "vocab.json", "too sparse"},
        {"{}", M, NULL, UM_ERR_FORMAT, "vocab.json", "empty vocabulary"},
        {V, NULL, NULL, UM_ERR_IO, "merges.txt", "no such file"},
        {V, "#version: 0.2\na b\nab\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 3: 'ab' is not two tokens"},
        {V, "a b c\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 1: 'a b c' is not two tokens"},
        {V, "a  b\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 1: 'a  b' is not two tokens"},
        {V, " a\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 1: ' a' is not two tokens"},
        {V, "#version: 0.2\n\na b\nx b\n", NULL, UM_ERR_FORMAT, "merges.txt",
         "line 4: merge 'x b': its left token is not in"},
        {V, "a y\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 1: merge 'a y': its right token is not in"},
        {V, "a b\nb a\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 2: merge 'b a': the merged token is not in"},
        {V, "#version: 0.2\n#version: 0.2\n", NULL, UM_ERR_FORMAT, "merges.txt", "line 2"},
        {V, M, "{\"tokenizer_class\": \"LlamaTokenizer\"}", UM_ERR_UNSUPPORTED, "tokenizer_config.json",
         "tokenizer_class 'LlamaTokenizer'"},
        {V, M, "{\"tokenizer_class\": \"Qwen2Tokenizer\", \"add_prefix_space\": true}", UM_ERR_UNSUPPORTED,
         "tokenizer_config.json", "add_prefix_space"},
        {V, M, "{\"added_tokens_decoder\": []}", UM_ERR_FORMAT, "tokenizer_config.json", "not an object"},
        {V, M, "{\"added_tokens_decoder\": {\"x\": {\"content\": \"<s>\"}}}", UM_ERR_FORMAT,
         "tokenizer_config.json", "key 'x' is not an id"},
        {V, M, "{\"added_tokens_decoder\": {\"-3\": {\"content\": \"<s>\"}}}", UM_ERR_FORMAT,
         "tokenizer_config.json", "key '-3' is not an id"},
        {V, M, "{\"added_tokens_decoder\": {\"99999999\": {\"content\": \"<s>\"}}}", UM_ERR_FORMAT,
         "tokenizer_config.json", "key '99999999' is not an id"},
        {V, M, "{\"added_tokens_decoder\": {\"3\": {\"special\": true}}}", UM_ERR_FORMAT, "tokenizer_config.json",
         "entry 3 has no \"content\""},
        {V, M, "{\"added_tokens_decoder\": {\"1\": {\"content\": \"<s>\"}}}", UM_ERR_FORMAT,
         "tokenizer_config.json", "added token 1 '<s>' is 'b' in"},
        {V, M, "{\"added_tokens_decoder\": {\"3\": {\"content\": \"<s>\", \"special\": 1}}}", UM_ERR_FORMAT,
         "tokenizer_config.json", "special"},
        {V, M, "{\"tokenizer_class\": ", UM_ERR_FORMAT, "tokenizer_config.json", "invalid JSON"},
    };
    char *dir = make_temp_dir();
    static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *content[] = {cases[i].vocab, cases[i].merges, cases[i].config};
        for (int f = 0; f < 3; f++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, names[f]);
            remove(path);
            if (content[f])
                write_file(path, content[f], strlen(content[f]));
        }
        um_error err = {0};
        um_tokenizer *t = (um_tokenizer *)1;
        um_status s = um_tokenizer_load(dir, &t, &err);
        char named[4200];
        snprintf(named, sizeof named, "%s/%s", dir, cases[i].file);
        if (s != cases[i].want || !strstr(err.msg, cases[i].msg) || !strstr(err.msg, named))
            fail_msg("case %zu: status %s, message '%s'; want %s with '%s' naming %s", i, um_status_name(s), err.msg,
                     um_status_name(cases[i].want), cases[i].msg, cases[i].file);
        assert_null(t);
        assert_null(strchr(err.msg, '\n'));
    }
    /* through the command: one error line naming the file and line, exit 1 */
    const char *bad_files[] = {V, "#version: 0.2\na b\nab b c\n", "{}"};
    char path[4200];
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        write_file(path, bad_files[f], strlen(bad_files[f]));
    }
    cmd_result r = run_unmask("tokenize -m %s -p hello", dir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "unmask tokenize: error: "));
    assert_non_null(strstr(r.err, "merges.txt: line 3: 'ab b c' is not two tokens"));
    assert_true(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
    cmd_result_free(&r);
    /* what is fine: a CRLF merges.txt without a header, blank lines, an added
     * token restating its vocab.json entry (GPT-2's <|endoftext|>), holes */
    const char *ok_files[] = {"{\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 5}", "a b\r\n\r\n",
                              "{\"added_tokens_decoder\": {\"5\": {\"content\": \"<s>\", \"special\": true}}}"};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        write_file(path, ok_files[f], strlen(ok_files[f]));
    }
    um_tokenizer *t = load_tok(dir);
    assert_int_equal(um_tokenizer_n_vocab(t), 6);
    assert_true(um_tokenizer_is_special(t, 5));
    assert_string_equal(um_tokenizer_token_text(t, 3), "");
    size_t n;
    int32_t *ids = encode(t, "ab<s>ba", 7, true, &n);
    const int32_t want[] = {2, 5, 1, 0};
    expect_ids(ids, n, want, 4, "hand-made vocab.json", "ab<s>ba");
    free(ids);
    um_tokenizer_free(t);
    /* a directory with neither tokenizer.json nor vocab.json */
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        remove(path);
    }
    um_error err;
    assert_int_equal(um_tokenizer_load(dir, &t, &err), UM_ERR_IO);
    assert_non_null(strstr(err.msg, "vocab.json + merges.txt"));
    remove_tree(dir);
    free(dir);
}

/* ---- the fuzzer's inputs ---- */

/* fuzz/fuzz_tokenizer.c itself, its checks failing the test instead of
 * aborting: the seeds of fuzz/corpus/tokenizer and every input it once
 * broke the tokenizer with (fuzz/regressions/tok-*) run through it. */
#define FUZZ_CHECK(cond)                                           \
    do {                                                           \
        if (!(cond))                                               \
            fail_msg("fuzz_tokenizer.c: %s does not hold", #cond); \
    } while (0)
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "../fuzz/fuzz_tokenizer.c"

static void tokenizer_fuzz_inputs(void **state) {
    static const char *const dirs[] = {"fuzz/corpus/tokenizer", "fuzz/regressions"};
    int seen[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
        DIR *dp = opendir(dirs[d]);
        if (!dp)
            fail_msg("%s: cannot open (run the tests from the repository root)", dirs[d]);
        for (struct dirent *e; (e = readdir(dp)) != NULL;) {
            if (e->d_name[0] == '.' || (d == 1 && strncmp(e->d_name, "tok-", 4) != 0))
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            size_t n;
            uint8_t *data = read_whole_file(path, &n);
            fuzz_tokenizer_one(data, n);
            free(data);
            seen[d]++;
        }
        closedir(dp);
    }
    fuzz_tokenizer_cleanup();
    print_message("fuzz_tokenizer.c: %d seeds and %d regressions replayed\n", seen[0], seen[1]);
    assert_true(seen[0] > 0 && seen[1] > 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(llamacpp_vocab_vectors),
    cmocka_unit_test(hf_vectors_tiny_llada),
    cmocka_unit_test(hf_vectors_gpt2),
    cmocka_unit_test(llada_json_equals_gguf),
    cmocka_unit_test(gpt2_json_equals_gguf),
    cmocka_unit_test(llada_specials_and_lookups),
    cmocka_unit_test(hostile_text),
    cmocka_unit_test(bad_tokenizer_json),
    cmocka_unit_test(gguf_tokenizer_metadata),
    cmocka_unit_test(split_behaviors),
    cmocka_unit_test(nfc_digits_and_added_token_options),
    cmocka_unit_test(merge_cache_is_consistent),
    cmocka_unit_test(chat_llada),
    cmocka_unit_test(chat_llada_moe),
    cmocka_unit_test(chat_ling),
    cmocka_unit_test(chat_chatml),
    cmocka_unit_test(chat_selection),
    cmocka_unit_test(vocab_merges_equals_tokenizer_json),
    cmocka_unit_test(qwen2_split_everywhere),
    cmocka_unit_test(bad_vocab_merges),
    cmocka_unit_test(tokenizer_fuzz_inputs),
};
const test_group tokenizer_group = {"tokenizer", tests, sizeof tests / sizeof *tests};
