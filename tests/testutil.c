#include "testutil.h"

#include "format/gguf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/sys.h"

const char *fixtures_dir(void) {
    const char *e = getenv("UNMASK_FIXTURES");
    return e && *e ? e : "../shared/fixtures";
}

bool fixtures_found(void) {
    struct stat st;
    if (stat(fixtures_dir(), &st) == 0 && S_ISDIR(st.st_mode))
        return true;
    fprintf(stderr, "tests: no fixtures folder at %s (run from the repository beside shared/, or set UNMASK_FIXTURES)\n",
            fixtures_dir());
    return false;
}

void skip_note(const char *lack, const char *what) { printf("    skipped: CPU lacks %s (%s)\n", lack, what); }

const char *fixture(const char *rel) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", fixtures_dir(), rel);
    return b;
}

static char *slurp_stream(FILE *fp) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0)
            break;
        if (cap - n < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = 0;
    return buf;
}

const char *exec_wrapper(void) {
    const char *w = getenv("UNMASK_EXEC_WRAPPER");
    return w ? w : "";
}

void exec_wrapped(char *const argv[]) {
    char *words = strdup(exec_wrapper()), *all[64];
    int n = 0;
    for (char *w = strtok(words, " "); w && n < 32; w = strtok(NULL, " "))
        all[n++] = w;
    for (int i = 0; argv[i] && n < 63; i++)
        all[n++] = argv[i];
    all[n] = NULL;
    execvp(all[0], all);
}

cmd_result run_unmask(const char *args_fmt, ...) {
    const char *bin = getenv("UNMASK_BIN");
    if (!bin || !*bin)
        bin = "build/unmask";
    char args[8192], cmd[16384], errpath[] = "/tmp/unmask-test-stderr-XXXXXX";
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    int fd = mkstemp(errpath);
    assert_true(fd >= 0);
    snprintf(cmd, sizeof cmd, "%s %s %s 2>%s </dev/null", exec_wrapper(), bin, args, errpath);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    cmd_result r;
    r.out = slurp_stream(fp);
    int st = pclose(fp);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *ef = fdopen(fd, "r");
    r.err = slurp_stream(ef);
    fclose(ef);
    unlink(errpath);
    return r;
}

void f32_activations_for_commands(bool on) {
    static char *saved; /* the value before, or NULL when it was unset */
    if (on) {
        const char *now = getenv("UNMASK_ACTIVATIONS");
        saved = now ? strdup(now) : NULL;
        setenv("UNMASK_ACTIVATIONS", "f32", 1);
    } else {
        if (saved)
            setenv("UNMASK_ACTIVATIONS", saved, 1);
        else
            unsetenv("UNMASK_ACTIVATIONS");
        free(saved);
        saved = NULL;
    }
}

cJSON *run_unmask_json(const char *args_fmt, ...) {
    char args[8192];
    va_list ap;
    va_start(ap, args_fmt);
    vsnprintf(args, sizeof args, args_fmt, ap);
    va_end(ap);
    cmd_result r = run_unmask("%s", args);
    if (r.status != 0)
        fail_msg("unmask %s failed (%d): %s", args, r.status, r.err);
    cJSON *o = cJSON_Parse(r.out);
    if (!o)
        fail_msg("unmask %s: not JSON: %s", args, r.out);
    cmd_result_free(&r);
    return o;
}

void cmd_result_free(cmd_result *r) {
    free(r->out);
    free(r->err);
}

char *make_temp_dir(void) {
    char *t = strdup("/tmp/unmask-test-XXXXXX");
    assert_non_null(mkdtemp(t));
    return t;
}

void remove_tree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

void write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

void *read_whole_file(const char *path, size_t *n) {
    char *buf;
    um_error err;
    if (um_read_file(path, (size_t)1 << 30, &buf, n, &err) != UM_OK)
        fail_msg("%s", err.msg);
    return buf;
}

