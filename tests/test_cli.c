/* The unmask command and the example program, driven as a user would: help
 * texts, run --json against a reference case, forward's logits file,
 * init-random models that load and run, bench's report. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "testutil.h"

static void help_lists_commands(void **state) {
    cmd_result r = run_unmask("--help");
    assert_int_equal(r.status, 0);
    const char *cmds[] = {"run", "forward", "bench", "init-random"};
    for (size_t i = 0; i < 4; i++)
        assert_non_null(strstr(r.out, cmds[i]));
    cmd_result_free(&r);
    r = run_unmask("run --help");
    assert_int_equal(r.status, 0);
    const char *flags[] = {"--prompt-tokens", "--gen-length", "--steps",   "--block-length", "--temp",
                           "--cfg-scale",     "--remasking",  "--logits-eos-inf", "--confidence-eos-eot-inf",
                           "--seed",          "--threads",    "--json"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!strstr(r.out, flags[i]))
            fail_msg("run --help does not mention %s", flags[i]);
    cmd_result_free(&r);
    r = run_unmask("frobnicate");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
    cmd_result_free(&r);
}

static void run_json_matches_reference(void **state) {
    cJSON *root = load_reference("tiny-llada-gqa");
    const cJSON *c = find_reference_case(root, 32, 8, 1.5);
    char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
    cmd_result r = run_unmask("run -m %s --prompt-tokens %s -n 32 --steps 32 --block-length 8 --reference --cfg-scale 1.5 "
                              "-t 2 --json",
                              fixture("llada/tiny-llada-gqa/hf-bf16"), prompt);
    assert_int_equal(r.status, 0);
    cJSON *out = cJSON_Parse(r.out);
    assert_non_null(out);
    const cJSON *want = cJSON_GetObjectItem(c, "output"), *got = cJSON_GetObjectItem(out, "tokens");
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    for (int i = 0; i < cJSON_GetArraySize(want); i++)
        assert_int_equal(cJSON_GetArrayItem(got, i)->valueint, cJSON_GetArrayItem(want, i)->valueint);
    assert_int_equal(cJSON_GetObjectItem(out, "nfe")->valueint, cJSON_GetObjectItem(c, "nfe")->valueint);
    cJSON_Delete(out);
    cmd_result_free(&r);
    free(prompt);
    cJSON_Delete(root);
}

/* Plain output: the generated ids on stdout, the statistics on stderr. */
static void run_text_output(void **state) {
    cJSON *root = load_reference("tiny-llada");
    const cJSON *c = find_reference_case(root, 16, 16, 0);
    char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
    cmd_result r = run_unmask("run -m %s --prompt-tokens %s -n 32 --steps 16 --block-length 16 --reference",
                              fixture("llada/tiny-llada/hf-f32-sharded"), prompt);
    assert_int_equal(r.status, 0);
    const cJSON *want = cJSON_GetObjectItem(c, "output");
    int n = cJSON_GetArraySize(want), plen = cJSON_GetArraySize(cJSON_GetObjectItem(c, "prompt"));
    char expect[4096] = "";
    for (int i = plen; i < n; i++)
        sprintf(expect + strlen(expect), "%s%d", i > plen ? " " : "", cJSON_GetArrayItem(want, i)->valueint);
    strcat(expect, "\n");
    assert_string_equal(r.out, expect);
    assert_non_null(strstr(r.err, "nfe 16"));
    assert_non_null(strstr(r.err, "tokens/s"));
    assert_non_null(strstr(r.err, "ms per forward"));
    cmd_result_free(&r);
    free(prompt);
    cJSON_Delete(root);
}

