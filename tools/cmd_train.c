/* unmask train: pre-training or SFT of a small LLaDA model with the
 * masked-diffusion objective (src/train), writing checkpoints `unmask run`
 * loads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/sys.h"
#include "cli.h"
#include "format/json.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"

static void train_usage(void) {
    puts("usage: unmask train -m MODEL_DIR (--data FILE | --sft FILE.jsonl) -o OUT_DIR [options]\n"
         "\n"
         "Train a (small) LLaDA model with the masked-diffusion objective, in f32 on the CPU's\n"
         "matmul kernels and threads.\n"
         "Checkpoints are Hugging Face directories (config.json, model.safetensors in F32, the\n"
         "tokenizer files) that `unmask run -m OUT_DIR` loads, plus optimizer.safetensors for --resume.\n"
         "\n"
         "  -m, --model DIR     the model to start from (a Hugging Face directory, e.g. made by\n"
         "                      `unmask init-random --preset tiny --dtype f32`)\n"
         "  --tokenizer PATH    tokenizer.json or a directory holding one (default: MODEL_DIR)\n"
         "  --data FILE         pre-training text: documents split at --doc-sep, packed into rows\n"
         "                      with EOS between documents\n"
         "  --doc-sep STR       document separator (default <|endoftext|>; \\n is a newline,\n"
         "                      so '\\n\\n' splits at blank lines)\n"
         "  --sft FILE          SFT: JSONL lines {\"prompt\": ..., \"response\": ...}; prompt positions\n"
         "                      are never masked, rows padded with EOS\n"
         "  --chat              SFT: wrap prompts in the model's chat template (default: raw text)\n"
         "  --val FILE          validation data (same kind as the training data)\n"
         "  --seq-len N         row length in tokens (default 128)\n"
         "  --random-length P   pre-training: the share of micro-batches cut to a random length\n"
         "                      in [1, N], so that short canvases are seen too (LLaDA: 0.01;\n"
         "                      default 0)\n"
         "  --batch N           rows per micro-batch (default 4)\n"
         "  --accum N           micro-batches per update (default 1)\n"
         "  --steps N           updates (default 100)\n"
         "  --lr X              peak learning rate (default 1e-3)\n"
         "  --warmup N          linear warm-up updates, then cosine decay to lr/10 (default steps/10)\n"
         "  --weight-decay X    AdamW decoupled weight decay of matrices (default 0.1)\n"
         "  --clip X            global gradient-norm clip, 0: none (default 1.0)\n"
         "  --eval-every N      validation loss every N updates (default: at the end)\n"
         "  --save-every N      checkpoint every N updates (default: at the end)\n"
         "  -o, --output DIR    where checkpoints go\n"
         "  --resume DIR        continue from a checkpoint's weights, optimizer state and step\n"
         "                      (pass the same data and flags; -m and -o default to DIR)\n"
         "  -s, --seed N        seed of the row order and the masks (default 0)\n"
         "  -t, --threads N     worker threads (default: one per physical core); the result does\n"
         "                      not depend on it\n"
         "  -h, --help          this help\n"
         "\n"
         "A progress line per update goes to stderr: step, loss, learning rate, gradient norm,\n"
         "tokens/s and ETA.");
}

/* A whole file (training text can be large: up to 4 GiB), or NULL after an error message. */
static char *read_all(const char *path, size_t *len) {
    char *text;
    um_error err;
    if (um_read_file(path, (size_t)4 << 30, &text, len, &err) != UM_OK) {
        cli_error("train", "%s", err.msg);
        return NULL;
    }
    return text;
}

/* Copies from to to; false when from cannot be read (quietly). */
static bool copy_file_quiet(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in)
        return false;
    FILE *out = fopen(to, "wb");
    bool ok = out != NULL;
    char buf[65536];
    for (size_t n; ok && (n = fread(buf, 1, sizeof buf, in)) > 0;)
        ok = fwrite(buf, 1, n, out) == n;
    fclose(in);
    if (out && fclose(out) != 0)
        ok = false;
    return ok;
}