void copy_file(const char *from, const char *to) {
    size_t n;
    void *buf = read_whole_file(from, &n);
    write_file(to, buf, n);
    free(buf);
}

cJSON *load_reference(const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s%s/reference.json", strchr(model, '/') ? "" : "llada/", model);
    size_t n;
    char *text = read_whole_file(fixture(rel), &n);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

int32_t *json_int_array(const cJSON *arr, int *n) {
    assert_true(cJSON_IsArray(arr));
    *n = cJSON_GetArraySize(arr);
    int32_t *out = malloc((size_t)(*n > 0 ? *n : 1) * sizeof *out);
    for (int i = 0; i < *n; i++)
        out[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return out;
}

um_model *open_fixture_model(const char *model, const char *layout, int n_threads) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s%s/%s", strchr(model, '/') ? "" : "llada/", model, layout);
    um_model_params mp = {n_threads, false};
    um_model *m = NULL;
    um_error err;
    if (um_model_open(fixture(rel), &mp, &m, &err) != UM_OK)
        fail_msg("opening %s: %s", rel, err.msg);
    return m;
}

const um_st_tensor *st_tensor(const um_st_file *f, const char *name, um_dtype type) {
    const um_st_tensor *t = um_st_find(f, name);
    if (!t)
        fail_msg("%s: no tensor '%s'", f->path, name);
    assert_int_equal(t->dtype, type);
    return t;
}

/* ---- the LLaDA reference sampler's cases ---------------------------------- */

int record_step(const um_step_info *info, void *user) {
    commit_log *log = user;
    if (log->n_steps == log->cap) {
        log->cap = log->cap ? 2 * log->cap : 64;
        log->n_commits = realloc(log->n_commits, (size_t)log->cap * sizeof *log->n_commits);
        log->spans = realloc(log->spans, (size_t)log->cap * sizeof *log->spans);
    }
    log->spans[log->n_steps][0] = info->q0;
    log->spans[log->n_steps][1] = info->q1;
    log->n_commits[log->n_steps++] = info->n_committed;
    for (int i = 0; i < info->n_committed; i++) {
        if (log->n_pairs == log->cap_pairs) {
            log->cap_pairs = log->cap_pairs ? 2 * log->cap_pairs : 256;
            log->pairs = realloc(log->pairs, (size_t)log->cap_pairs * sizeof *log->pairs);
        }
        log->pairs[log->n_pairs][0] = info->committed_pos[i];
        log->pairs[log->n_pairs][1] = info->committed_tok[i];
        log->n_pairs++;
    }
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The reference lists each step's commits in no particular order: compare sets. */
void check_commits(const cJSON *want, const commit_log *log, const char *what) {
    assert_int_equal(cJSON_GetArraySize(want), log->n_steps);
    int offset = 0;
    for (int s = 0; s < log->n_steps; s++) {
        const cJSON *step = cJSON_GetArrayItem(want, s);
        int n = cJSON_GetArraySize(step);
        if (n != log->n_commits[s])
            fail_msg("%s: step %d commits %d tokens, reference %d", what, s, log->n_commits[s], n);
        int32_t(*ref)[2] = malloc((size_t)(n ? n : 1) * sizeof *ref);
        int32_t(*got)[2] = malloc((size_t)(n ? n : 1) * sizeof *got);
        for (int i = 0; i < n; i++) {
            const cJSON *pair = cJSON_GetArrayItem(step, i);
            ref[i][0] = (int32_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
            ref[i][1] = (int32_t)cJSON_GetArrayItem(pair, 1)->valuedouble;
            got[i][0] = log->pairs[offset + i][0];
            got[i][1] = log->pairs[offset + i][1];
        }
        qsort(ref, (size_t)n, sizeof *ref, cmp_pair);
        qsort(got, (size_t)n, sizeof *got, cmp_pair);
        if (n && memcmp(ref, got, (size_t)n * sizeof *ref) != 0)
            fail_msg("%s: step %d commits differ from the reference", what, s);
        free(ref);
        free(got);
        offset += n;
    }
}

static bool json_flag(const cJSON *params, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, key));
}

static double json_number(const cJSON *params, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void expect_reference_exact(const reference_run *run, void *user) {
    const um_generation *g = run->gen;
    assert_int_equal(g->n_tokens, run->n_want);
    if (memcmp(g->tokens, run->want, (size_t)run->n_want * sizeof *run->want) != 0)
        fail_msg("%s: output differs from the reference", run->what);
    assert_int_equal(g->nfe, run->want_nfe);
    check_commits(cJSON_GetObjectItem(run->json, "commits_per_step"), run->log, run->what);
    print_message("    %s: output, nfe %d and commits match\n", run->what, g->nfe);
}

/* The case's sampler settings as um_generate parameters. */
static um_generate_params case_params(const cJSON *c) {
    const cJSON *params = cJSON_GetObjectItem(c, "params");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "remasking")), "low_confidence");
    assert_true(json_number(c, "temperature", -1) == 0.0);
    um_generate_params p = um_generate_default_params();
    p.steps = (int)json_number(params, "steps", 0);
    p.gen_length = (int)json_number(params, "gen_length", 0);
    p.block_length = (int)json_number(params, "block_length", 0);
    p.cfg_scale = json_number(params, "cfg_scale", 0);
    p.logits_eos_inf = json_flag(params, "logits_eos_inf");
    p.confidence_eos_eot_inf = json_flag(params, "confidence_eos_eot_inf");
    return p;
}