static void forward_writes_reference_logits(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    um_st_file ref, got;
    um_error err;
    assert_int_equal(um_st_open(fixture("llada/tiny-llada/forward.safetensors"), &ref, &err), UM_OK);
    const um_st_tensor *ids = um_st_find(&ref, "input_ids"), *logits = um_st_find(&ref, "logits");
    int seq = (int)ids->shape[1], vocab = (int)logits->shape[2];
    char csv[4096] = "";
    for (int i = 0; i < seq; i++) {
        int32_t t;
        memcpy(&t, ids->data + 4 * i, 4);
        sprintf(csv + strlen(csv), "%s%d", i ? "," : "", t);
    }
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/logits.safetensors", dir);
    cmd_result r = run_unmask("forward -m %s --prompt-tokens %s -o %s", fixture("llada/tiny-llada/hf-bf16"), csv,
                              path);
    assert_int_equal(r.status, 0);
    assert_int_equal(um_st_open(path, &got, &err), UM_OK);
    const um_st_tensor *gl = um_st_find(&got, "logits");
    assert_non_null(gl);
    assert_int_equal(gl->dtype, UM_F32);
    assert_int_equal(gl->n_dims, 2);
    assert_int_equal(gl->shape[0], seq);
    assert_int_equal(gl->shape[1], vocab);
    double max_diff = 0, max_ref = 0;
    for (int i = 0; i < seq * vocab; i++) {
        float a, b;
        memcpy(&a, gl->data + 4 * i, 4);
        memcpy(&b, logits->data + 4 * i, 4);
        max_diff = fmax(max_diff, fabs(a - b));
        max_ref = fmax(max_ref, fabs(b));
    }
    assert_true(max_diff / max_ref <= 1e-4);
    um_st_close(&got);
    um_st_close(&ref);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
    f32_activations_for_commands(false);
}

/* init-random writes a loadable model of the preset's shape; bench and run use it. */
static void init_random_bench_and_run(void **state) {
    char *dir = make_temp_dir();
    const char *dtypes[] = {"bf16", "f16", "f32"};
    for (int i = 0; i < 3; i++) {
        cmd_result r = run_unmask("init-random --arch llada --preset tiny --dtype %s -s 3 -o %s/%s", dtypes[i], dir,
                                  dtypes[i]);
        assert_int_equal(r.status, 0);
        cmd_result_free(&r);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, dtypes[i]);
        um_model *m;
        um_error err;
        um_model_params mp = {1, false};
        if (um_model_open(path, &mp, &m, &err) != UM_OK)
            fail_msg("%s", err.msg);
        um_model_info info;
        um_model_get_info(m, &info);
        assert_string_equal(info.weight_type, dtypes[i]);
        assert_int_equal(info.n_layers, 3);
        assert_int_equal(info.d_model, 64);
        assert_int_equal(info.n_vocab, 512);
        assert_int_equal(info.mask_id, 500);
        um_model_close(m);
    }
    cmd_result r = run_unmask("bench -m %s/bf16 --prompt-len 8 --gen-len 24 -r 2 -t 1", dir);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "GFLOP/s"));
    assert_non_null(strstr(r.out, "| 32 |")); /* the canvas */
    cmd_result_free(&r);
    r = run_unmask("run -m %s/f16 --prompt-tokens 1,2,3 -n 16 --steps 4 --block-length 8 --reference --json", dir);
    assert_int_equal(r.status, 0);
    cJSON *out = cJSON_Parse(r.out);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "tokens")), 19);
    assert_int_equal(cJSON_GetObjectItem(out, "nfe")->valueint, 4);
    cJSON_Delete(out);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
}

/* The example links only the shared library through the public header. It
 * must reproduce the f32 reference trajectory, so it runs with f32
 * activations: the default reduced arithmetic (bf16 operands in matmuls and
 * attention) moves this BF16 checkpoint's logits by ~1e-3 of their size
 * (the forward group bounds it), more than some of the reference's decision
 * margins (min_top2_logit_gap 1e-4). */
