/* The training loop: AdamW against its closed form, the schedule, masking
 * statistics, data, determinism, loss going down on the tiny fixture, a
 * checkpoint that loads and generates, resume == uninterrupted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

static void adamw_closed_form(void **state) {
    um_hparams hp = {.n_layers = 1, .d_model = 4, .n_heads = 1, .n_kv_heads = 1, .head_dim = 4, .d_ff = 4,
                     .n_vocab = 8, .max_seq = 8, .norm_eps = 1e-5f, .rope_theta = 10000, .mask_id = 7};
    um_train_params p, g, m, v;
    um_error err;
    assert_int_equal(um_train_params_init(&p, &hp, &err), UM_OK);
    assert_int_equal(um_train_params_init(&g, &hp, &err), UM_OK);
    assert_int_equal(um_train_params_init(&m, &hp, &err), UM_OK);
    assert_int_equal(um_train_params_init(&v, &hp, &err), UM_OK);
    for (int i = 0; i < p.n_tensors; i++)
        for (int64_t j = 0; j < p.tensors[i].numel; j++) {
            p.tensors[i].data[j] = (float)(0.5 + 0.01 * (double)j);
            g.tensors[i].data[j] = (float)(0.1 * sin((double)(i * 7 + j)));
        }
    um_adamw_config c = um_adamw_default_config();
    c.lr = 0.01;
    c.weight_decay = 0.1;
    /* step 1 and step 2 with the same gradient, by the PyTorch docs' formula */
    for (int step = 1; step <= 2; step++) {
        um_adamw_step(&p, &g, &m, &v, &c, step, c.lr);
    }
    for (int i = 0; i < p.n_tensors; i++)
        for (int64_t j = 0; j < p.tensors[i].numel; j++) {
            double w = 0.5 + 0.01 * (double)j, gg = 0.1 * sin((double)(i * 7 + j)), mm = 0, vv = 0;
            double wd = p.tensors[i].n_dims == 2 ? c.weight_decay : 0;
            for (int t = 1; t <= 2; t++) {
                w -= c.lr * wd * w;
                mm = c.beta1 * mm + (1 - c.beta1) * gg;
                vv = c.beta2 * vv + (1 - c.beta2) * gg * gg;
                double mh = mm / (1 - pow(c.beta1, t)), vh = vv / (1 - pow(c.beta2, t));
                w -= c.lr * mh / (sqrt(vh) + c.eps);
            }
            assert_true(fabs(p.tensors[i].data[j] - w) < 1e-6); /* f32 parameters and moments */
        }
    /* first step: the update is lr * sign(g) (plus decay) when |g| >> eps */
    double g0 = 0.1 * sin(1.0);
    assert_true(fabs(g0) > 1e-3);
    /* clipping scales to the clip norm */
    double norm = um_clip_grad_norm(&g, 0.01);
    assert_true(norm > 0.01);
    assert_true(fabs(um_clip_grad_norm(&g, 0) - 0.01 * norm / (norm + 1e-6)) < 1e-8);
    um_train_params_free(&p);
    um_train_params_free(&g);
    um_train_params_free(&m);
    um_train_params_free(&v);
}

static void schedule(void **state) {
    um_adamw_config c = um_adamw_default_config();
    c.lr = 3e-3;
    c.warmup = 10;
    c.total_steps = 110;
    c.min_lr_ratio = 0.1;
    assert_true(fabs(um_lr_at(&c, 1) - 3e-4) < 1e-15);
    assert_true(fabs(um_lr_at(&c, 10) - 3e-3) < 1e-15);
    assert_true(fabs(um_lr_at(&c, 60) - (3e-4 + 2.7e-3 * 0.5)) < 1e-15); /* half-way down the cosine */
    assert_true(fabs(um_lr_at(&c, 110) - 3e-4) < 1e-15);
    assert_true(um_lr_at(&c, 11) < 3e-3 && um_lr_at(&c, 11) > um_lr_at(&c, 12));
}

