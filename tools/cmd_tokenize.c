/* unmask tokenize: text to token ids with a model's tokenizer (a GGUF file,
 * vocabulary-only ones included, a model directory or a tokenizer.json). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "text.h"

static void tokenize_usage(void) {
    puts("usage: unmask tokenize -m MODEL (-p TEXT | -f FILE) [--ids] [--no-parse-special] [--add-bos]\n"
         "\n"
         "Print the token ids of a text, one per line with its piece, or as a JSON array.\n"
         "\n"
         "  -m, --model PATH      GGUF file (a vocabulary-only one works), model directory or tokenizer.json\n"
         "  -p, --prompt TEXT     the text\n"
         "  -f, --file FILE       read the text from a file\n"
         "      --ids             print only a JSON array of the ids\n"
         "      --no-parse-special  treat special-token spellings (<|eot_id|>) as plain text\n"
         "      --add-bos         put BOS first when the tokenizer asks for it (as run does for raw prompts)\n"
         "  -h, --help            this help");
}

/* id -> 'piece': the text the token stands for (a byte-level "Ġupon" is
 * " upon"), control characters and bytes that are not whole UTF-8 escaped
 * as \n, \t, \xNN; special tokens as the vocabulary spells them. */
static void print_piece(const cli_text *t, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    um_error err;
    if (um_tokenizer_decode(t->tok, &id, 1, false, &text, &len, &err) != UM_OK) {
        printf("%6d -> ?\n", id);
        return;
    }
    printf("%6d -> '", id);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        bool whole = k > 1 && i + k <= len;
        for (size_t j = 1; whole && j < k; j++)
            whole = ((unsigned char)text[i + j] & 0xc0) == 0x80;
        if (c == '\n' || c == '\t' || c == '\\' || c == '\'')
            printf("\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : (char)c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else if (whole)
            fwrite(text + i, 1, k, stdout);
        else
            printf("\\x%02x", c);
        i += whole ? k : 1;
    }
    printf("'\n");
    free(text);
}

int cmd_tokenize(int argc, char **argv) {
    cli_args a;
    const char *model = NULL, *text = NULL, *file = NULL;
    bool ids_only = false, parse_special = true, add_bos = false;
    cli_init(&a, "tokenize", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            tokenize_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, "-p", "--prompt")) text = cli_value(&a);
        else if (cli_is(&a, "-f", "--file")) file = cli_value(&a);
        else if (cli_is(&a, NULL, "--ids")) ids_only = true;
        else if (cli_is(&a, NULL, "--no-parse-special")) parse_special = false;
        else if (cli_is(&a, NULL, "--add-bos")) add_bos = true;
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if ((!text) == (!file)) {
        cli_error("tokenize", "need one of -p TEXT or -f FILE");
        return 2;
    }
    char default_path[4096];
    model = cli_model_path(model, default_path, sizeof default_path);
    if (!model) {
        cli_error("tokenize", "no model given and the default model (%s) was not found: use -m MODEL or set "
                              "UNMASK_MODEL", UM_DEFAULT_MODEL);
        return 1;
    }
    cli_text t;
    if (!cli_text_open(&t, "tokenize", model, NULL))
        return 1;
    char *file_text = file ? cli_text_read_file("tokenize", file) : NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    um_error err;
    int rc = 0;
    if (file && !file_text) {
        rc = 1;
    } else if (um_tokenizer_encode(t.tok, file ? file_text : text, strlen(file ? file_text : text), parse_special,
                                   &ids, &n, &err) != UM_OK) {
        cli_error("tokenize", "%s", err.msg);
        rc = 1;
    } else {
        bool bos = add_bos && t.sp.add_bos && t.sp.bos >= 0;
        if (ids_only) {
            printf("[");
            if (bos)
                printf("%d%s", t.sp.bos, n ? ", " : "");
            for (size_t i = 0; i < n; i++)
                printf("%s%d", i ? ", " : "", ids[i]);
            printf("]\n");
        } else {
            if (bos)
                print_piece(&t, t.sp.bos);
            for (size_t i = 0; i < n; i++)
                print_piece(&t, ids[i]);
        }
    }
    free(ids);
    free(file_text);
    cli_text_close(&t);
    return rc;
}