static void example_program_generates(void **state) {
    const char *bin = getenv("UNMASK_EXAMPLE");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "UNMASK_ACTIVATIONS=f32 %s %s %s 37 37 126 38 454 179 88 187 363 230 53 474 2>/dev/null", exec_wrapper(),
             bin && *bin ? bin : "build/example-generate", fixture("llada/tiny-llada/hf-bf16"));
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    char line[4096] = "";
    assert_non_null(fgets(line, sizeof line, fp));
    assert_int_equal(pclose(fp), 0);
    /* the reference case steps 32, gen 32, block 8 */
    cJSON *root = load_reference("tiny-llada");
    const cJSON *c = find_reference_case(root, 32, 8, 0), *want = cJSON_GetObjectItem(c, "output");
    char expect[4096] = "";
    for (int i = 12; i < cJSON_GetArraySize(want); i++)
        sprintf(expect + strlen(expect), "%s%d", i > 12 ? " " : "", cJSON_GetArrayItem(want, i)->valueint);
    strcat(expect, "\n");
    assert_string_equal(line, expect);
    cJSON_Delete(root);

    /* text in, text out through the public tokenizer and chat template: the
       prompt `run --chat` builds, and the answer's ids decoded */
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    snprintf(cmd, sizeof cmd, "UNMASK_ACTIVATIONS=f32 %s %s %s --chat 'What is free software?' 2>/dev/null",
             exec_wrapper(), bin && *bin ? bin : "build/example-generate", model);
    fp = popen(cmd, "r");
    assert_non_null(fp);
    assert_non_null(fgets(line, sizeof line, fp));
    assert_int_equal(pclose(fp), 0);
    f32_activations_for_commands(true);
    cJSON *o = run_unmask_json("run -m %s -p 'What is free software?' --chat -n 32 --steps 32 --block-length 8 "
                               "--reference --json", model);
    f32_activations_for_commands(false);
    um_tokenizer *tok;
    um_error err;
    assert_int_equal(um_tokenizer_load(model, &tok, &err), UM_OK);
    um_chat_message turn = {"user", "What is free software?"};
    int32_t *ids;
    size_t n;
    assert_int_equal(um_chat_prompt(tok, &turn, 1, &ids, &n, &err), UM_OK);
    const cJSON *tokens = cJSON_GetObjectItem(o, "tokens");
    assert_int_equal((int)n, cJSON_GetObjectItem(o, "prompt_length")->valueint);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], cJSON_GetArrayItem(tokens, (int)i)->valueint);
    int n_gen = cJSON_GetArraySize(tokens) - (int)n;
    int32_t *gen = malloc((size_t)n_gen * sizeof *gen);
    for (int i = 0; i < n_gen; i++)
        gen[i] = cJSON_GetArrayItem(tokens, (int)n + i)->valueint;
    char *text;
    size_t len;
    assert_int_equal(um_tokenizer_decode(tok, gen, (size_t)n_gen, true, &text, &len, &err), UM_OK);
    line[strcspn(line, "\n")] = 0;
    assert_string_equal(line, text);
    free(text);
    free(gen);
    free(ids);
    um_tokenizer_free(tok);
    cJSON_Delete(o);
}

/* run --batch: every reference case of tiny-llada (the LLaDA sampler's and
 * Fast-dLLM's) as one line of a JSON Lines file, three live at once, in f32:
 * each output line, in input order, has the reference's tokens and NFE. A bad
 * line is an error naming it, before anything runs. */
