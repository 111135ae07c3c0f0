/*
 * unmask.h - the public C API of unmask, an inference engine for masked
 * diffusion language models (LLaDA and relatives).
 *
 * Usage:
 *
 *     um_error err;
 *     um_model *m;
 *     um_context *ctx;
 *     if (um_model_open("path/to/hf-dir", NULL, &m, &err) != UM_OK) { puts(err.msg); ... }
 *     if (um_context_create(m, NULL, &ctx, &err) != UM_OK) { ... }
 *     um_generate_params gp = um_generate_default_params();
 *     um_generation out;
 *     um_generate(ctx, prompt_ids, n_prompt, &gp, &out, &err);
 *     ... out.tokens[0 .. out.n_tokens) ...
 *     um_generation_free(&out);
 *     um_context_free(ctx);
 *     um_model_close(m);
 *
 * Every fallible call returns a um_status and, on failure, fills the caller's
 * um_error with a one-line message naming the file, tensor or parameter at
 * fault. Nothing in this header exposes the engine's internals.
 *
 * Threads: a um_model is immutable once opened; any number of contexts and
 * sessions, on any threads, may share it (close it after them). A context
 * (threads, arithmetic, working buffers) and a session (one request's state)
 * are used by one thread at a time. um_model_open, um_model_close and the
 * pure functions (default params, um_status_name) are safe anywhere.
 */
#ifndef UNMASK_H
#define UNMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNMASK_VERSION "0.1.0"

#if defined(__GNUC__)
#define UM_API __attribute__((visibility("default")))
#else
#define UM_API
#endif

typedef enum {
    UM_OK = 0,
    UM_ERR_IO = 1,          /* a file could not be opened, read, mapped or written */
    UM_ERR_FORMAT = 2,      /* a file is malformed: bad header, JSON, offsets, shapes */
    UM_ERR_UNSUPPORTED = 3, /* well-formed but not something unmask runs (architecture, dtype) */
    UM_ERR_ARG = 4,         /* a bad argument: token id out of range, lengths that do not divide */
    UM_ERR_NOMEM = 5,       /* an allocation failed */
    UM_ERR_ABORTED = 6      /* a step callback asked to stop */
} um_status;

typedef struct um_error {
    um_status code;
    char msg[512];
} um_error;

/* The version of the library linked in (UNMASK_VERSION is the header's):
 * the program's --version and the git tag v<version> say the same. */
UM_API const char *um_version(void);

typedef struct um_model um_model;
typedef struct um_context um_context;
typedef struct um_session um_session;

typedef struct {
    int n_threads; /* the default thread count of contexts made from the model; <= 0: one per physical core */
    /* By default the matrices are packed once, at load, into the layout the
     * matmul kernels of a default context on this CPU read (llama.cpp's
     * "repack"), so that no product packs them again: the results are the
     * same bits, and small canvases (a cached step) run faster. Contexts
     * made with other activations or another kernel path pack as they
     * multiply, as before. The packed copy replaces the file's pages in
     * memory; it is as large as the file for F32, BF16 and F16 weights, 1.2x
     * for Q8_0 and about 2.2x for the 4-bit formats (each weight as a byte),
     * and it is skipped where it would not fit in the memory available
     * (um_model_info.repack_skipped_bytes). true: use the weights as stored. */
    bool no_repack;
} um_model_params;

/* What a loaded model is. Strings are owned by the model. */
typedef struct {
    const char *architecture; /* "llada", "dream", "llada-moe" */
    const char *weight_type;  /* "f32", "bf16", "q8_0", ... or "mixed" */
    int n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff;
    int n_vocab;              /* rows of the output head: valid token ids are [0, n_vocab) */
    int max_seq_len;
    int mask_id, eos_id, eot_id; /* -1 when the model does not have one */
    int logit_shift;          /* 1: position i's prediction is the model's output row i - 1 (Dream); else 0 */
    int diffusion_block;      /* block-causal models (LLaDA2): the block length they generate with by default
                                 (UM_LOOP_BLOCKS is their loop); 0: bidirectional attention */
    int n_expert, n_expert_used, d_ff_expert; /* mixture of experts; 0 for dense models */
    int64_t n_params;         /* all of them */
    int64_t n_active_params;  /* those one token runs through (the experts it is routed to); n_params when dense */
    int n_threads;
    size_t repacked_bytes;    /* memory of the packed matrices (um_model_params.no_repack); 0: none */
    size_t repack_skipped_bytes; /* what packing would have taken where the memory available did not
                                    allow it (the weights are then used as stored); else 0 */
} um_model_info;

