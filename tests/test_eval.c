/* unmask eval against references no one here wrote: the masked-batch loss
 * against PyTorch's pre-training loss (pretrain_step.safetensors), task
 * accuracy and NFE against the upstream samplers' outputs (reference.json:
 * LLaDA's generate.py, Fast-dLLM's caches and threshold decoding), token
 * counts against the Hugging Face tokenizer's vectors; then the ELBO
 * estimate's determinism and the errors on bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define MODEL_DIR "llada/tiny-llada/hf-bf16"

/* Runs `unmask eval ...` that must succeed and print one JSON object. */
static cJSON *eval_json(const char *args) { return run_unmask_json("eval %s --json", args); }

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number '%s' in the output", key);
    return v->valuedouble;
}

/* The F64 scalar `loss` PyTorch stored in a fixture. */
static double reference_loss(const char *rel) {
    um_st_file f;
    um_error err;
    assert_int_equal(um_st_open(fixture(rel), &f, &err), UM_OK);
    const um_st_tensor *t = um_st_find(&f, "loss");
    assert_non_null(t);
    assert_int_equal(t->dtype, UM_F64);
    double loss;
    memcpy(&loss, t->data, sizeof loss);
    um_st_close(&f);
    return loss;
}

/* A forward-only pass over the fixture's masked batch gives PyTorch's
 * pre-training loss: sum over masked positions of CE / p_mask, over rows *
 * seq. The HF checkpoint and llama.cpp's GGUF (permuted q/k) agree. */
static void masked_batch_matches_pytorch_loss(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    double want = reference_loss("llada/tiny-llada/pretrain_step.safetensors");
    const char *models[] = {"llada/tiny-llada/hf-f32-sharded", MODEL_DIR, "llada/gguf/tiny-llada-f32.gguf"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char args[2048];
        snprintf(args, sizeof args, "-m %s --masked-batch %s", fixture(models[i]),
                 fixture("llada/tiny-llada/pretrain_step.safetensors"));
        cJSON *o = eval_json(args);
        double got = json_num(o, "loss");
        if (fabs(got - want) > 1e-5 * fabs(want))
            fail_msg("%s: loss %.10f, PyTorch's %.10f", models[i], got, want);
        assert_int_equal((int)json_num(o, "rows"), 3);
        assert_int_equal((int)json_num(o, "seq"), 20);
        cJSON_Delete(o);
    }
    f32_activations_for_commands(false);
}

/* The first two Hugging Face tokenizer vectors (text and ids). */
static void hf_vector(int k, char **text, int *n_ids) {
    size_t n;
    char *all = read_whole_file(fixture("tokenizers/hf-vectors/tiny-llada.jsonl"), &n), *line = all;
    for (int i = 0; i < k; i++)
        line = strchr(line, '\n') + 1;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = 0;
    cJSON *v = cJSON_Parse(line);
    assert_non_null(v);
    *text = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(v, "text")));
    *n_ids = cJSON_GetArraySize(cJSON_GetObjectItem(v, "ids"));
    cJSON_Delete(v);
    free(all);
}

/* Two documents, split at <|endoftext|> or at blank lines with --doc-sep:
 * the tokens scored are the Hugging Face tokenizer's ids plus one EOS per
 * document; the same seed gives the same bound, another seed another one,
 * and with many samples seeds agree (the estimate converges). */
