/* unmask convert and unmask quantize: write GGUF files llama.cpp reads. */
#include <stdio.h>
#include <string.h>

#include "base/sys.h"
#include "cli.h"
#include "model/convert.h"

static void list_recipes(void) {
    for (const um_recipe *const *r = um_recipe_all(); *r; r++)
        printf("  %-8s %s\n", (*r)->name, (*r)->about);
}

static void convert_usage(void) {
    puts("usage: unmask convert HF_DIR -o MODEL.gguf [--type TYPE] [--name NAME] [-t N]\n"
         "\n"
         "Convert a Hugging Face LLaDA checkpoint to GGUF as llama.cpp's convert_hf_to_gguf.py\n"
         "writes it (architecture 'llada', its metadata keys and tensor names, q/k rows permuted\n"
         "for llama.cpp's RoPE), with tokenizer metadata when the directory has tokenizer.json.\n"
         "Quantized types follow llama-quantize's recipes; norm weights stay F32.\n"
         "\n"
         "  -o, --output FILE   the GGUF file to write\n"
         "  --type TYPE         weight type or recipe (default f16):");
    list_recipes();
    puts("  --name NAME         general.name (default: from the directory name)\n"
         "  -t, --threads N     worker threads (default: all cores)\n"
         "  -h, --help          this help");
}

static void quantize_usage(void) {
    puts("usage: unmask quantize IN.gguf OUT.gguf TYPE [-t N]\n"
         "\n"
         "Re-quantize a GGUF file with one of llama-quantize's recipes; metadata is kept, with\n"
         "general.file_type updated. TYPE is one of:");
    list_recipes();
}

static void progress(void *user, int index, int count, const char *name, um_dtype type) {
    double *t0 = user;
    cli_progress(index + 1, count, "[%3d/%3d] %-32.32s -> %-5s %6.1f s", index + 1, count, name,
                 um_dtype_name(type), um_now() - *t0);
}

static int finish(const char *cmd, um_status s, const um_error *err, const char *out, double t0) {
    if (s != UM_OK) {
        fputc('\n', stderr);
        cli_error(cmd, "%s", err->msg);
        return 1;
    }
    um_mapped_file f;
    um_error e2;
    double mib = um_map_file(out, &f, &e2) == UM_OK ? (double)f.size / 1048576.0 : 0;
    um_unmap_file(&f);
    fprintf(stderr, "%s: wrote %s (%.1f MiB) in %.1f s\n", cmd, out, mib, um_now() - t0);
    return 0;
}

int cmd_convert(int argc, char **argv) {
    cli_args a;
    const char *dir = NULL, *out = NULL, *type = "f16";
    double t0 = um_now();
    um_convert_params p = {NULL, NULL, 0, progress, &t0};
    cli_init(&a, "convert", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            convert_usage();
            return 0;
        } else if (cli_is(&a, "-o", "--output")) out = cli_value(&a);
        else if (cli_is(&a, NULL, "--type")) type = cli_value(&a);
        else if (cli_is(&a, NULL, "--name")) p.name = cli_value(&a);
        else if (cli_is(&a, "-t", "--threads")) p.n_threads = cli_int(&a, 1, 1024);
        else if (a.argv[a.i][0] != '-' && !dir) dir = a.argv[a.i];
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (!dir || !out) {
        cli_error("convert", "need HF_DIR and -o MODEL.gguf (see unmask convert --help)");
        return 2;
    }
    if (!(p.recipe = um_recipe_find(type))) {
        cli_error("convert", "--type: unknown type '%s' (see unmask convert --help)", type);
        return 2;
    }
    if (!um_is_directory(dir) && um_file_exists(dir)) {
        cli_error("convert", "%s is a file: convert reads Hugging Face directories; to re-quantize a GGUF file use "
                             "unmask quantize %s OUT.gguf %s", dir, dir, type);
        return 2;
    }
    um_error err;
    return finish("convert", um_convert_hf_to_gguf(dir, out, &p, &err), &err, out, t0);
}

int cmd_quantize(int argc, char **argv) {
    cli_args a;
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    double t0 = um_now();
    um_convert_params p = {NULL, NULL, 0, progress, &t0};
    cli_init(&a, "quantize", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            quantize_usage();
            return 0;
        } else if (cli_is(&a, "-t", "--threads")) p.n_threads = cli_int(&a, 1, 1024);
        else if (a.argv[a.i][0] != '-' && n_pos < 3) pos[n_pos++] = a.argv[a.i];
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (n_pos != 3) {
        cli_error("quantize", "need IN.gguf OUT.gguf TYPE (see unmask quantize --help)");
        return 2;
    }
    if (!(p.recipe = um_recipe_find(pos[2]))) {
        cli_error("quantize", "unknown type '%s' (see unmask quantize --help)", pos[2]);
        return 2;
    }
    if (strcmp(pos[0], pos[1]) == 0) {
        cli_error("quantize", "OUT.gguf must differ from IN.gguf (the input is read while writing)");
        return 2;
    }
    um_error err;
    return finish("quantize", um_quantize_gguf(pos[0], pos[1], &p, &err), &err, pos[1], t0);
}
