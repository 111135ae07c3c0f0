/* Shared helpers of the test suite: where the fixtures are, running the
 * unmask command, temporary directories, reading reference JSON. */
#ifndef UM_TESTUTIL_H
#define UM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "format/safetensors.h"
#include "kernels/kernels.h"
#include "unmask.h"

/* A group of tests: each test file defines one. */
typedef struct {
    const char *name;
    const struct CMUnitTest *tests;
    size_t count;
} test_group;

/* ../shared/fixtures (override with UNMASK_FIXTURES). */
const char *fixtures_dir(void);
/* Whether fixtures_dir() is a folder; if not, says once where it looked. */
bool fixtures_found(void);
/* fixtures_dir()/rel in a static buffer (one of a few rotating ones). */
const char *fixture(const char *rel);

/* Runs the unmask command (UNMASK_BIN, default build/unmask) with the given
 * arguments through /bin/sh; captures stdout and stderr; returns exit code. */
typedef struct {
    int status;
    char *out;
    char *err;
} cmd_result;
cmd_result run_unmask(const char *args_fmt, ...) __attribute__((format(printf, 1, 2)));
/* UNMASK_EXEC_WRAPPER: words the tests put before every program they start
 * (the unmask command, the example), e.g. "qemu-aarch64 -L
 * /usr/aarch64-linux-gnu" for a cross-compiled build the kernel cannot run
 * itself (make test-arm64); "" when unset. */
const char *exec_wrapper(void);
/* execvp of argv behind the wrapper's words (in a forked child; returns only on failure). */
void exec_wrapped(char *const argv[]);
void cmd_result_free(cmd_result *r);
/* run_unmask that must exit 0 and print one JSON object: the parsed object. */
cJSON *run_unmask_json(const char *args_fmt, ...) __attribute__((format(printf, 1, 2)));
/* While on, the unmask commands the tests start compute every product in f32
 * (UNMASK_ACTIVATIONS=f32), the arithmetic of the PyTorch references, rather
 * than the default bf16 activations for BF16 weights; off restores the
 * environment. For tests that hold a command's output to those references. */
void f32_activations_for_commands(bool on);

/* A fresh temporary directory (removed by remove_tree). */
char *make_temp_dir(void);
void remove_tree(const char *dir);
/* Writes/copies files for hand-made bad inputs. */
void write_file(const char *path, const void *data, size_t n);
void *read_whole_file(const char *path, size_t *n);
void copy_file(const char *from, const char *to);

/* Says that a part of a test did not run because the CPU (as UNMASK_CPU
 * masks it) lacks a feature: "    skipped: CPU lacks LACK (WHAT)". A part
 * that cannot run on this CPU is reported, never passed in silence. */
void skip_note(const char *lack, const char *what);

/* The parsed reference.json of a fixture model: "tiny-llada" / "tiny-llada-gqa"
 * under llada/, or a path with its family's folder ("llada-moe/tiny-llada-moe"). */
cJSON *load_reference(const char *model);
/* A JSON array of integers as a malloc'd int32 array. */
int32_t *json_int_array(const cJSON *arr, int *n);

/* max |ours - ref| / max |ref| over n values (NaN in ours propagates). */
double max_rel_error(const float *ours, const float *ref, size_t n);
/* The LLaDA reference-sampler case of reference.json with these parameters
 * (and no logits_eos_inf); fails the test when there is none. */
const cJSON *find_reference_case(const cJSON *root, int steps, int block, double cfg);
/* A JSON array of ids as "1,2,3" (malloc'd), for --prompt-tokens. */
char *json_ids_csv(const cJSON *arr);

/* model (named as for load_reference) in layout ("hf-bf16"). */
um_model *open_fixture_model(const char *model, const char *layout, int n_threads);

/* The process defaults (um_exec_defaults) on pool now, for the kernel
 * tests that switch them between calls; valid until the next call. */
const um_exec *exec_now(um_pool *pool);

/* um_forward and um_generate on a fresh context with the process defaults
 * at the time of the call: the tests switch the arithmetic
 * (um_matmul_set_reduced) and the kernel path between calls. */
um_status t_forward(const um_model *m, const int32_t *tokens, int n_rows, int seq_len, float *logits, um_error *err);
um_status t_generate(const um_model *m, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                     um_generation *out, um_error *err);

/* The tensor called name in a safetensors file, which must be there with that type. */
const um_st_tensor *st_tensor(const um_st_file *f, const char *name, um_dtype type);