static void elbo_tokens_and_determinism(void **state) {
    char *a, *b, *dir = make_temp_dir(), path[512], path2[512], text[1024];
    int na, nb;
    hf_vector(0, &a, &na);
    hf_vector(1, &b, &nb);
    snprintf(path, sizeof path, "%s/docs.txt", dir);
    snprintf(text, sizeof text, "%s<|endoftext|>%s\n", a, b);
    write_file(path, text, strlen(text));
    snprintf(path2, sizeof path2, "%s/blank.txt", dir);
    snprintf(text, sizeof text, "%s\n\n%s", a, b);
    write_file(path2, text, strlen(text));

    char args[2048];
    snprintf(args, sizeof args, "-m %s --text %s --seq 16 --samples 8 -s 5", fixture(MODEL_DIR), path);
    cJSON *o1 = eval_json(args), *o2 = eval_json(args);
    assert_int_equal((int)json_num(o1, "tokens"), na + nb + 2);
    assert_int_equal((int)json_num(o1, "rows"), (na + nb + 2 + 15) / 16);
    assert_int_equal((int)json_num(o1, "samples"), 8);
    double nll = json_num(o1, "nll_bound");
    assert_true(nll > 0 && isfinite(nll));
    assert_true(nll == json_num(o2, "nll_bound"));
    assert_true(fabs(json_num(o1, "perplexity") - exp(nll)) <= 1e-6 * exp(nll));

    snprintf(args, sizeof args, "-m %s --text %s --seq 16 --samples 8 -s 5 --doc-sep '\\n\\n'", fixture(MODEL_DIR),
             path2);
    cJSON *o3 = eval_json(args);
    assert_int_equal((int)json_num(o3, "tokens"), na + nb + 2);
    assert_true(json_num(o3, "nll_bound") == nll); /* the same rows, the same masks */

    snprintf(args, sizeof args, "-m %s --text %s --seq 16 --samples 8 -s 6 --limit-tokens 20", fixture(MODEL_DIR),
             path);
    cJSON *o4 = eval_json(args);
    assert_int_equal((int)json_num(o4, "tokens"), 20);
    assert_int_equal((int)json_num(o4, "rows"), 2);

    double big[2];
    for (int s = 0; s < 2; s++) {
        snprintf(args, sizeof args, "-m %s --text %s --seq 16 --samples 256 -s %d", fixture(MODEL_DIR), path, s + 1);
        cJSON *o = eval_json(args);
        big[s] = json_num(o, "nll_bound");
        cJSON_Delete(o);
    }
    if (fabs(big[0] - big[1]) > 0.1 * big[0])
        fail_msg("256 samples: seeds give %.4f and %.4f", big[0], big[1]);
    cJSON_Delete(o1);
    cJSON_Delete(o2);
    cJSON_Delete(o3);
    cJSON_Delete(o4);
    free(a);
    free(b);
    remove_tree(dir);
    free(dir);
}

/* ---- task accuracy against the upstream samplers ---- */

/* ids decoded with the fixture tokenizer (malloc'd). */
static char *decode(um_tokenizer *tok, const int32_t *ids, int n) {
    char *text;
    size_t len;
    um_error err;
    assert_int_equal(um_tokenizer_decode(tok, ids, (size_t)n, true, &text, &len, &err), UM_OK);
    return text;
}

static bool same_trimmed(const char *a, const char *b) {
    while (*a == ' ' || *a == '\n')
        a++;
    while (*b == ' ' || *b == '\n')
        b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && (a[na - 1] == ' ' || a[na - 1] == '\n'))
        na--;
    while (nb && (b[nb - 1] == ' ' || b[nb - 1] == '\n'))
        nb--;
    return na == nb && memcmp(a, b, na) == 0;
}

typedef struct {
    int n;
    char *prompt;       /* every case's prompt (they share it) */
    char *answer[32];   /* each case's generated text */
    char flags[32][256]; /* each case's sampler as generation flags */
    int nfe[32];
} ref_cases;

/* The generation cases of reference.json as text, their flags and NFE. */
static void load_cases(ref_cases *rc) {
    memset(rc, 0, sizeof *rc);
    um_tokenizer *tok;
    um_error err;
    assert_int_equal(um_tokenizer_load(fixture(MODEL_DIR), &tok, &err), UM_OK);
    cJSON *root = load_reference("tiny-llada");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "kind")), "generate") != 0 || rc->n == 32)
            continue;
        int np, no;
        int32_t *p = json_int_array(cJSON_GetObjectItem(c, "prompt"), &np);
        int32_t *out = json_int_array(cJSON_GetObjectItem(c, "output"), &no);
        char *prompt = decode(tok, p, np);
        if (rc->prompt) /* the cases share one prompt, so one JSONL line fits them all */
            assert_string_equal(prompt, rc->prompt);
        free(rc->prompt);
        rc->prompt = prompt;
        rc->answer[rc->n] = decode(tok, out + np, no - np);
        reference_case_flags(c, rc->flags[rc->n], sizeof rc->flags[rc->n]);
        rc->nfe[rc->n] = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "nfe"));
        rc->n++;
        free(p);
        free(out);
    }
    assert_true(rc->n >= 4);
    cJSON_Delete(root);
    um_tokenizer_free(tok);
}