static void masking(void **state) {
    enum { ROWS = 4000, SEQ = 64 };
    int32_t *x0 = calloc(ROWS * SEQ, sizeof *x0), *noisy = malloc(ROWS * SEQ * sizeof *noisy);
    int32_t *pl = malloc(ROWS * sizeof *pl);
    double *pm = malloc(ROWS * SEQ * sizeof *pm), eps = 1e-3;
    um_mdm_mask(7, 3, ROWS, SEQ, x0, NULL, 99, eps, noisy, pm);
    double sum_p = 0, sum_rate = 0, dev = 0, min_p = 1, max_p = 0;
    for (int r = 0; r < ROWS; r++) {
        int n = 0;
        for (int i = 0; i < SEQ; i++) {
            assert_true(pm[r * SEQ + i] == pm[r * SEQ]);
            n += noisy[r * SEQ + i] == 99;
            assert_true(noisy[r * SEQ + i] == 99 || noisy[r * SEQ + i] == 0);
        }
        double p = pm[r * SEQ], rate = (double)n / SEQ;
        min_p = fmin(min_p, p);
        max_p = fmax(max_p, p);
        sum_p += p;
        sum_rate += rate;
        dev += (rate - p) * (rate - p);
    }
    print_message("    masking: p_mask in [%.4f, %.4f], mean %.4f, masked rate %.4f, rms(rate - p) %.4f\n", min_p,
                  max_p, sum_p / ROWS, sum_rate / ROWS, sqrt(dev / ROWS));
    assert_true(min_p >= eps && max_p < 1);
    assert_true(min_p < 0.01 && max_p > 0.99);
    assert_true(fabs(sum_p / ROWS - 0.5) < 0.02);
    assert_true(fabs(sum_rate / ROWS - sum_p / ROWS) < 0.01);
    assert_true(sqrt(dev / ROWS) < 0.07); /* binomial: sqrt(p(1-p)/64) <= 0.0625 */
    /* low discrepancy: the batch's times t = (p - eps) / (1 - eps) fall one in
     * each of the ROWS intervals [k / ROWS, (k + 1) / ROWS) */
    char *hit = calloc(ROWS, 1);
    for (int r = 0; r < ROWS; r++) {
        int k = (int)((pm[r * SEQ] - eps) / (1 - eps) * ROWS);
        assert_true(k >= 0 && k < ROWS && !hit[k]);
        hit[k] = 1;
    }
    free(hit);
    /* SFT: prompt positions are never masked; the same seed gives the same masks */
    for (int r = 0; r < ROWS; r++)
        pl[r] = r % SEQ;
    um_mdm_mask(7, 3, ROWS, SEQ, x0, pl, 99, eps, noisy, pm);
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < pl[r]; i++)
            assert_int_equal(noisy[r * SEQ + i], 0);
    int32_t *again = malloc(ROWS * SEQ * sizeof *again);
    um_mdm_mask(7, 3, ROWS, SEQ, x0, pl, 99, eps, again, pm);
    assert_memory_equal(noisy, again, ROWS * SEQ * sizeof *again);
    free(again);
    free(x0);
    free(noisy);
    free(pl);
    free(pm);
}

static um_tokenizer *tiny_tokenizer(void) {
    um_tokenizer *t;
    um_error err;
    if (um_tokenizer_load(fixture("llada/tiny-llada/hf-f32-sharded/tokenizer.json"), &t, &err) != UM_OK)
        fail_msg("%s", err.msg);
    return t;
}

/* The first n bytes of the TinyStories head, cut at a document boundary. */
static char *stories(size_t n, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/../data/tinystories/hf_train_head_2MiB.txt", fixtures_dir());
    size_t size;
    char *text = read_whole_file(path, &size);
    assert_non_null(text);
    *len = n < size ? n : size;
    return text;
}