/* ---- the LLaDA reference sampler's cases (reference.json) ---- */

#define LLADA_REFERENCE "ML-GSAI/LLaDA generate.py: generate"

/* The (position, token) pairs committed after every forward pass. */
typedef struct {
    int n_steps, cap;
    int *n_commits;      /* per step */
    int (*spans)[2];     /* per step: the positions [q0, q1) its forward pass computed */
    int32_t (*pairs)[2]; /* all steps' pairs, concatenated */
    int n_pairs, cap_pairs;
} commit_log;

/* A step callback (user_data: a commit_log) that records every step's commits. */
int record_step(const um_step_info *info, void *user);
/* Every step committed the (position, token) pairs of want (a reference's
 * commits_per_step), in any order within a step; fails naming what. */
void check_commits(const cJSON *want, const commit_log *log, const char *what);
void commit_log_free(commit_log *log);

/* What a reference case's check gets: the case, our generation and commits,
 * and a label naming model, file and parameters for messages. */
typedef struct {
    const cJSON *json;
    const um_generation *gen;
    const commit_log *log;
    const int32_t *want; /* the reference output: prompt + generated */
    int n_want;
    int want_nfe;
    int mask_id;
    const char *what;
} reference_run;

typedef void (*reference_check_fn)(const reference_run *run, void *user);

/* Generates every case of fixtures/llada/MODEL/reference.json made by the
 * LLaDA reference sampler with m (label names m's file in messages) and hands
 * each to check; returns how many cases ran. The case's special ids must be
 * m's. */
int run_reference_cases(um_model *m, const char *model, const char *label, reference_check_fn check, void *user);
/* A check: output, NFE and every step's commits exactly as the reference. */
void expect_reference_exact(const reference_run *run, void *user);

/* ---- Fast-dLLM's cases (generate, generate_with_prefix_cache,
 * generate_with_dual_cache; with and without threshold) ---- */

#define FASTDLLM_REFERENCE "NVlabs/Fast-dLLM llada/generate.py"

/* As run_reference_cases, for the cases whose reference starts with
 * reference_prefix (LLADA_REFERENCE, FASTDLLM_REFERENCE). */
int run_reference_cases_from(um_model *m, const char *model, const char *label, const char *reference_prefix,
                             reference_check_fn check, void *user);
/* A case's parameters as um_generate parameters: Fast-dLLM's fn picks the
 * cache, its threshold the threshold decoder. */
um_generate_params reference_case_params(const cJSON *c);
/* The same as `unmask run` flags (-n, --steps, --block-length, --cache, ...). */
void reference_case_flags(const cJSON *c, char *buf, size_t n);
/* A check: output and NFE exactly as the reference (Fast-dLLM's cases carry no commits). */
/* `unmask run -m fixture(dir) --prompt-tokens prompt flags --json` gives case
 * c's upstream output and NFE exactly (model names it in messages). */
void expect_run_matches(const char *model, const char *dir, const char *prompt, const char *flags, const cJSON *c);
void expect_output_nfe(const reference_run *run, void *user);

/* ---- dInfer's cases (generate_uniform.py's classes, parallel_strategy.py's
 * decoders, KV caches) ---- */

#define DINFER_REFERENCE "inclusionAI/dInfer"

/* Every step's forward computed the [start, end) of want (a reference's forward_spans). */
void check_spans(const cJSON *want, const commit_log *log, const char *what);
/* A check: output, NFE, each forward's span and each step's commits exactly as dInfer. */
void expect_dinfer_exact(const reference_run *run, void *user);

/* One case of reference.json made ready to run: its parameters (recording
 * each step's commits into log), its prompt, and run for a check (set
 * run.gen after generating). Keep it in place while it runs: the
 * parameters point at its log. */
typedef struct {
    um_generate_params p;
    int32_t *prompt, *want;
    int n_prompt;
    commit_log log;
    reference_run run;
    char what[256];
} reference_case;
void reference_case_prepare(reference_case *rc, const um_model *m, const cJSON *c, const char *model,
                            const char *label);
void reference_case_free(reference_case *rc);

/* Two GGUF files hold the same keys and values in the same order (gguf-py's
 * naming of the model from its folder, general.name and the like, aside),
 * the same tensors (name, type, shape, offset) and the same data. */
void expect_same_gguf(const char *ours, const char *theirs);

#endif