/* Opens a model: a Hugging Face directory (config.json + model.safetensors or
 * a sharded index; F32/BF16/F16) or a GGUF file as llama.cpp writes it (F32,
 * F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K). params may be NULL. */
UM_API um_status um_model_open(const char *path, const um_model_params *params, um_model **out, um_error *err);
UM_API void um_model_close(um_model *model);
UM_API void um_model_get_info(const um_model *model, um_model_info *info);

/* The arithmetic of a context's matmuls and attention. */
typedef enum {
    UM_ACTIVATIONS_DEFAULT = 0, /* UNMASK_ACTIVATIONS, else reduced */
    UM_ACTIVATIONS_REDUCED = 1, /* BF16/F16 weights meet bf16 activations, quantized ones int8 (llama.cpp's) */
    UM_ACTIVATIONS_F32 = 2      /* every product in f32: the reference's arithmetic */
} um_activations;

typedef struct {
    int n_threads;              /* <= 0: the model's default */
    um_activations activations;
    const char *kernel;         /* instruction-set path: "scalar", "avx2", "avx512", "neon", "onednn", "auto";
                                   NULL: UNMASK_KERNEL, else auto */
} um_context_params;

UM_API um_context_params um_context_default_params(void);
/* A context runs the model: its threads, arithmetic and working buffers.
 * params may be NULL. A kernel path the CPU lacks is an error. */
UM_API um_status um_context_create(const um_model *model, const um_context_params *params, um_context **out,
                                   um_error *err);
UM_API void um_context_free(um_context *ctx);
UM_API const um_model *um_context_model(const um_context *ctx);

/* One forward pass over n_rows sequences of seq_len tokens each (row-major
 * tokens[n_rows * seq_len]); writes logits[n_rows * seq_len * n_vocab]. */
UM_API um_status um_forward(um_context *ctx, const int32_t *tokens, int n_rows, int seq_len, float *logits,
                            um_error *err);

typedef enum {
    UM_REMASK_LOW_CONFIDENCE = 0, /* commit the positions whose chosen token is most probable */
    UM_REMASK_RANDOM = 1          /* commit positions in a random order */
} um_remasking;

/* Reported after every forward pass of a generation. */
typedef struct {
    int step;                    /* 0-based forward-pass index (NFE so far minus one) */
    int block;                   /* current block */
    const int32_t *canvas;       /* the whole canvas after this step's commits */
    int canvas_len;
    int prompt_len;
    const int32_t *committed_pos; /* positions committed by this step, in commit order */
    const int32_t *committed_tok; /* their tokens */
    int n_committed;
    int q0, q1;                  /* the positions [q0, q1) the forward pass computed ([0, canvas_len): all; the
                                    rest came from the KV cache) */
} um_step_info;

/* Return non-zero to stop the generation (um_generate then returns UM_ERR_ABORTED). */
typedef int (*um_step_callback)(const um_step_info *info, void *user_data);

/* What a decoding step recomputes (the KV cache manager). */
typedef enum {
    UM_CACHE_NONE = 0,    /* every step runs the whole canvas (the reference) */
    UM_CACHE_PREFIX = 1,  /* Fast-dLLM: a full pass at each block's first step; later steps run the block and
                             everything after it against the K/V the full pass left for the positions before it */
    UM_CACHE_DUAL = 2,    /* Fast-dLLM: as prefix, but later steps run only the block, against cached K/V of the
                             prefix and the suffix; the block's own slots are rewritten every step */
    UM_CACHE_VICINITY = 3 /* dInfer: later steps run the block plus cache_window positions on each side
                             (prefix_look before, after_look after); a full pass at the block's first step and
                             every cache_refresh steps (dInfer's loop: after warmup_steps full passes without the
                             cache, at each block's first iteration) */
    /* block-diffusion models (LLaDA2) need none of these: their loop (UM_LOOP_BLOCKS) keeps the exact K/V of
       finished blocks and runs only the current block */
} um_cache_mode;