void check_spans(const cJSON *want, const commit_log *log, const char *what) {
    assert_int_equal(cJSON_GetArraySize(want), log->n_steps);
    for (int s = 0; s < log->n_steps; s++) {
        const cJSON *span = cJSON_GetArrayItem(want, s);
        int q0 = cJSON_GetArrayItem(span, 0)->valueint, q1 = cJSON_GetArrayItem(span, 1)->valueint;
        if (q0 != log->spans[s][0] || q1 != log->spans[s][1])
            fail_msg("%s: forward %d computed [%d, %d), reference [%d, %d)", what, s, log->spans[s][0],
                     log->spans[s][1], q0, q1);
    }
}

static void check_output_nfe(const reference_run *run) {
    const um_generation *g = run->gen;
    assert_int_equal(g->n_tokens, run->n_want);
    if (memcmp(g->tokens, run->want, (size_t)run->n_want * sizeof *run->want) != 0)
        fail_msg("%s: output differs from the reference", run->what);
    if (g->nfe != run->want_nfe)
        fail_msg("%s: nfe %d, reference %d", run->what, g->nfe, run->want_nfe);
}

void expect_dinfer_exact(const reference_run *run, void *user) {
    const um_generation *g = run->gen;
    check_output_nfe(run);
    check_spans(cJSON_GetObjectItem(run->json, "forward_spans"), run->log, run->what);
    check_commits(cJSON_GetObjectItem(run->json, "commits_per_step"), run->log, run->what);
    print_message("    %s: output, nfe %d, forward spans and commits match\n", run->what, g->nfe);
}

/* `unmask run -m dir --prompt-tokens prompt flags --json` gives the case's
 * upstream output and NFE exactly. */
void expect_run_matches(const char *model, const char *dir, const char *prompt, const char *flags,
                               const cJSON *c) {
    cmd_result r = run_unmask("run -m %s --prompt-tokens %s %s -t 2 --json", fixture(dir), prompt, flags);
    if (r.status != 0)
        fail_msg("run %s: exit %d: %s", flags, r.status, r.err);
    cJSON *out = cJSON_Parse(r.out);
    assert_non_null(out);
    const cJSON *want = cJSON_GetObjectItem(c, "output"), *got = cJSON_GetObjectItem(out, "tokens");
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    for (int i = 0; i < cJSON_GetArraySize(want); i++)
        if (cJSON_GetArrayItem(got, i)->valueint != cJSON_GetArrayItem(want, i)->valueint)
            fail_msg("%s run %s: token %d differs", model, flags, i);
    int nfe = cJSON_GetObjectItem(out, "nfe")->valueint, want_nfe = cJSON_GetObjectItem(c, "nfe")->valueint;
    if (nfe != want_nfe)
        fail_msg("%s run %s: nfe %d, reference %d", model, flags, nfe, want_nfe);
    print_message("    %s run %s: output and nfe %d match\n", model, flags, nfe);
    cJSON_Delete(out);
    cmd_result_free(&r);
}