static void run_batch_matches_reference(void **state) {
    static const char *const caches[] = {"none", "prefix", "dual", "vicinity"};
    cJSON *root = load_reference("tiny-llada");
    char *dir = make_temp_dir(), path[4096];
    snprintf(path, sizeof path, "%s/requests.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const cJSON *c, *cases[64];
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || (strncmp(ref, LLADA_REFERENCE, strlen(LLADA_REFERENCE)) != 0 &&
                     strncmp(ref, FASTDLLM_REFERENCE, strlen(FASTDLLM_REFERENCE)) != 0))
            continue;
        um_generate_params p = reference_case_params(c);
        char *ids = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
        fprintf(f,
                "{\"prompt_tokens\": [%s], \"gen_length\": %d, \"steps\": %d, \"block_length\": %d, \"cache\": "
                "\"%s\", \"decoder\": \"%s\", \"threshold\": %.17g, \"cfg_scale\": %.17g, \"logits_eos_inf\": %s, "
                "\"confidence_eos_eot_inf\": %s}\n",
                ids, p.gen_length, p.steps, p.block_length, caches[p.cache],
                p.decoder == UM_DECODER_THRESHOLD ? "threshold" : "topk", p.threshold, p.cfg_scale,
                p.logits_eos_inf ? "true" : "false", p.confidence_eos_eot_inf ? "true" : "false");
        free(ids);
        cases[n++] = c;
    }
    fclose(f);
    assert_true(n >= 10);
    f32_activations_for_commands(true);
    cmd_result r = run_unmask("run -m %s --batch %s --parallel 3 -t 2", fixture("llada/tiny-llada/hf-f32-sharded"),
                              path);
    assert_int_equal(r.status, 0);
    char *line = r.out;
    for (int k = 0; k < n; k++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = 0;
        cJSON *out = cJSON_Parse(line);
        assert_non_null(out);
        const cJSON *want = cJSON_GetObjectItem(cases[k], "output"), *got = cJSON_GetObjectItem(out, "tokens");
        assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
        for (int i = 0; i < cJSON_GetArraySize(want); i++)
            if (cJSON_GetArrayItem(got, i)->valueint != cJSON_GetArrayItem(want, i)->valueint)
                fail_msg("request %d: token %d differs from the reference", k + 1, i);
        assert_int_equal(cJSON_GetObjectItem(out, "nfe")->valueint, cJSON_GetObjectItem(cases[k], "nfe")->valueint);
        cJSON_Delete(out);
        line = end + 1;
    }
    assert_string_equal(line, "");
    assert_non_null(strstr(r.err, "up to 3 at once"));
    cmd_result_free(&r);

    f = fopen(path, "a");
    fputs("{\"prompt_tokens\": [1, 2], \"temperature\": 0.5}\n", f);
    fclose(f);
    r = run_unmask("run -m %s --batch %s", fixture("llada/tiny-llada/hf-f32-sharded"), path);
    assert_int_not_equal(r.status, 0);
    char where[4200];
    snprintf(where, sizeof where, "requests.jsonl:%d: error: temperature: not a request key", n + 1);
    assert_non_null(strstr(r.err, where));
    assert_string_equal(r.out, "");
    cmd_result_free(&r);
    f32_activations_for_commands(false);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(root);
}

/* `unmask help CMD` is CMD's --help, `unmask version` the version; an
 * unknown preset is named with the known ones; usage errors exit 2; -t above
 * the CPU count warns. */