/* Which masked positions a step commits. */
typedef enum {
    UM_DECODER_TOPK = 0,         /* the schedule's count, by confidence (the reference) */
    UM_DECODER_THRESHOLD = 1,    /* Fast-dLLM: every candidate with confidence >= threshold, at least the best */
    UM_DECODER_FACTOR = 2,       /* Fast-dLLM: by confidence, rank n (1-based) while conf >= 1 - factor / (n + 1) */
    UM_DECODER_MARGIN = 3,       /* the schedule's count, by top-1 minus top-2 probability (Dream, llama.cpp) */
    UM_DECODER_ENTROPY = 4,      /* the schedule's count, by lowest entropy (Dream, llama.cpp) */
    UM_DECODER_MED = 5,          /* entropy-bounded: every candidate with entropy < entropy_bound, at least one */
    UM_DECODER_HIERARCHICAL = 6, /* dInfer: the best of each run of adjacent masks if above low_threshold, every
                                    candidate above threshold, at least the best */
    UM_DECODER_CREDIT = 7,       /* dInfer: threshold decoding on logits boosted by the credit that each
                                    position's top-1 tokens build up over the block's steps */
    UM_DECODER_ORIGIN = 8        /* Dream's alg=origin: every mask committed independently with probability
                                    1 - t[i+1]/t[i] of the timesteps schedule's grid (1 at the last step), from
                                    unmask's random streams (torch's generator's draws are not reproduced) */
} um_decoder;

/* The loop around the steps. */
typedef enum {
    UM_LOOP_STEPS = 0, /* LLaDA's and Fast-dLLM's: blocks of block_length after the prompt, steps / n_blocks
                          planned steps each (count-based decoders), or steps until the block has no mask */
    UM_LOOP_DINFER = 1, /* inclusionAI/dInfer's BlockRunner (generate_uniform.py): blocks from the prompt's end (or
                          aligned, start_block_align), each run in batches of max(min(masks // expected_tpf,
                          maximum_unroll), 1) iterations before its masks are counted again; a KV cache refreshes
                          at each block's first iteration, which then runs two forward passes; a block holding EOS
                          ends the generation. Decoders threshold, credit, hierarchical; `steps` is unused */
    UM_LOOP_BLOCKS = 2 /* block diffusion, the loop of block-causal models (LLaDA2's generate; the only one they
                          run, and theirs by default): the canvas is whole blocks of block_length from position 0
                          (the first holds the prompt's tail, which stays), each block in turn runs at most
                          min(steps, gen_length / minimal_topk) steps (steps count per block) of the uniform
                          schedule of block_length, a step one forward of the block against the exact K/V of
                          the finished blocks before it; it ends when the block has no mask. threshold (and
                          credit) commit every mask above the threshold when there are at least the step's
                          count of them, else the count most confident; topk, margin and entropy the count.
                          The generation ends after a block holding EOS, and with early_stop as soon as a step
                          commits an EOS with no mask before it; the result is cut after its first EOS */
} um_loop;

/* How many tokens the count-based decoders (topk, margin, entropy) commit per step. */
typedef enum {
    UM_SCHEDULE_UNIFORM = 0, /* the block's masks spread evenly over its steps (the reference) */
    UM_SCHEDULE_POWER = 1,   /* step i of a block commits 2^i: about log2(block_length) steps */
    UM_SCHEDULE_TIMESTEPS = 2, /* Dream's diffusion_generate: t = linspace(1, eps, steps + 1) in float32; step i
                                  of n masks left commits int(n * (1 - t[i+1] / t[i])) (float32, truncated; it
                                  may be 0), the last step all that remain */
    UM_SCHEDULE_QUOTA = 3      /* Fast-dLLM's Dream threshold decoding (threshold decoder, no cache): step i
                                  ranks only its quota, the uniform schedule's count plus what earlier steps
                                  deferred, and commits the best and the rest of them at or above the
                                  threshold; after the planned steps the quota is what is left, and steps go on
                                  until nothing is */
} um_schedule;