/* The tokenizer's files beside the checkpoint, so `unmask run -m DIR -p TEXT` works. */
static void copy_tokenizer(const char *tok_path, const char *dir) {
    struct stat st;
    char src[4096], dst[4096];
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    bool is_dir = stat(tok_path, &st) == 0 && S_ISDIR(st.st_mode);
    char base[4096];
    snprintf(base, sizeof base, "%s", tok_path);
    if (!is_dir) {
        char *slash = strrchr(base, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(base, sizeof base, ".");
    }
    for (int i = 0; i < 3; i++) {
        if (i == 0 && !is_dir)
            snprintf(src, sizeof src, "%s", tok_path);
        else
            snprintf(src, sizeof src, "%s/%s", base, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (strcmp(src, dst) != 0)
            copy_file_quiet(src, dst);
    }
}

static bool load_data(um_tokenizer *t, const um_model *m, const char *path, bool sft, bool chat, const char *sep,
                      int seq, um_train_data *d) {
    size_t len;
    char *text = read_all(path, &len);
    if (!text)
        return false;
    um_error err;
    um_status s;
    if (sft) {
        um_chat_format fmt;
        s = chat ? um_chat_select(t, NULL, &fmt, NULL, 0, &err) : UM_OK;
        if (s == UM_OK)
            s = um_train_data_sft(t, text, len, chat ? &fmt : NULL, m->hp.eos_id, seq, d, &err);
    } else {
        s = um_train_data_text(t, text, len, sep, m->hp.eos_id, seq, d, &err);
    }
    free(text);
    if (s != UM_OK)
        cli_error("train", "%s: %s", path, err.msg);
    return s == UM_OK;
}

/* The run's shape, kept beside a checkpoint so that --resume can say when
 * it goes on differently: DIR/training.json. */
typedef struct {
    int batch, accum, seq;
} run_shape;

static void save_shape(const char *dir, run_shape r) {
    char path[4096];
    snprintf(path, sizeof path, "%s/training.json", dir);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fprintf(fp, "{\"batch\": %d, \"accum\": %d, \"seq_len\": %d}\n", r.batch, r.accum, r.seq);
        fclose(fp);
    }
}

/* Warns, naming each, when a resumed run's batch, accumulation or sequence
 * length differ from the checkpoint's run (the schedule and the loss
 * curve are then not those of one run). */
static void check_resumed_shape(const char *dir, run_shape now) {
    char path[4096];
    snprintf(path, sizeof path, "%s/training.json", dir);
    cJSON *j;
    if (!um_file_exists(path) || um_json_load(path, 1 << 16, &j, NULL) != UM_OK)
        return;
    const char *keys[] = {"batch", "accum", "seq_len"}, *flags[] = {"--batch", "--accum", "--seq-len"};
    int values[] = {now.batch, now.accum, now.seq};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        if (cJSON_IsNumber(v) && v->valueint != values[i])
            fprintf(stderr, "unmask train: warning: %s %d differs from the %d the checkpoint in %s was trained with\n",
                    flags[i], values[i], v->valueint, dir);
    }
    cJSON_Delete(j);
}

static bool save(const um_trainer *tr, const char *config, const char *tok_path, const char *dir, run_shape r) {
    um_error err;
    if (um_trainer_save(tr, config, dir, &err) != UM_OK) {
        cli_error("train", "%s", err.msg);
        return false;
    }
    save_shape(dir, r);
    copy_tokenizer(tok_path, dir);
    fprintf(stderr, "train: step %d: saved %s\n", tr->step, dir);
    return true;
}