void expect_output_nfe(const reference_run *run, void *user) {
    const um_generation *g = run->gen;
    check_output_nfe(run);
    print_message("    %s: output and nfe %d match\n", run->what, g->nfe);
}

/* Fast-dLLM's function: which cache it uses. */
static um_cache_mode case_cache(const cJSON *params) {
    const char *fn = cJSON_GetStringValue(cJSON_GetObjectItem(params, "fn"));
    if (fn && strcmp(fn, "generate_with_prefix_cache") == 0)
        return UM_CACHE_PREFIX;
    if (fn && strcmp(fn, "generate_with_dual_cache") == 0)
        return UM_CACHE_DUAL;
    assert_true(!fn || strcmp(fn, "generate") == 0);
    return UM_CACHE_NONE;
}

/* dInfer's case: its class, decoder, cache and constructor arguments. */
static um_generate_params dinfer_params(const cJSON *c) {
    um_generate_params p = case_params(c);
    const cJSON *params = cJSON_GetObjectItem(c, "params"), *dargs = cJSON_GetObjectItem(params, "decoder_args");
    const char *cls = cJSON_GetStringValue(cJSON_GetObjectItem(params, "class"));
    const char *dec = cJSON_GetStringValue(cJSON_GetObjectItem(params, "decoder"));
    const char *cache = cJSON_GetStringValue(cJSON_GetObjectItem(params, "cache"));
    assert_non_null(cls);
    assert_non_null(dec);
    p.loop = UM_LOOP_DINFER;
    p.steps = 0;
    assert_true(json_number(dargs, "temperature", -1) == 0.0);
    if (strcmp(dec, "ThresholdParallelDecoder") == 0) {
        p.decoder = UM_DECODER_THRESHOLD;
    } else if (strcmp(dec, "CreditThresholdParallelDecoder") == 0) {
        p.decoder = UM_DECODER_CREDIT;
        p.credit_alpha = json_number(dargs, "credit_alpha", 0.7);
        p.credit_gamma = json_number(dargs, "boost_gamma", 0.2);
        p.credit_decay = json_number(dargs, "decay_beta", 0.8);
    } else {
        assert_string_equal(dec, "HierarchyDecoder");
        p.decoder = UM_DECODER_HIERARCHICAL;
        p.low_threshold = json_number(dargs, "low_threshold", 0.4);
    }
    p.threshold = json_number(dargs, "threshold", 0.9);
    p.maximum_unroll = (int)json_number(params, "maximum_unroll", 4);
    p.expected_tpf = (int)json_number(params, "expected_tpf", 8);
    p.start_block_align = json_flag(params, "start_block_align");
    p.early_stop = json_flag(params, "early_stop");
    p.cache = !cache ? UM_CACHE_NONE : strcmp(cache, "prefix") == 0 ? UM_CACHE_PREFIX : UM_CACHE_DUAL;
    if (strstr(cls, "IterSmooth")) {
        p.iter_smooth = true;
        p.cont_weight = json_number(params, "cont_weight", 0.3);
        p.cont_weight_init = json_number(params, "cont_weight_init", 0.15);
        p.cont_weight_growth = json_number(params, "cont_weight_growth", 0.02);
        p.threshold_decay = json_number(params, "threshold_decay", 0.02);
    }
    if (strstr(cls, "Vicinity")) {
        p.cache = UM_CACHE_VICINITY;
        p.prefix_look = (int)json_number(params, "prefix_look", 0);
        p.after_look = (int)json_number(params, "after_look", 0);
        p.warmup_steps = (int)json_number(params, "warmup_steps", 0);
    }
    return p;
}

