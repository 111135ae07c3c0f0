/* Shared pieces of the unmask command's subcommands: argument parsing with
 * one-line errors, model opening, JSON printing. */
#ifndef UM_TOOLS_CLI_H
#define UM_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "unmask.h"

/* Walks argv; every accessor reports a bad value and makes cli_ok false. */
typedef struct {
    const char *cmd; /* "run", "forward", ... for messages */
    int argc;
    char **argv;
    int i;
    bool ok;
    char *msg;       /* when set (msg_size bytes), errors are written here instead of stderr */
    size_t msg_size;
} cli_args;

void cli_init(cli_args *a, const char *cmd, int argc, char **argv);
/* True while arguments remain; the current one is a->argv[a->i]. */
bool cli_next(cli_args *a);
/* Does the current argument match one of the spellings (NULL-terminated short/long)? */
bool cli_is(const cli_args *a, const char *short_name, const char *long_name);
const char *cli_value(cli_args *a);                   /* the value following a flag */
int cli_int(cli_args *a, int lo, int hi);              /* parsed, range-checked */
double cli_double(cli_args *a, double lo, double hi);
uint64_t cli_u64(cli_args *a);
void cli_unknown(cli_args *a);                          /* reports the current argument */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The value of a flag that names one of n choices; its index, or -1 after an error. */
int cli_choice(cli_args *a, const char *const *names, int n);

/* Generation flags shared by run and chat: -n, --steps, --block-length,
 * --temp, --cfg-scale, --seed, --remasking, --cache, --decoder and their
 * parameters. */
typedef struct {
    um_generate_params *p;
    int gen_length, steps, block; /* -1: not given */
    bool set_cache, set_decoder, set_schedule, set_top_k, set_threshold; /* given on the command line (or a
                                                                           --batch line) */
} cli_gen_flags;
/* The generation defaults of run, chat and eval: Fast-dLLM's dual cache with
 * threshold decoding at 0.9 (README, "Fast decoding": the reference sampler's
 * accuracy at a fraction of its steps); --reference returns to the LLaDA
 * reference sampler, which is also the C API's default. */
um_generate_params cli_generate_defaults(void);
/* Prints o on stdout as one line of JSON, then frees it. */
void cli_print_json(cJSON *o);
/* run --json's object for a generation: text (when not NULL), tokens
 * (prompt included), generated, prompt_length, nfe and timings. */
cJSON *cli_generation_json(const um_generation *g, const char *text);

/* Consumes the current argument when it is a generation flag. */
bool cli_generation_flag(cli_args *a, cli_gen_flags *f);
/* A JSON key as the generation flag of the same name, '_' for '-' ("temp":
 * 0.5 -> --temp 0.5, "cache": "dual", "early_stop": true; false leaves the
 * flag out): run --batch's lines and serve's request bodies. False with the
 * reason in msg ("not a request key", the flag's range) when v is not one. */
bool cli_generation_key(const cJSON *v, cli_gen_flags *gf, char *msg, size_t msg_size);
/* Lengths from the flags, defaults for the rest: block 32 when it divides the
 * gen length (else the gen length), steps = gen length. */
/* The block length when none is given: the largest divisor of gen_length up
 * to 32 (at least 8), else gen_length itself (one block). */
int cli_default_block_length(int gen_length);
void cli_generation_finish(cli_gen_flags *f, int default_gen_length);
/* The model family's defaults for what the flags left unsaid, after
 * cli_generation_finish: for Dream (logits shifted by one position), its
 * diffusion_generate's: no cache, one block, the timesteps schedule, the
 * entropy decoder, top-k 50 (transformers' implicit default, which Dream's
 * users get); with --decoder threshold and no cache, Fast-dLLM's quota
 * schedule; with a cache, Fast-dLLM's block mode (blocks of 32). */
/* For block-causal models (LLaDA2), its generate's: block diffusion in the
 * model's block length, --steps per block (default: the block length),
 * threshold decoding at 0.95. */
void cli_generation_for_model(cli_gen_flags *f, const um_model *m);

/* "12,7,99" -> ids (malloc'd). False with a message on bad input. */
bool cli_parse_tokens(const char *cmd, const char *text, int32_t **ids, int *n);

/* A copy of s (malloc'd; NULL when out of memory) with "\n", "\t" and "\\"
 * as the characters they name: document separators given on the command line. */
char *cli_unescape(const char *s);

/* Progress of step i of n (1-based) on stderr, as printf(fmt, ...): redrawn
 * in place on a terminal (a newline after the last step), else about ten
 * lines per run so that logs stay short. */
/* Whether --steps was given to a decoder that fills each block until done
 * (threshold and the like), where it cannot set the count of forward passes
 * (the commands then say so after the statistics). */
bool cli_steps_unused(const cli_gen_flags *f);
/* um_generate one step at a time, with Ctrl-C handled: the first stops the
 * generation at its next step (*interrupted; *g holds what was committed,
 * status UM_OK), a second exits the program at once (status 130). */
um_status cli_generate(um_context *ctx, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                       um_generation *g, bool *interrupted, um_error *err);
void cli_progress(int i, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The default model, shipped in the repository: run, chat and eval use it
 * when no -m is given. */
#define UM_DEFAULT_MODEL "models/stories"
/* given when not NULL; else $UNMASK_MODEL; else the default model of the
 * checkout this binary was built in (models/stories in the binary's
 * directory or up to two levels above: build/unmask, build/asan/unmask),
 * written into buf; NULL when none is found. */
const char *cli_model_path(const char *given, char *buf, size_t size);

/* cli_open_model's flags. */
enum {
    CLI_MODEL_QUIET = 1,     /* no summary line */
    CLI_MODEL_NO_REPACK = 2  /* the weights as stored (um_model_params.no_repack): for commands that run
                                one pass or none, and for --no-repack */
};
/* The help line of --no-repack, for the commands that take it. */
#define CLI_NO_REPACK_HELP                                                                                      \
    "  --no-repack              keep the weights as the file stores them and pack them on every product;\n"   \
    "                           by default each matrix is packed once at load into the kernels' layout,\n"    \
    "                           taking as much memory as the file for F32/BF16/F16, 1.2x for Q8_0, 2.2x\n"    \
    "                           for the 4-bit types, and making small canvases (cached steps) faster;\n"    \
    "                           skipped, with a note, where it would not fit in the memory available\n"
/* Opens a model, printing a one-line summary to stderr unless CLI_MODEL_QUIET. */
um_model *cli_open_model(const char *cmd, const char *path, int n_threads, unsigned flags);
/* A context for m with the environment's defaults; NULL after an error message. */
um_context *cli_open_context(const char *cmd, const um_model *m);

int cmd_run(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_init_random(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_train_tokenizer(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
