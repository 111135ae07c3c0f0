/* unmask train-tokenizer: learn a byte-level BPE from text files and write a
 * Hugging Face tokenizer.json (src/tokenizer/bpe_train.c) that the tokenizer
 * loader, `unmask train --tokenizer` and Hugging Face's library read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sys.h"
#include "cli.h"
#include "tokenizer/bpe_train.h"
#include "tokenizer/tokenizer.h"

#define MAX_SPECIALS 64
#define CORPUS_FILE_MAX ((size_t)4 << 30)

static void train_tokenizer_usage(void) {
    puts("usage: unmask train-tokenizer -o OUT/tokenizer.json --vocab-size N [--special TOKEN]...\n"
         "                              [--separator TEXT] [--min-frequency N] FILE...\n"
         "\n"
         "Learn a byte-level BPE (GPT-2 style: the GPT-2 split regex, bytes as GPT-2's characters) from\n"
         "text files, with the merges Hugging Face's BpeTrainer would learn, and write tokenizer.json\n"
         "plus tokenizer_config.json (eos/pad/mask tokens) beside it.\n"
         "\n"
         "  -o, --output PATH     the tokenizer.json to write (its directory is created)\n"
         "  --vocab-size N        tokens in all: 256 bytes + merges + special tokens\n"
         "  --special TOKEN       a special token, added at the end of the vocabulary; repeat for more\n"
         "                        (default: <|endoftext|> <|mdm_mask|>; giving any replaces the default)\n"
         "  --separator TEXT      document separator in the files: text is cut there, never merged\n"
         "                        across (default <|endoftext|>; \\n is a newline; '' for none)\n"
         "  --min-frequency N     a pair seen fewer times is not merged (default 2)\n"
         "  -q, --quiet           no progress on stderr\n"
         "  -h, --help            this help\n"
         "\n"
         "Byte tokens are ids 0..255 (GPT-2's order), merged tokens follow in the order learned, special\n"
         "tokens come last. The first special that is not <|mdm_mask|>/<|mask|> becomes the EOS token.");
}

/* tokenizer_config.json in the directory of json_path. */
static void config_path(const char *json_path, char *buf, size_t n) {
    const char *slash = strrchr(json_path, '/');
    int dir = slash ? (int)(slash - json_path + 1) : 0;
    snprintf(buf, n, "%.*stokenizer_config.json", dir, json_path);
}

static bool feed_files(um_bpe_trainer *t, char **files, int n_files, bool quiet) {
    for (int i = 0; i < n_files; i++) {
        char *text = NULL;
        size_t len = 0;
        um_error err = {0};
        if (um_read_file(files[i], CORPUS_FILE_MAX, &text, &len, &err) != UM_OK) {
            cli_error("train-tokenizer", "%s", err.msg);
            return false;
        }
        double t0 = um_now();
        um_status s = um_bpe_trainer_feed(t, text, len, &err);
        free(text);
        if (s != UM_OK) {
            cli_error("train-tokenizer", "%s: %s", files[i], err.msg);
            return false;
        }
        if (!quiet)
            fprintf(stderr, "read %s: %.2f MiB in %.2f s\n", files[i], (double)len / (1 << 20), um_now() - t0);
    }
    return true;
}

/* Creates the directories leading to path, as mkdir -p would. */
static void make_parents(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = 0;
        mkdir(dir, 0777); /* failures show in the check that follows */
        *p = '/';
    }
}

/* The output's directory is created, and must be writable (and the file, when
 * it exists): checked before learning rather than after. */
static bool output_writable(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    make_parents(path);
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (!um_is_directory(dir) || access(dir, W_OK) != 0 || (access(path, F_OK) == 0 && access(path, W_OK) != 0) ||
        um_is_directory(path)) {
        cli_error("train-tokenizer", "%s: cannot write there", path);
        return false;
    }
    return true;
}