static void small_conveniences(void **state) {
    cmd_result a = run_unmask("help run"), b = run_unmask("run --help");
    assert_int_equal(a.status, 0);
    assert_string_equal(a.out, b.out);
    cmd_result_free(&a);
    cmd_result_free(&b);
    a = run_unmask("version");
    b = run_unmask("--version");
    assert_int_equal(a.status, 0);
    assert_string_equal(a.out, b.out);
    assert_non_null(strstr(a.out, UNMASK_VERSION));
    assert_string_equal(um_version(), UNMASK_VERSION); /* the library the header came with */
    cmd_result_free(&a);
    cmd_result_free(&b);
    /* the release's git tag, where the sources are a git checkout */
    FILE *git = access(".git", F_OK) == 0 ? popen("git tag -l v" UNMASK_VERSION " 2>/dev/null", "r") : NULL;
    char tag[64] = "";
    if (git && fgets(tag, sizeof tag, git))
        assert_string_equal(tag, "v" UNMASK_VERSION "\n");
    else
        skip_note("a git checkout with its tags", "the version's git tag");
    if (git)
        pclose(git);
    a = run_unmask("init-random --preset huge -o /nonexistent");
    assert_int_equal(a.status, 2);
    assert_non_null(strstr(a.err, "unknown preset 'huge' (llada-8b, llada-1b, llada-moe-7b-a1b, llada2-mini, tiny)"));
    cmd_result_free(&a);
    /* usage errors exit 2: settings that do not go together, a GGUF file given to convert */
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 64 --steps 7", fixture("llada/tiny-llada/hf-bf16"));
    assert_int_equal(a.status, 2);
    assert_non_null(strstr(a.err, "multiple of the block count 2"));
    cmd_result_free(&a);
    a = run_unmask("convert %s -o /nonexistent/x.gguf --type q8_0", fixture("llada/gguf/tiny-llada-f32.gguf"));
    assert_int_equal(a.status, 2);
    assert_non_null(strstr(a.err, "unmask quantize"));
    cmd_result_free(&a);
    /* --steps given to the threshold decoder (the default) cannot set the passes: a note says so */
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 16 --steps 8", fixture("llada/tiny-llada/hf-bf16"));
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.err, "note: this decoder runs each block until it is filled"));
    cmd_result_free(&a);
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 16 --steps 8 --reference", fixture("llada/tiny-llada/hf-bf16"));
    assert_null(strstr(a.err, "note:"));
    cmd_result_free(&a);
    /* llama-diffusion-cli's flag names give the same generation as ours */
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    cJSON *ours = run_unmask_json("run -m %s --prompt-tokens 1,2 -n 16 --steps 8 --block-length 8 --decoder entropy "
                                  "--cache none --json", model);
    cJSON *theirs = run_unmask_json("run -m %s --prompt-tokens 1,2 --n-predict 16 --diffusion-steps 8 "
                                    "--diffusion-block-length 8 --diffusion-algorithm 1 --cache none --json", model);
    char *x = cJSON_PrintUnformatted(cJSON_GetObjectItem(ours, "tokens")),
         *y = cJSON_PrintUnformatted(cJSON_GetObjectItem(theirs, "tokens"));
    assert_string_equal(x, y);
    assert_int_equal(cJSON_GetObjectItem(theirs, "nfe")->valueint, 8);
    free(x);
    free(y);
    cJSON_Delete(ours);
    cJSON_Delete(theirs);
    /* llama.cpp's -c: the longest canvas; a prompt of 2 and -n 16 need 18 */
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 16 -c 17", model);
    assert_int_equal(a.status, 2);
    assert_non_null(strstr(a.err, "the prompt (2 tokens) and -n 16 need a canvas of 18, more than --ctx-size 17"));
    cmd_result_free(&a);
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 16 --ctx-size 18", model);
    assert_int_equal(a.status, 0);
    cmd_result_free(&a);
    long over = sysconf(_SC_NPROCESSORS_ONLN) + 1;
    a = run_unmask("run -m %s --prompt-tokens 1,2 -n 8 -t %ld", fixture("llada/tiny-llada/hf-bf16"), over);
    assert_int_equal(a.status, 0);
    char want[64];
    snprintf(want, sizeof want, "warning: -t %ld is more than the", over);
    assert_non_null(strstr(a.err, want));
    cmd_result_free(&a);
}

/* train: a tokenizer larger than the model's vocabulary is refused at start
 * with both sizes; the model line shows the training threads; --resume with
 * another batch or sequence length warns, naming each; --random-length with
 * --sft is a usage error. */