um_generate_params reference_case_params(const cJSON *c) {
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
    if (ref && strncmp(ref, DINFER_REFERENCE, strlen(DINFER_REFERENCE)) == 0)
        return dinfer_params(c);
    um_generate_params p = case_params(c);
    const cJSON *params = cJSON_GetObjectItem(c, "params");
    p.cache = case_cache(params);
    if (cJSON_IsNumber(cJSON_GetObjectItem(params, "threshold"))) {
        p.decoder = UM_DECODER_THRESHOLD;
        p.threshold = json_number(params, "threshold", 0);
    }
    assert_true(!cJSON_GetObjectItem(params, "factor"));
    return p;
}

void reference_case_flags(const cJSON *c, char *buf, size_t n) {
    static const char *const caches[] = {"none", "prefix", "dual", "vicinity"};
    um_generate_params p = reference_case_params(c);
    if (p.loop == UM_LOOP_DINFER) {
        static const char *const decoders[] = {[UM_DECODER_THRESHOLD] = "threshold", [UM_DECODER_HIERARCHICAL] =
                                               "hierarchical", [UM_DECODER_CREDIT] = "credit"};
        int k = snprintf(buf, n, "-n %d --block-length %d --cache %s --loop dinfer --decoder %s --threshold %.15g "
                         "--maximum-unroll %d --expected-tpf %d", p.gen_length, p.block_length, caches[p.cache],
                         decoders[p.decoder], p.threshold, p.maximum_unroll, p.expected_tpf);
        if (p.decoder == UM_DECODER_HIERARCHICAL)
            k += snprintf(buf + k, n - (size_t)k, " --low-threshold %.15g", p.low_threshold);
        if (p.decoder == UM_DECODER_CREDIT)
            k += snprintf(buf + k, n - (size_t)k, " --credit-alpha %.15g --credit-gamma %.15g --credit-decay %.15g",
                          p.credit_alpha, p.credit_gamma, p.credit_decay);
        if (p.start_block_align)
            k += snprintf(buf + k, n - (size_t)k, " --start-block-align");
        if (p.early_stop)
            k += snprintf(buf + k, n - (size_t)k, " --early-stop");
        if (p.iter_smooth)
            k += snprintf(buf + k, n - (size_t)k, " --iter-smooth --cont-weight %.15g --cont-weight-init %.15g "
                          "--cont-weight-growth %.15g --threshold-decay %.15g", p.cont_weight, p.cont_weight_init,
                          p.cont_weight_growth, p.threshold_decay);
        if (p.cache == UM_CACHE_VICINITY)
            snprintf(buf + k, n - (size_t)k, " --prefix-look %d --after-look %d --warmup-steps %d", p.prefix_look,
                     p.after_look, p.warmup_steps);
        return;
    }
    int k = snprintf(buf, n, "-n %d --steps %d --block-length %d --cache %s", p.gen_length, p.steps, p.block_length,
                     caches[p.cache]);
    if (p.cfg_scale > 0)
        k += snprintf(buf + k, n - (size_t)k, " --cfg-scale %.15g", p.cfg_scale);
    if (p.logits_eos_inf)
        k += snprintf(buf + k, n - (size_t)k, " --logits-eos-inf");
    if (p.confidence_eos_eot_inf)
        k += snprintf(buf + k, n - (size_t)k, " --confidence-eos-eot-inf");
    if (p.decoder == UM_DECODER_THRESHOLD)
        snprintf(buf + k, n - (size_t)k, " --decoder threshold --threshold %.15g", p.threshold);
    else
        snprintf(buf + k, n - (size_t)k, " --decoder topk");
}