typedef struct {
    int gen_length;     /* masked positions appended to the prompt */
    int steps;          /* forward passes in total, split evenly over the blocks */
    int block_length;   /* semi-autoregressive block size; must divide gen_length */
    double temperature; /* 0: argmax; > 0: Gumbel-max sampling in float64 */
    double cfg_scale;   /* classifier-free guidance; 0 disables it */
    um_remasking remasking;
    bool logits_eos_inf;         /* never predict EOS */
    bool confidence_eos_eot_inf; /* the reference's option: EOT logit -inf before the confidence softmax */
    uint64_t seed;
    um_step_callback on_step;
    void *user_data;

    /* Fast decoding. um_generate_default_params() sets the reference: no cache,
     * top-k, uniform, no EOS rules; the other values below are its defaults. */
    um_cache_mode cache;
    int cache_window;     /* vicinity: positions recomputed on each side of the block (16) */
    int cache_refresh;    /* vicinity: a full pass every R steps of a block; 0: only at its start (0) */
    um_decoder decoder;
    double threshold;     /* threshold, credit, hierarchical: confidence to commit at (0.9) */
    double low_threshold; /* hierarchical: a run's best stays masked at or below it (0.4) */
    double factor;        /* factor: f (1.0) */
    double entropy_bound; /* med: entropy bound in nats (0.3) */
    double credit_alpha;  /* credit: logit boost alpha * log(1 + credit) (0.7) */
    double credit_gamma;  /* credit: a step adds p_top1^gamma to its top-1 token (0.2) */
    double credit_decay;  /* credit: credit kept from one step to the next (0.8) */
    um_schedule schedule;
    bool eos_rejection;   /* EOS candidates' confidence (margin) scaled, entropy divided, by gamma rising
                             linearly from eos_gamma at a block's first step to 1 at its last planned one */
    double eos_gamma;     /* (0.4) */
    bool early_stop;      /* end once an EOS is committed with no mask before it; masks after it become EOS */
    int max_nfe;          /* stop after this many forward passes, leaving the rest masked; 0: no limit */
    int top_k;            /* 1..1024: logits below the k-th largest are dropped before the softmax that chooses
                             and scores a token (Dream's generation config: 50); 0: off */
    double schedule_eps;  /* timesteps schedule: the grid's end (1e-3) */
    double top_p;         /* (0, 1): nucleus filter before the softmax that chooses and scores a token (on the
                             logits divided by the temperature, as Dream's sample_tokens); 0 or 1: off */
    double min_p;         /* (0, 1]: tokens of probability below min_p times the most probable one's are dropped
                             (after top_k; probabilities over the temperature when it is > 0); 0: off */
    double alg_temp;      /* Dream's alg_temp: > 0 makes the topk, margin and entropy decoders sample the
                             step's positions from softmax(confidence / alg_temp) without replacement, not the
                             count most confident; 0: off */

    /* dInfer's loop (loop = UM_LOOP_DINFER; unmask.h: um_loop). Its decoders differ from Fast-dLLM's in two
     * details: a candidate whose token is the mask id is never committed, and every candidate within 1e-5 of
     * the best is (threshold and credit commit conf >= min(threshold, best - 1e-5)). early_stop: after a block
     * holding EOS, every later position becomes EOS (without it they stay masked; the generation ends either
     * way). */
    um_loop loop;
    int maximum_unroll;     /* iterations run before a block's masks are counted again, at most (4) */
    int expected_tpf;       /* ... and masks // expected_tpf of them when fewer (8) */
    bool start_block_align; /* the first block starts at floor(prompt / block_length) * block_length (it overlaps
                               the prompt; the last block is then shorter) */
    int warmup_steps;       /* vicinity: the first forward passes of the generation run without the cache (0) */
    int prefix_look, after_look; /* vicinity: positions recomputed before and after the block; -1: cache_window
                                    (-1; both loops) */
    /* dInfer's IterSmooth (dInfer's loop): a forward's inputs are embeddings, and after each forward every
     * position it computed that is still masked gets embed(mask) + w * softmax(logits) @ W_embed, with
     * w = min(cont_weight_init + cont_weight_growth * i, cont_weight) at iteration i (the forward passes so
     * far); the decoders' threshold is max(1 - threshold_decay * i, threshold). Keeps the embedding table in
     * f32 on the host (n_vocab * d_model floats) and costs n_vocab * d_model per masked position a step. */
    bool iter_smooth;
    double cont_weight, cont_weight_init, cont_weight_growth, threshold_decay; /* (0.3, 0.15, 0.02, 0.02) */
    int minimal_topk;       /* block diffusion: steps per block at most gen_length / minimal_topk (1) */
} um_generate_params;

typedef struct {
    int32_t *tokens;   /* prompt followed by the generated tokens */
    int n_tokens;
    int prompt_len;
    int nfe;           /* forward passes (a classifier-free-guidance pair counts once) */
    int n_committed;   /* masks filled in (appended or in the prompt); fewer than asked when stopped early */
    double seconds;    /* wall time of the whole generation */
    double forward_seconds; /* time spent inside forward passes */
} um_generation;

UM_API um_generate_params um_generate_default_params(void);