static void data(void **state) {
    um_tokenizer *t = tiny_tokenizer();
    um_error err;
    um_train_data d;
    const char *txt = "one two\n<|endoftext|>\n\n<|endoftext|>\nthree";
    assert_int_equal(um_train_data_text(t, txt, strlen(txt), NULL, 501, 4, &d, &err), UM_OK);
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(um_tokenizer_encode(t, "one two", 7, false, &a, &na, &err), UM_OK);
    assert_int_equal(um_tokenizer_encode(t, "three", 5, false, &b, &nb, &err), UM_OK);
    size_t total = na + nb + 2;
    assert_int_equal(d.n_rows, (int)((total + 3) / 4));
    assert_memory_equal(d.tokens, a, na * sizeof *a);
    assert_int_equal(d.tokens[na], 501);
    assert_memory_equal(d.tokens + na + 1, b, nb * sizeof *b);
    for (size_t i = na + nb + 1; i < (size_t)d.n_rows * 4; i++)
        assert_int_equal(d.tokens[i], 501);
    assert_null(d.prompt_lengths);
    um_train_data_free(&d);

    const char *jl = "{\"prompt\": \"one\", \"response\": \"two\"}\n\n{\"prompt\": \"three\", \"response\": \"one two three one two three\"}\n";
    assert_int_equal(um_train_data_sft(t, jl, strlen(jl), NULL, 501, 6, &d, &err), UM_OK);
    assert_int_equal(d.n_rows, 2);
    assert_non_null(d.prompt_lengths);
    assert_int_equal(d.tokens[5], 501); /* padded (or cut) with eos */
    assert_int_equal(d.tokens[11], 501);
    um_train_data_free(&d);
    const char *bad = "{\"prompt\": 1}\n";
    assert_int_equal(um_train_data_sft(t, bad, strlen(bad), NULL, 501, 6, &d, &err), UM_ERR_FORMAT);
    free(a);
    free(b);
    um_tokenizer_free(t);
}

typedef struct {
    um_model *m;
    um_tokenizer *t;
    um_train_data d, val;
    um_train_config c;
    char *config_json;
} loop_fixture;

static void loop_setup(loop_fixture *f) {
    f->m = open_fixture_model("tiny-llada", "hf-f32-sharded", 1);
    f->t = tiny_tokenizer();
    size_t len;
    char *text = stories(12000, &len);
    um_error err;
    if (um_train_data_text(f->t, text, len, NULL, f->m->hp.eos_id, 32, &f->d, &err) != UM_OK ||
        um_train_data_text(f->t, text + len, 3000, NULL, f->m->hp.eos_id, 32, &f->val, &err) != UM_OK)
        fail_msg("%s", err.msg);
    free(text);
    f->c = (um_train_config){um_adamw_default_config(), 4, 2, 1e-3, 42, 0};
    f->c.opt.lr = 3e-3;
    f->c.opt.warmup = 5;
    f->c.opt.total_steps = 30;
    size_t n;
    f->config_json = read_whole_file(fixture("llada/tiny-llada/hf-f32-sharded/config.json"), &n);
    f->config_json = realloc(f->config_json, n + 1);
    f->config_json[n] = 0;
}

static void loop_teardown(loop_fixture *f) {
    um_train_data_free(&f->d);
    um_train_data_free(&f->val);
    um_tokenizer_free(f->t);
    um_model_close(f->m);
    free(f->config_json);
}

static void run_steps(loop_fixture *f, um_trainer *tr, int until, double *first, double *last) {
    um_error err;
    while (tr->step < until) {
        double loss, norm;
        if (um_trainer_step(tr, &f->c, &f->d, &loss, &norm, &err) != UM_OK)
            fail_msg("%s", err.msg);
        assert_true(isfinite(loss) && isfinite(norm));
        if (first && tr->step == 1)
            *first = loss;
        if (last)
            *last = loss;
    }
}

/* Loss goes down; the checkpoint loads and generates; same seed, same bytes;
 * resume == uninterrupted. */
