/* unmask: the command-line front end. Each subcommand lives in cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"run", cmd_run, "generate from a text or token prompt (reference sampler, KV caches, fast decoders)"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server that batches its requests step by step"},
    {"chat", cmd_chat, "talk with a model in the terminal, with its chat template"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"train-tokenizer", cmd_train_tokenizer, "learn a byte-level BPE tokenizer.json from text files"},
    {"forward", cmd_forward, "write one forward pass's logits to a safetensors file"},
    {"bench", cmd_bench, "time forward passes: ms per forward, tokens/s, GFLOP/s, peak memory"},
    {"convert", cmd_convert, "convert a Hugging Face checkpoint to GGUF (f32, f16, bf16, q8_0, q4_k_m, ...)"},
    {"quantize", cmd_quantize, "re-quantize a GGUF file with one of llama-quantize's recipes"},
    {"compare", cmd_compare, "compare two models' logits: KL divergence, top-1 agreement (judge a quantization)"},
    {"eval", cmd_eval, "perplexity (LLaDA's Monte Carlo ELBO) and task accuracy across decoding settings"},
    {"train", cmd_train, "train a small LLaDA model: masked-diffusion pre-training or SFT, AdamW, checkpoints"},
    {"init-random", cmd_init_random, "write a model of a real shape with random weights (for benchmarks)"},
    {"info", cmd_info, "describe a model: files, hyper-parameters, parameters, tensor types, tokenizer"},
};

static void usage(FILE *fp) {
    fprintf(fp, "unmask %s - inference for masked diffusion language models\n\n"
                "usage: unmask COMMAND [options]    (unmask help COMMAND, or COMMAND --help, for its options;\n"
                "                                    unmask version for the version)\n\ncommands:\n",
            UNMASK_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(fp, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("unmask %s\n", um_version());
        return 0;
    }
    if (strcmp(argv[1], "help") == 0) { /* unmask help CMD: the command's --help */
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            if (strcmp(argv[2], commands[i].name) == 0) {
                char *help_argv[] = {argv[2], "--help", NULL};
                return commands[i].fn(2, help_argv);
            }
        fprintf(stderr, "unmask: error: unknown command '%s'\n\n", argv[2]);
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "unmask: error: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