void reference_case_prepare(reference_case *rc, const um_model *m, const cJSON *c, const char *model,
                            const char *label) {
    memset(rc, 0, sizeof *rc);
    um_model_info info;
    um_model_get_info(m, &info);
    assert_int_equal((int)json_number(c, "mask_id", -1), info.mask_id);
    assert_int_equal((int)json_number(c, "eos_id", -1), info.eos_id);
    assert_int_equal((int)json_number(c, "eot_id", -1), info.eot_id);
    rc->p = reference_case_params(c);
    rc->p.on_step = record_step;
    rc->p.user_data = &rc->log;
    rc->run = (reference_run){.json = c, .log = &rc->log, .mask_id = info.mask_id, .what = rc->what};
    rc->prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &rc->n_prompt);
    rc->want = json_int_array(cJSON_GetObjectItem(c, "output"), &rc->run.n_want);
    rc->run.want = rc->want;
    rc->run.want_nfe = (int)json_number(c, "nfe", -1);
    static const char *const caches[] = {"none", "prefix", "dual", "vicinity"};
    const um_generate_params *p = &rc->p;
    if (p->loop == UM_LOOP_DINFER) {
        const cJSON *params = cJSON_GetObjectItem(c, "params");
        snprintf(rc->what, sizeof rc->what, "%s/%s %s + %s cache %s threshold %g align %d", model, label,
                 cJSON_GetStringValue(cJSON_GetObjectItem(params, "class")),
                 cJSON_GetStringValue(cJSON_GetObjectItem(params, "decoder")), caches[p->cache], p->threshold,
                 p->start_block_align);
        return;
    }
    snprintf(rc->what, sizeof rc->what, "%s/%s steps %d gen %d block %d cfg %g eos_inf %d cache %s threshold %g",
             model, label, p->steps, p->gen_length, p->block_length, p->cfg_scale, p->logits_eos_inf,
             caches[p->cache], p->decoder == UM_DECODER_THRESHOLD ? p->threshold : 0.0);
}

void commit_log_free(commit_log *log) {
    free(log->n_commits);
    free(log->spans);
    free(log->pairs);
    memset(log, 0, sizeof *log);
}

void reference_case_free(reference_case *rc) {
    free(rc->prompt);
    free(rc->want);
    commit_log_free(&rc->log);
}

static void run_case(um_model *m, const cJSON *c, const char *model, const char *label, reference_check_fn check,
                     void *user) {
    reference_case rc;
    reference_case_prepare(&rc, m, c, model, label);
    um_generation g;
    um_error err;
    if (t_generate(m, rc.prompt, rc.n_prompt, &rc.p, &g, &err) != UM_OK)
        fail_msg("%s: %s", rc.what, err.msg);
    rc.run.gen = &g;
    check(&rc.run, user);
    um_generation_free(&g);
    reference_case_free(&rc);
}

int run_reference_cases_from(um_model *m, const char *model, const char *label, const char *reference_prefix,
                             reference_check_fn check, void *user) {
    cJSON *root = load_reference(model);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strncmp(ref, reference_prefix, strlen(reference_prefix)) != 0)
            continue;
        run_case(m, c, model, label, check, user);
        n++;
    }
    cJSON_Delete(root);
    return n;
}

int run_reference_cases(um_model *m, const char *model, const char *label, reference_check_fn check, void *user) {
    return run_reference_cases_from(m, model, label, LLADA_REFERENCE, check, user);
}

double max_rel_error(const float *ours, const float *ref, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        if (!(d <= max_diff))
            max_diff = d; /* NaN propagates */
        if (fabs(ref[i]) > max_ref)
            max_ref = fabs(ref[i]);
    }
    return max_diff / max_ref;
}