static void free_cases(ref_cases *rc) {
    free(rc->prompt);
    for (int i = 0; i < rc->n; i++)
        free(rc->answer[i]);
}

/* JSONL lines {key_prompt: prompt, "answer": answers[i]}. */
static void write_tasks(const char *path, const char *key_prompt, const char *prompt, char *const *answers, int n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, key_prompt, prompt);
        cJSON_AddStringToObject(o, "answer", answers[i]);
        char *s = cJSON_PrintUnformatted(o);
        len += (size_t)snprintf(buf + len, cap - len, "%s\n", s);
        assert_true(len < cap);
        free(s);
        cJSON_Delete(o);
    }
    write_file(path, buf, len);
    free(buf);
}

/* One line per reference case (the prompt, the case's output as the answer)
 * and one --setting per case's sampler: each row scores exactly the lines
 * whose answer is its case's output (its own at least) with the case's NFE. */
static void tasks_score_reference_outputs(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    ref_cases rc;
    load_cases(&rc);
    char *dir = make_temp_dir(), path[512], args[8192];
    snprintf(path, sizeof path, "%s/tasks.jsonl", dir);
    write_tasks(path, "prompt", rc.prompt, rc.answer, rc.n);
    int k = snprintf(args, sizeof args, "-m %s --tasks %s", fixture(MODEL_DIR), path);
    for (int i = 0; i < rc.n; i++)
        k += snprintf(args + k, sizeof args - (size_t)k, " --setting \"%s\"", rc.flags[i]);
    cJSON *o = eval_json(args);
    const cJSON *rows = cJSON_GetObjectItem(o, "settings");
    assert_int_equal(cJSON_GetArraySize(rows), rc.n);
    for (int i = 0; i < rc.n; i++) {
        const cJSON *r = cJSON_GetArrayItem(rows, i);
        int want = 0;
        for (int j = 0; j < rc.n; j++)
            want += same_trimmed(rc.answer[i], rc.answer[j]);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(r, "setting")), rc.flags[i]);
        assert_int_equal((int)json_num(r, "total"), rc.n);
        if ((int)json_num(r, "correct") != want || json_num(r, "mean_nfe") != rc.nfe[i])
            fail_msg("setting '%s': %d/%d correct, NFE %g; want %d correct, NFE %d", rc.flags[i],
                     (int)json_num(r, "correct"), rc.n, json_num(r, "mean_nfe"), want, rc.nfe[i]);
    }
    cJSON_Delete(o);

    /* base flags plus a setting; the table as text; --limit and --show */
    write_tasks(path, "prompt", rc.prompt, &rc.answer[1], 1);
    cmd_result r = run_unmask("eval -m %s --tasks %s %s --limit 1 --show 1 --setting '--max-nfe 32' "
                              "--setting '--cache dual --decoder threshold --threshold 0.5'",
                              fixture(MODEL_DIR), path, rc.flags[1]);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--max-nfe 32"));
    assert_non_null(strstr(r.out, "1/1 (100.0%)"));
    assert_non_null(strstr(r.out, "--cache dual --decoder threshold --threshold 0.5"));
    assert_non_null(strstr(r.err, "example 1: correct"));
    cmd_result_free(&r);
    free_cases(&rc);
    remove_tree(dir);
    free(dir);
    f32_activations_for_commands(false);
}

/* GSM8K lines: the number after #### against the last number generated. The
 * reference sampler's 8-step output (LLaDA generate.py) ends in "...7on...";
 * 7 and 7.0 match, 17 and 1,007 do not. */