/* Learns and writes; prints where each special token landed. */
static int train_and_write(um_bpe_trainer *t, const char *out, const char *const *specials, int n_specials,
                           bool quiet) {
    um_error err = {0};
    char cfg[4096];
    config_path(out, cfg, sizeof cfg);
    double t0 = um_now();
    if (um_bpe_trainer_learn(t, &err) != UM_OK || um_bpe_trainer_write_json(t, out, &err) != UM_OK ||
        um_bpe_trainer_write_config(t, cfg, &err) != UM_OK) {
        cli_error("train-tokenizer", "%s", err.msg);
        return 1;
    }
    um_bpe_train_stats st;
    um_bpe_trainer_stats(t, &st);
    if (!quiet) {
        fprintf(stderr, "wrote %s and %s: %d tokens (256 bytes, %zu merges, %d special) in %.2f s\n", out, cfg,
                (int)st.n_vocab, st.n_merges, n_specials, um_now() - t0);
        for (int i = 0; i < n_specials; i++)
            fprintf(stderr, "  %s = %d\n", specials[i], (int)(st.n_vocab - n_specials + i));
    }
    return 0;
}

int cmd_train_tokenizer(int argc, char **argv) {
    cli_args a;
    const char *out = NULL, *specials[MAX_SPECIALS], *sep_arg = "<|endoftext|>";
    int n_specials = 0, vocab = 0;
    long min_freq = 2;
    bool quiet = false;
    char *files[argc > 0 ? argc : 1];
    int n_files = 0;
    cli_init(&a, "train-tokenizer", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            train_tokenizer_usage();
            return 0;
        } else if (cli_is(&a, "-o", "--output")) out = cli_value(&a);
        else if (cli_is(&a, NULL, "--vocab-size")) vocab = cli_int(&a, 1, 1 << 26);
        else if (cli_is(&a, NULL, "--separator")) sep_arg = cli_value(&a);
        else if (cli_is(&a, NULL, "--min-frequency")) min_freq = cli_int(&a, 0, 1 << 30);
        else if (cli_is(&a, "-q", "--quiet")) quiet = true;
        else if (cli_is(&a, NULL, "--special")) {
            const char *v = cli_value(&a);
            if (a.ok && n_specials == MAX_SPECIALS) {
                cli_error("train-tokenizer", "at most %d --special tokens", MAX_SPECIALS);
                return 2;
            }
            if (a.ok)
                specials[n_specials++] = v;
        } else if (a.argv[a.i][0] == '-' && a.argv[a.i][1]) cli_unknown(&a);
        else files[n_files++] = a.argv[a.i];
    }
    if (!a.ok)
        return 2;
    if (!out || !vocab || !n_files) {
        cli_error("train-tokenizer", "need -o OUT/tokenizer.json, --vocab-size N and at least one text FILE");
        return 2;
    }
    static const char *const default_specials[] = {"<|endoftext|>", "<|mdm_mask|>"};
    if (!n_specials)
        for (; n_specials < 2; n_specials++)
            specials[n_specials] = default_specials[n_specials];
    char *sep = cli_unescape(sep_arg);
    um_bpe_train_opts o = {.vocab_size = vocab, .specials = specials, .n_specials = n_specials, .separator = sep,
                           .min_frequency = min_freq, .progress = quiet ? NULL : stderr};
    um_bpe_trainer *t = NULL;
    um_error err = {0};
    int rc = 0;
    if (!sep) {
        cli_error("train-tokenizer", "out of memory");
        rc = 1;
    } else if (um_bpe_trainer_new(&o, &t, &err) != UM_OK) {
        cli_error("train-tokenizer", "%s", err.msg);
        rc = 2;
    } else if (!output_writable(out) || !feed_files(t, files, n_files, quiet)) {
        rc = 1;
    } else {
        rc = train_and_write(t, out, specials, n_specials, quiet);
    }
    um_bpe_trainer_free(t);
    free(sep);
    return rc;
}