const cJSON *find_reference_case(const cJSON *root, int steps, int block, double cfg) {
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const cJSON *p = cJSON_GetObjectItem(c, "params");
        const cJSON *cf = cJSON_GetObjectItem(p, "cfg_scale");
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (ref && strcmp(ref, LLADA_REFERENCE) == 0 && cJSON_GetObjectItem(p, "steps")->valueint == steps &&
            cJSON_GetObjectItem(p, "block_length")->valueint == block && (cf ? cf->valuedouble : 0) == cfg &&
            !cJSON_GetObjectItem(p, "logits_eos_inf"))
            return c;
    }
    fail_msg("no reference case steps %d block %d cfg %g", steps, block, cfg);
    return NULL;
}

char *json_ids_csv(const cJSON *arr) {
    char *s = calloc(1, 8192);
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) snprintf(s + strlen(s), 8192 - strlen(s), "%s%d", *s ? "," : "", v->valueint);
    return s;
}

um_status t_forward(const um_model *m, const int32_t *tokens, int n_rows, int seq_len, float *logits, um_error *err) {
    um_context *ctx;
    um_status s = um_context_create(m, NULL, &ctx, err);
    if (s == UM_OK)
        s = um_forward(ctx, tokens, n_rows, seq_len, logits, err);
    um_context_free(ctx);
    return s;
}

um_status t_generate(const um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                     um_generation *out, um_error *err) {
    um_context *ctx;
    um_status s = um_context_create(m, NULL, &ctx, err);
    if (s == UM_OK)
        s = um_generate(ctx, prompt, n_prompt, p, out, err);
    um_context_free(ctx);
    return s;
}

const um_exec *exec_now(um_pool *pool) {
    static um_exec ex;
    ex = um_exec_defaults(pool);
    return &ex;
}

/* ---- GGUF files compared --------------------------------------------------- */

/* Whether a general.* key is gguf-py's naming of the model from its folder
 * (name, basename, finetune, size label): metadata, not the model. */
static bool naming_key(const char *key) {
    return strncmp(key, "general.", 8) == 0 && strcmp(key, "general.architecture") != 0 &&
           strcmp(key, "general.file_type") != 0 && strcmp(key, "general.quantization_version") != 0;
}

/* Two GGUF files hold the same keys and values in the same order (naming
 * aside), the same tensors (name, type, shape, offset) and the same data. */
void expect_same_gguf(const char *ours, const char *theirs) {
    um_gguf_file a, b;
    um_error err;
    if (um_gguf_open(ours, &a, &err) != UM_OK || um_gguf_open(theirs, &b, &err) != UM_OK)
        fail_msg("%s", err.msg);
    size_t i = 0, j = 0;
    for (;; i++, j++) {
        while (i < a.n_kv && naming_key(a.kvs[i].key))
            i++;
        while (j < b.n_kv && naming_key(b.kvs[j].key))
            j++;
        if (i == a.n_kv || j == b.n_kv)
            break;
        if (strcmp(a.kvs[i].key, b.kvs[j].key) != 0 || a.kvs[i].type != b.kvs[j].type ||
            a.kvs[i].value_size != b.kvs[j].value_size ||
            memcmp(a.kvs[i].value, b.kvs[j].value, a.kvs[i].value_size) != 0)
            fail_msg("%s: key %zu is %s, llama.cpp's %s (or their values differ)", ours, i, a.kvs[i].key, b.kvs[j].key);
    }
    assert_true(i == a.n_kv && j == b.n_kv);
    assert_int_equal(a.n_tensors, b.n_tensors);
    for (size_t t = 0; t < a.n_tensors; t++) {
        const um_gguf_tensor *x = &a.tensors[t], *y = &b.tensors[t];
        if (strcmp(x->name, y->name) != 0 || x->ggml_type != y->ggml_type || x->n_dims != y->n_dims ||
            memcmp(x->ne, y->ne, sizeof x->ne) != 0 || x->offset != y->offset || x->nbytes != y->nbytes ||
            memcmp(x->data, y->data, x->nbytes) != 0)
            fail_msg("%s: tensor %zu (%s) differs from llama.cpp's %s", ours, t, x->name, y->name);
    }
    um_gguf_close(&a);
    um_gguf_close(&b);
}