static void tasks_gsm8k_number(void **state) {
    ref_cases rc;
    load_cases(&rc);
    int c = -1;
    for (int i = 0; i < rc.n; i++)
        if (strcmp(rc.flags[i], "-n 32 --steps 8 --block-length 32 --cache none --decoder topk") == 0)
            c = i;
    assert_true(c >= 0);
    const char *d = rc.answer[c], *last = NULL;
    for (const char *p = d; *p; p++)
        if (*p >= '0' && *p <= '9')
            last = p;
    assert_non_null(last);
    assert_true(*last == '7' && (last == d || last[-1] < '0' || last[-1] > '9')); /* the last number is 7 */
    char *answers[] = {"so 7 #### 7", "#### 7.0", "#### 17", "#### 1,007"};
    char *dir = make_temp_dir(), path[512], args[2048];
    snprintf(path, sizeof path, "%s/gsm8k.jsonl", dir);
    write_tasks(path, "question", rc.prompt, answers, 4);
    snprintf(args, sizeof args, "-m %s --tasks %s %s", fixture(MODEL_DIR), path, rc.flags[c]);
    cJSON *o = eval_json(args);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "settings"), 0);
    assert_int_equal((int)json_num(row, "correct"), 2);
    assert_int_equal((int)json_num(row, "total"), 4);
    assert_true(json_num(row, "mean_nfe") == rc.nfe[c]);
    cJSON_Delete(o);
    free_cases(&rc);
    remove_tree(dir);
    free(dir);
}

/* ---- bad input ---- */

static void expect_error(int status, const char *want, const char *args_fmt, const char *a, const char *b) {
    cmd_result r = run_unmask(args_fmt, a, b);
    if (r.status != status || !strstr(r.err, want))
        fail_msg("eval %s: exit %d, stderr '%s'; want exit %d and '%s'", args_fmt, r.status, r.err, status, want);
    cmd_result_free(&r);
}

static void bad_input(void **state) {
    const char *m = fixture(MODEL_DIR);
    char *dir = make_temp_dir(), bad_json[512], no_fields[512], good[512];
    snprintf(bad_json, sizeof bad_json, "%s/bad.jsonl", dir);
    const char *bad = "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"prompt\": \"a\",\n";
    write_file(bad_json, bad, strlen(bad));
    snprintf(no_fields, sizeof no_fields, "%s/fields.jsonl", dir);
    write_file(no_fields, "\n{\"text\": \"a\"}\n", strlen("\n{\"text\": \"a\"}\n"));
    snprintf(good, sizeof good, "%s/good.jsonl", dir);
    const char *ok = "{\"prompt\": \"a\", \"answer\": \"b\"}\n";
    write_file(good, ok, strlen(ok));

    expect_error(2, "nothing to evaluate", "eval -m %s%s", m, "");
    expect_error(1, "/no/such/tasks.jsonl", "eval -m %s --tasks %s", m, "/no/such/tasks.jsonl");
    expect_error(1, "/no/such/text.txt", "eval -m %s --text %s", m, "/no/such/text.txt");
    expect_error(1, "bad.jsonl:2: not a JSON object", "eval -m %s --tasks %s", m, bad_json);
    expect_error(1, "fields.jsonl:2: expected", "eval -m %s --tasks %s", m, no_fields);
    expect_error(2, "--setting '--decoder fastest'", "eval -m %s --tasks %s --setting '--decoder fastest'", m, good);
    expect_error(2, "--setting '--steps 4 --model x': '--model' is not a generation flag",
                 "eval -m %s --tasks %s --setting '--steps 4 --model x'", m, good);
    expect_error(1, "noisy_ids", "eval -m %s --masked-batch %s", m, fixture("llada/tiny-llada/forward.safetensors"));
    expect_error(2, "only one of", "eval -m %s --text %s --tasks x", m, good);
    remove_tree(dir);
    free(dir);
}

/* The help says where the estimate comes from. */
static void help_names_the_estimate(void **state) {
    cmd_result r = run_unmask("eval --help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Nie et al. 2025"));
    assert_non_null(strstr(r.out, "--setting"));
    cmd_result_free(&r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(masked_batch_matches_pytorch_loss),
    cmocka_unit_test(elbo_tokens_and_determinism),
    cmocka_unit_test(tasks_score_reference_outputs),
    cmocka_unit_test(tasks_gsm8k_number),
    cmocka_unit_test(bad_input),
    cmocka_unit_test(help_names_the_estimate),
};

const test_group eval_group = {"eval", tests, sizeof tests / sizeof *tests};