static void train_tiny(void **state) {
    loop_fixture f;
    loop_setup(&f);
    um_error err;
    um_trainer tr;
    assert_int_equal(um_trainer_init(&tr, f.m, 2, &err), UM_OK);
    double v0, v1;
    assert_int_equal(um_train_eval(tr.pool, &tr.p, &f.val, 1, 1e-3, 16, &v0, &err), UM_OK);
    double first = 0, last = 0;
    run_steps(&f, &tr, 30, &first, &last);
    assert_int_equal(um_train_eval(tr.pool, &tr.p, &f.val, 1, 1e-3, 16, &v1, &err), UM_OK);
    print_message("    %d rows of 32 tokens; train loss %.3f -> %.3f; validation %.3f -> %.3f after 30 steps\n",
                  f.d.n_rows, first, last, v0, v1);
    assert_true(v1 < v0 * 0.9);

    char *dir = make_temp_dir();
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    assert_int_equal(um_trainer_save(&tr, f.config_json, a, &err), UM_OK);

    /* the checkpoint loads with um_model_open and generates */
    um_model *m;
    if (um_model_open(a, NULL, &m, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_generate_params gp = um_generate_default_params();
    gp.gen_length = 16;
    gp.steps = 16;
    gp.block_length = 16;
    int32_t prompt[4] = {f.d.tokens[0], f.d.tokens[1], f.d.tokens[2], f.d.tokens[3]};
    um_generation gen;
    assert_int_equal(t_generate(m, prompt, 4, &gp, &gen, &err), UM_OK);
    assert_int_equal(gen.n_tokens, 20);
    for (int i = 4; i < 20; i++)
        assert_true(gen.tokens[i] != f.m->hp.mask_id);
    um_generation_free(&gen);
    /* its weights are ours, rounded to F32 */
    um_train_params q;
    assert_int_equal(um_train_params_from_model(&q, m, &err), UM_OK);
    for (int i = 0; i < q.n_tensors; i++)
        for (int64_t j = 0; j < q.tensors[i].numel; j++)
            assert_true(q.tensors[i].data[j] == (double)(float)tr.p.tensors[i].data[j]);
    um_train_params_free(&q);
    um_model_close(m);
    um_trainer_free(&tr);

    /* an interrupted run: 12 steps, saved, resumed into a fresh trainer, 18 more */
    assert_int_equal(um_trainer_init(&tr, f.m, 2, &err), UM_OK);
    run_steps(&f, &tr, 12, NULL, NULL);
    assert_int_equal(um_trainer_save(&tr, f.config_json, b, &err), UM_OK);
    um_trainer_free(&tr);
    assert_int_equal(um_trainer_init(&tr, f.m, 2, &err), UM_OK);
    assert_int_equal(um_trainer_resume(&tr, b, &err), UM_OK);
    assert_int_equal(tr.step, 12);
    run_steps(&f, &tr, 30, NULL, NULL);
    assert_int_equal(um_trainer_save(&tr, f.config_json, c, &err), UM_OK);
    um_trainer_free(&tr);
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int k = 0; k < 2; k++) {
        char pa[4200], pc[4200];
        snprintf(pa, sizeof pa, "%s/%s", a, files[k]);
        snprintf(pc, sizeof pc, "%s/%s", c, files[k]);
        size_t na, nc;
        void *da = read_whole_file(pa, &na), *dc = read_whole_file(pc, &nc);
        assert_int_equal(na, nc);
        assert_memory_equal(da, dc, na); /* determinism, and resume == uninterrupted */
        free(da);
        free(dc);
    }
    /* resuming from a directory without optimizer state fails cleanly */
    assert_int_equal(um_trainer_init(&tr, f.m, 2, &err), UM_OK);
    assert_int_not_equal(um_trainer_resume(&tr, dir, &err), UM_OK);
    um_trainer_free(&tr);
    remove_tree(dir);
    free(dir);
    loop_teardown(&f);
}


/* LLaDA's random lengths: a micro-batch cut to length L trains exactly as rows
 * of L tokens would (same loss, same updated weights); the lengths drawn stay
 * in [1, seq], vary, and about the asked share of micro-batches is cut. */
static void train_random_length(void **state) {
    loop_fixture f;
    loop_setup(&f);
    f.c.accum = 1;
    f.c.random_length = 1;
    um_error err;
    um_trainer cut, ref;
    assert_int_equal(um_trainer_init(&cut, f.m, 2, &err), UM_OK);
    assert_int_equal(um_trainer_init(&ref, f.m, 2, &err), UM_OK);
    double loss_cut, loss_ref, norm;
    assert_int_equal(um_trainer_step(&cut, &f.c, &f.d, &loss_cut, &norm, &err), UM_OK);
    int len = (int)(cut.tokens / f.c.batch);
    assert_true(len >= 1 && len <= f.d.seq && cut.tokens == (double)len * f.c.batch);
    /* the same rows' first len tokens as a data set of their own */
    um_train_data short_rows = {f.d.n_rows, len, malloc((size_t)f.d.n_rows * len * sizeof(int32_t)), NULL};
    for (int r = 0; r < f.d.n_rows; r++)
        memcpy(short_rows.tokens + (size_t)r * len, f.d.tokens + (size_t)r * f.d.seq, (size_t)len * sizeof(int32_t));
    um_train_config whole = f.c;
    whole.random_length = 0;
    assert_int_equal(um_trainer_step(&ref, &whole, &short_rows, &loss_ref, &norm, &err), UM_OK);
    print_message("    first micro-batch cut to %d of %d tokens: loss %.6f, rows of %d: %.6f\n", len, f.d.seq, loss_cut,
                  len, loss_ref);
    assert_true(loss_cut == loss_ref);
    for (int i = 0; i < cut.p.n_tensors; i++)
        assert_memory_equal(cut.p.tensors[i].data, ref.p.tensors[i].data,
                            (size_t)cut.p.tensors[i].numel * sizeof *cut.p.tensors[i].data);
    um_train_data_free(&short_rows);
    um_trainer_free(&ref);

    /* half the micro-batches cut, at lengths that differ */
    f.c.random_length = 0.5;
    f.c.opt.lr = 0; /* only the lengths matter here */
    int n_cut = 0, distinct = 0, seen[33] = {0};
    for (int k = 0; k < 40; k++) {
        double before = cut.tokens, loss;
        assert_int_equal(um_trainer_step(&cut, &f.c, &f.d, &loss, &norm, &err), UM_OK);
        int l = (int)((cut.tokens - before) / f.c.batch);
        assert_true(l >= 1 && l <= f.d.seq);
        n_cut += l < f.d.seq;
        distinct += !seen[l]++;
    }
    print_message("    random length 0.5: %d of 40 micro-batches cut, %d distinct lengths\n", n_cut, distinct);
    assert_true(n_cut >= 10 && n_cut <= 30 && distinct >= 5);
    um_trainer_free(&cut);
    loop_teardown(&f);
}

/* unmask train end to end: trains, saves, resumes; `unmask run` loads the checkpoint. */
static void train_cli(void **state) {
    char *dir = make_temp_dir();
    size_t len;
    char *text = stories(6000, &len), path[4096], out[4096];
    snprintf(path, sizeof path, "%s/train.txt", dir);
    write_file(path, text, len);
    free(text);
    snprintf(out, sizeof out, "%s/out", dir);
    const char *model = fixture("llada/tiny-llada/hf-f32-sharded");
    cmd_result r = run_unmask("train -m %s --data %s --val %s --seq-len 32 --batch 2 --steps 4 --save-every 2 "
                              "--eval-every 2 -o %s -s 3", model, path, path, out);
    if (r.status != 0)
        fail_msg("train: %s", r.err);
    assert_non_null(strstr(r.err, "step 4/4  loss "));
    assert_non_null(strstr(r.err, "tok/s  ETA "));
    assert_non_null(strstr(r.err, "validation loss"));
    cmd_result_free(&r);
    r = run_unmask("train --resume %s --data %s --seq-len 32 --batch 2 --steps 6", out, path);
    if (r.status != 0)
        fail_msg("train --resume: %s", r.err);
    assert_non_null(strstr(r.err, "resuming"));
    assert_non_null(strstr(r.err, "step 6/6"));
    assert_null(strstr(r.err, "step 4/6"));
    cmd_result_free(&r);
    r = run_unmask("run -m %s -p 'Once upon a time' -n 8", out);
    if (r.status != 0)
        fail_msg("run: %s", r.err);
    cmd_result_free(&r);
    r = run_unmask("train -m %s -o %s", model, out);
    assert_int_equal(r.status, 2);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(adamw_closed_form), cmocka_unit_test(schedule), cmocka_unit_test(masking),
    cmocka_unit_test(data),              cmocka_unit_test(train_tiny), cmocka_unit_test(train_random_length),
    cmocka_unit_test(train_cli),
};

const test_group train_loop_group = {"train_loop", tests, sizeof tests / sizeof *tests};