static void train_checks_its_inputs(void **state) {
    char *dir = make_temp_dir();
    cmd_result r = run_unmask("init-random --preset tiny --dtype f32 -o %s/small", dir);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    r = run_unmask("train -m %s/small --tokenizer models/stories/tokenizer.json --data models/stories/val.txt "
                   "--seq-len 32 --steps 1 -o %s/out", dir, dir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "has 2048 tokens, more than the 512 rows"));
    cmd_result_free(&r);
    r = run_unmask("init-random --preset tiny --vocab 2048 --eos-id 2046 --mask-id 2047 --dtype f32 -o %s/fits", dir);
    cmd_result_free(&r);
    r = run_unmask("train -m %s/fits --tokenizer models/stories/tokenizer.json --data models/stories/val.txt "
                   "--seq-len 32 --batch 2 --steps 1 -t 2 -o %s/out -s 1", dir, dir);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "; 2 threads;"));
    cmd_result_free(&r);
    r = run_unmask("train --resume %s/out --data models/stories/val.txt --seq-len 16 --batch 2 --steps 2 -s 1", dir);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "warning: --seq-len 16 differs from the 32"));
    assert_null(strstr(r.err, "--batch 2 differs"));
    cmd_result_free(&r);
    /* random lengths would cut SFT rows' answers: refused as a usage error */
    r = run_unmask("train -m %s/fits --sft %s/none.jsonl --random-length 0.1 -o %s/out", dir, dir, dir);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--random-length is for pre-training"));
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
}

/* Masks in a JSON token list (mask id 500, the tiny models'). */
static int masks_in(const cJSON *tokens) {
    int n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens) n += t->valueint == 500;
    return n;
}

/* The statistics count what was committed: a run stopped by --max-nfe
 * leaves masks and counts the rest; an infill counts its blanks. Both
 * recounted here from the tokens themselves. */
static void statistics_count_committed(void **state) {
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    cJSON *o = run_unmask_json("run -m %s --prompt-tokens 1,2,3 -n 32 --max-nfe 3 --json", model);
    int left = masks_in(cJSON_GetObjectItem(o, "tokens")), committed = cJSON_GetObjectItem(o, "committed")->valueint;
    assert_true(left > 0);
    assert_int_equal(committed, 32 - left);
    cJSON_Delete(o);
    o = run_unmask_json("run -m %s --prompt-tokens 1,500,500,2,500 -n 0 --json", model);
    assert_int_equal(cJSON_GetObjectItem(o, "committed")->valueint, 3);
    assert_int_equal(masks_in(cJSON_GetObjectItem(o, "tokens")), 0);
    cJSON_Delete(o);
    cmd_result r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 32 --max-nfe 3", model);
    assert_int_equal(r.status, 0);
    char want[64];
    snprintf(want, sizeof want, "generated %d tokens", committed);
    assert_non_null(strstr(r.err, want));
    cmd_result_free(&r);
}

/* Without --block-length, blocks are the largest divisor of -n up to 32
 * (at least 8): -n 100 runs 4 blocks of 25, so 7 steps do not split evenly
 * and 8 do; -n 37 is one block. */
static void default_block_length(void **state) {
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    cmd_result r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 100 --steps 7", model);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "block count 4"));
    cmd_result_free(&r);
    cJSON *o = run_unmask_json("run -m %s --prompt-tokens 1,2,3 -n 100 --steps 8 --reference --json", model);
    assert_int_equal(cJSON_GetObjectItem(o, "nfe")->valueint, 8);
    cJSON_Delete(o);
    o = run_unmask_json("run -m %s --prompt-tokens 1,2,3 -n 37 --steps 1 --reference --json", model);
    assert_int_equal(cJSON_GetObjectItem(o, "nfe")->valueint, 1);
    cJSON_Delete(o);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(help_lists_commands),         cmocka_unit_test(run_json_matches_reference),
    cmocka_unit_test(run_text_output),             cmocka_unit_test(forward_writes_reference_logits),
    cmocka_unit_test(init_random_bench_and_run),   cmocka_unit_test(example_program_generates),
    cmocka_unit_test(run_batch_matches_reference), cmocka_unit_test(statistics_count_committed),
    cmocka_unit_test(default_block_length),        cmocka_unit_test(small_conveniences),
    cmocka_unit_test(train_checks_its_inputs),
};
const test_group cli_group = {"cli", tests, sizeof tests / sizeof *tests};