int cmd_train(int argc, char **argv) {
    cli_args a;
    const char *model_dir = NULL, *tok_path = NULL, *data_path = NULL, *sft_path = NULL, *val_path = NULL;
    const char *out_dir = NULL, *resume_dir = NULL, *sep_arg = NULL;
    bool chat = false;
    int seq = 128, eval_every = 0, save_every = 0, warmup = -1, threads = 0;
    um_train_config c = {um_adamw_default_config(), 4, 1, 1e-3, 0, 0};
    c.opt.total_steps = 100;
    cli_init(&a, "train", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            train_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model_dir = cli_value(&a);
        else if (cli_is(&a, NULL, "--tokenizer")) tok_path = cli_value(&a);
        else if (cli_is(&a, NULL, "--data")) data_path = cli_value(&a);
        else if (cli_is(&a, NULL, "--sft")) sft_path = cli_value(&a);
        else if (cli_is(&a, NULL, "--doc-sep")) sep_arg = cli_value(&a);
        else if (cli_is(&a, NULL, "--chat")) chat = true;
        else if (cli_is(&a, NULL, "--val")) val_path = cli_value(&a);
        else if (cli_is(&a, NULL, "--seq-len")) seq = cli_int(&a, 2, 1 << 20);
        else if (cli_is(&a, NULL, "--random-length")) c.random_length = cli_double(&a, 0, 1);
        else if (cli_is(&a, NULL, "--batch")) c.batch = cli_int(&a, 1, 1 << 16);
        else if (cli_is(&a, NULL, "--accum")) c.accum = cli_int(&a, 1, 1 << 16);
        else if (cli_is(&a, NULL, "--steps")) c.opt.total_steps = cli_int(&a, 1, 1 << 30);
        else if (cli_is(&a, NULL, "--lr")) c.opt.lr = cli_double(&a, 0, 10);
        else if (cli_is(&a, NULL, "--warmup")) warmup = cli_int(&a, 0, 1 << 30);
        else if (cli_is(&a, NULL, "--weight-decay")) c.opt.weight_decay = cli_double(&a, 0, 10);
        else if (cli_is(&a, NULL, "--clip")) c.opt.clip = cli_double(&a, 0, 1e30);
        else if (cli_is(&a, NULL, "--eval-every")) eval_every = cli_int(&a, 0, 1 << 30);
        else if (cli_is(&a, NULL, "--save-every")) save_every = cli_int(&a, 0, 1 << 30);
        else if (cli_is(&a, "-o", "--output")) out_dir = cli_value(&a);
        else if (cli_is(&a, NULL, "--resume")) resume_dir = cli_value(&a);
        else if (cli_is(&a, "-s", "--seed")) c.seed = cli_u64(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (!model_dir)
        model_dir = resume_dir;
    if (!out_dir)
        out_dir = resume_dir;
    if (!tok_path)
        tok_path = model_dir;
    if (!model_dir || !out_dir || (!data_path == !sft_path)) {
        cli_error("train", "need -m MODEL_DIR (or --resume DIR), one of --data FILE and --sft FILE, and -o OUT_DIR");
        return 2;
    }
    if (sft_path && c.random_length > 0) {
        cli_error("train", "--random-length is for pre-training (--data): an SFT row cut short could lose its answer");
        return 2;
    }
    c.opt.warmup = warmup >= 0 ? warmup : c.opt.total_steps / 10;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    size_t config_len;
    char *config = read_all(path, &config_len);
    if (!config) {
        cli_error("train", "-m needs a Hugging Face model directory with config.json");
        return 1;
    }
    int n_threads = threads > 0 ? threads : um_physical_core_count();
    um_model *m = cli_open_model("train", model_dir, n_threads, CLI_MODEL_NO_REPACK); /* its line shows the training threads */
    um_tokenizer *t = NULL;
    um_train_data d = {0}, val = {0};
    um_trainer tr = {0};
    char *sep = sep_arg ? cli_unescape(sep_arg) : NULL;
    um_error err;
    int rc = 1;
    if (!m)
        goto done;
    if (seq > m->hp.max_seq) {
        cli_error("train", "--seq-len %d exceeds the model's %d", seq, m->hp.max_seq);
        goto done;
    }
    if (m->hp.mask_id < 0 || m->hp.eos_id < 0) {
        cli_error("train", "the model's config names no mask or EOS token id");
        goto done;
    }
    if (!tok_path || um_tokenizer_load(tok_path, &t, &err) != UM_OK) {
        cli_error("train", "tokenizer: %s", tok_path ? err.msg : "none: give --tokenizer tokenizer.json");
        goto done;
    }
    if (um_tokenizer_n_vocab(t) > m->hp.n_vocab) {
        cli_error("train", "the tokenizer %s has %d tokens, more than the %d rows of the model's embedding (%s)",
                  tok_path, um_tokenizer_n_vocab(t), m->hp.n_vocab, model_dir);
        goto done;
    }
    if (resume_dir)
        check_resumed_shape(resume_dir, (run_shape){c.batch, c.accum, seq});
    if (!load_data(t, m, data_path ? data_path : sft_path, !data_path, chat, sep, seq, &d) ||
        (val_path && !load_data(t, m, val_path, !data_path, chat, sep, seq, &val)))
        goto done;
    if (um_trainer_init(&tr, m, n_threads, &err) != UM_OK ||
        (resume_dir && um_trainer_resume(&tr, resume_dir, &err) != UM_OK)) {
        cli_error("train", "%s", err.msg);
        goto done;
    }
    fprintf(stderr, "train: %d rows of %d tokens%s; %d validation rows; batch %d x %d accumulated; %d steps%s\n",
            d.n_rows, seq, d.prompt_lengths ? " (SFT)" : "", val.n_rows, c.batch, c.accum, c.opt.total_steps,
            resume_dir ? "" : "");
    if (resume_dir)
        fprintf(stderr, "train: resuming %s at step %d\n", resume_dir, tr.step);
    double t0 = um_now();
    int start = tr.step;
    double tokens0 = tr.tokens;
    rc = 0;
    while (tr.step < c.opt.total_steps) {
        double loss, norm;
        if (um_trainer_step(&tr, &c, &d, &loss, &norm, &err) != UM_OK) {
            cli_error("train", "%s", err.msg);
            rc = 1;
            break;
        }
        double el = um_now() - t0, per = el / (tr.step - start);
        double tok = tr.tokens - tokens0;
        int eta = (int)(per * (c.opt.total_steps - tr.step) + 0.5);
        fprintf(stderr, "step %d/%d  loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  ETA %d:%02d:%02d\n", tr.step,
                c.opt.total_steps, loss, um_lr_at(&c.opt, tr.step), norm, tok / el, eta / 3600, eta / 60 % 60,
                eta % 60);
        bool last = tr.step == c.opt.total_steps;
        if (val.n_rows && ((eval_every && tr.step % eval_every == 0) || last)) {
            double vl;
            if (um_train_eval(tr.pool, &tr.p, &val, c.seed, c.mask_eps, 0, &vl, &err) != UM_OK) {
                cli_error("train", "%s", err.msg);
                rc = 1;
                break;
            }
            fprintf(stderr, "step %d/%d  validation loss %.4f\n", tr.step, c.opt.total_steps, vl);
        }
        if ((save_every && tr.step % save_every == 0) || last)
            if (!save(&tr, config, tok_path, out_dir, (run_shape){c.batch, c.accum, seq})) {
                rc = 1;
                break;
            }
    }
    if (rc == 0 && tr.step == start)
        fprintf(stderr, "train: already at step %d of %d; nothing to do\n", tr.step, c.opt.total_steps);
done:
    um_trainer_free(&tr);
    um_train_data_free(&d);
    um_train_data_free(&val);
    um_tokenizer_free(t);
    if (m)
        um_model_close(m);
    free(config);
    free(sep);
    return rc;
}