/* Generates with the LLaDA reference sampler (ML-GSAI/LLaDA generate.py),
 * decision for decision, or with the accelerations params selects (cache,
 * decoder, schedule; Fast-dLLM's prefix and dual caches and threshold decoding
 * reproduce its generate.py). A block ends when it has no mask left. Prompt ids
 * equal to the model's mask id are masks to fill (infilling). */
UM_API um_status um_generate(um_context *ctx, const int32_t *prompt, int n_prompt, const um_generate_params *params,
                             um_generation *out, um_error *err);
UM_API void um_generation_free(um_generation *gen);

/* Steppable generation: um_generate is a loop over one session.
 *
 *     um_session *s;
 *     um_session_begin(m, prompt, n_prompt, &gp, &s, &err);
 *     while (!um_session_finished(s))
 *         um_session_step(ctx, s, &err);        (or um_sessions_step over many)
 *     um_session_result(s, &out, &err);
 *     um_session_free(s);
 *
 * A session holds one request's canvas, caches and decoder state; each step
 * runs one forward pass and commits what the decoder chooses. Random draws
 * are keyed by (seed, step, position), so a session's result is the same
 * whatever it is stepped with. */
UM_API um_status um_session_begin(const um_model *model, const int32_t *prompt, int n_prompt,
                                  const um_generate_params *params, um_session **out, um_error *err);
/* One step of every unfinished session among s[0 .. n), as ONE forward pass
 * over all their sequences (the weights are read once for all). A session
 * whose step callback asks to stop finishes with UM_ERR_ABORTED, and one
 * whose KV cache cannot be allocated with UM_ERR_NOMEM (their results say
 * so), without disturbing the others; an error of the pass itself (out of
 * memory) is returned and finishes every session stepped, with that error.
 * Sessions may join and leave between calls, and any context of the model
 * may step a session (its caches live in the kind of backend that first
 * stepped it: today every context runs on the CPU). */
UM_API um_status um_sessions_step(um_context *ctx, um_session *const *s, int n, um_error *err);
UM_API um_status um_session_step(um_context *ctx, um_session *s, um_error *err);
UM_API bool um_session_finished(const um_session *s);
/* Finishes s now, as if its step callback had asked to stop. */
UM_API void um_session_cancel(um_session *s);
/* The finished session's generation (the tokens move to out; free with
 * um_generation_free), or the error that finished it: UM_ERR_ABORTED after
 * a cancel or a callback's stop, with what was committed so far in out. */
UM_API um_status um_session_result(um_session *s, um_generation *out, um_error *err);
UM_API void um_session_free(um_session *s);

/* Resident and peak resident memory of this process, in bytes (0 if unknown). */
UM_API void um_memory_usage(size_t *resident, size_t *peak);

UM_API const char *um_status_name(um_status status);

/* ---- text: a model's tokenizer and chat template ----------------------------
 * From text to text without the command line: load the tokenizer of the
 * model (the same path as um_model_open: a GGUF file, a Hugging Face
 * directory, or a tokenizer.json), encode a prompt or a conversation, decode
 * the generated ids. examples/generate.c shows the round trip. */

typedef struct um_tokenizer um_tokenizer;

typedef struct {
    const char *role;    /* "system", "user", "assistant" (others pass through) */
    const char *content; /* NUL-terminated */
} um_chat_message;

UM_API um_status um_tokenizer_load(const char *path, um_tokenizer **out, um_error *err);
UM_API void um_tokenizer_free(um_tokenizer *t);
/* text (len bytes) to ids, malloc'd into *ids (free() them); special tokens
 * written in the text (<|mdm_mask|>, ...) are parsed as such when
 * parse_special. No BOS is added. */
UM_API um_status um_tokenizer_encode(um_tokenizer *t, const char *text, size_t len, bool parse_special,
                                     int32_t **ids, size_t *n_ids, um_error *err);
/* ids to a malloc'd, NUL-terminated *text of *len bytes (free() it); special
 * tokens left out when skip_special. */
UM_API um_status um_tokenizer_decode(const um_tokenizer *t, const int32_t *ids, size_t n_ids, bool skip_special,
                                     char **text, size_t *len, um_error *err);
/* A conversation rendered with the model's chat template (as transformers'
 * apply_chat_template with add_generation_prompt: ready for the assistant's
 * answer, BOS included where the template writes it) and encoded into
 * malloc'd *ids. */
UM_API um_status um_chat_prompt(um_tokenizer *t, const um_chat_message *msgs, size_t n, int32_t **ids,
                                size_t *n_ids, um_error *err);

#ifdef __cplusplus
}
#endif
#endif /* UNMASK_H */
