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
    if (!model || (!text) == (!file)) {
        cli_error("tokenize", "need -m MODEL and one of -p TEXT or -f FILE");
        return 2;
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
                printf("%6d -> '%s'\n", t.sp.bos, um_tokenizer_token_text(t.tok, t.sp.bos));
            for (size_t i = 0; i < n; i++)
                printf("%6d -> '%s'\n", ids[i], um_tokenizer_token_text(t.tok, ids[i]));
        }
    }
    free(ids);
    free(file_text);
    cli_text_close(&t);
    return rc;
}
