/* Training small LLaDA models with the masked-diffusion objective
 * (llada_grad.h): AdamW, the learning-rate schedule, seeded masking, data
 * (packed text or prompt/response pairs) and checkpoints.
 *
 * Everything is deterministic given the seed: masks come from random streams
 * keyed by (seed, step, row), rows are visited in a seeded order. */
#ifndef UM_TRAIN_TRAIN_H
#define UM_TRAIN_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"
#include "train/llada_grad.h"

/* ---- optimizer ---- */

typedef struct {
    double lr;           /* peak learning rate */
    double beta1, beta2; /* 0.9, 0.95 */
    double eps;          /* 1e-8 */
    double weight_decay; /* decoupled; applied to matrices (2-D tensors) only */
    double clip;         /* global gradient-norm clip; 0: none */
    int warmup;          /* linear warm-up steps */
    int total_steps;     /* cosine decay ends here */
    double min_lr_ratio; /* the decay's floor, a fraction of lr (0.1) */
} um_adamw_config;

um_adamw_config um_adamw_default_config(void);

/* The learning rate of update number step (1-based): lr * step / warmup during
 * the warm-up, then cosine from lr down to lr * min_lr_ratio at total_steps. */
double um_lr_at(const um_adamw_config *c, int step);

/* Scales g so its global L2 norm is at most clip (PyTorch clip_grad_norm_:
 * factor clip / (norm + 1e-6) when norm > clip); returns the norm before. */
double um_clip_grad_norm(um_train_params *g, double clip);

/* One AdamW update (Loshchilov & Hutter; PyTorch AdamW) of p with gradient g
 * and moments m, v, for update number step (1-based), at learning rate lr:
 *   p -= lr * wd * p  (2-D tensors); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
 *   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps) */
void um_adamw_step(um_train_params *p, const um_train_params *g, um_train_params *m, um_train_params *v,
                   const um_adamw_config *c, int step, double lr);

/* ---- masking ---- */

/* For each row r: t_r = frac(u + r / n_rows) with u ~ U(0, 1) from the
 * stream (seed, step) (low-discrepancy times: each t_r is U(0, 1)), p_mask =
 * (1 - eps) t + eps, and each position (past prompt_lengths[r] when not NULL)
 * becomes mask_id with probability p_mask, drawn from the stream (seed, step,
 * r). Writes noisy and p_mask [n_rows][seq]. */
void um_mdm_mask(uint64_t seed, uint64_t step, int n_rows, int seq, const int32_t *x0, const int32_t *prompt_lengths,
                 int mask_id, double eps, int32_t *noisy, double *p_mask);

/* ---- data ---- */

typedef struct {
    int n_rows, seq;
    int32_t *tokens;         /* [n_rows][seq] */
    int32_t *prompt_lengths; /* [n_rows] for SFT; NULL for pre-training */
} um_train_data;

/* Pre-training rows: text split into documents at every occurrence of sep
 * (NULL: "<|endoftext|>"; documents are trimmed of surrounding whitespace,
 * empty ones skipped), each encoded and followed by eos, all concatenated and
 * cut into rows of seq tokens; the last row is padded with eos. */
um_status um_train_data_text(um_tokenizer *t, const char *text, size_t len, const char *sep, int eos, int seq,
                             um_train_data *d, um_error *err);

/* SFT rows from JSONL lines {"prompt": ..., "response": ...}: prompt then
 * response (with fmt: the chat rendering of a user turn with the generation
 * prompt, then the response; without: the two texts concatenated), then eos,
 * padded with eos to seq as LLaDA's SFT does; the prompt's tokens are the
 * row's prompt length. Responses are cut to fit; a prompt of seq tokens or
 * more is an error naming the line. */
um_status um_train_data_sft(um_tokenizer *t, const char *jsonl, size_t len, const um_chat_format *fmt, int eos,
                            int seq, um_train_data *d, um_error *err);
void um_train_data_free(um_train_data *d);

/* ---- the training loop ---- */

typedef struct {
    um_adamw_config opt;
    int batch;        /* rows per micro-batch */
    int accum;        /* micro-batches per update */
    double mask_eps;  /* 1e-3 */
    uint64_t seed;
    /* pre-training: the share of micro-batches cut to a random length in
     * [1, seq] (LLaDA's guidelines: 1%), so that the model also meets canvases
     * shorter than its rows, as generation gives it */
    double random_length;
} um_train_config;

typedef struct {
    um_train_params p, g, m, v;
    um_pool *pool; /* the threads of every forward and backward pass */
    int step;      /* updates done */
    double tokens; /* row positions trained on by this process (random lengths counted as cut) */
    int32_t *order; /* the seeded visiting order of the data's rows */
    int n_order;
} um_trainer;

/* From the weights of a loaded model (converted to f32), moments zero, with
 * a pool of n_threads threads. */
um_status um_trainer_init(um_trainer *tr, const um_model *m, int n_threads, um_error *err);
void um_trainer_free(um_trainer *tr);

/* One update: accum micro-batches of batch rows (the rows after those the
 * previous steps used, in a seeded order), the mean of their losses and
 * gradients, clipping, AdamW. *loss: the mean loss, *grad_norm before clipping. */
um_status um_trainer_step(um_trainer *tr, const um_train_config *c, const um_train_data *d, double *loss,
                          double *grad_norm, um_error *err);

/* The loss of p on (up to max_rows, 0: all) rows of d, masked with a fixed
 * stream of seed (the same masks every call): validation. */
um_status um_train_eval(um_pool *pool, const um_train_params *p, const um_train_data *d, uint64_t seed,
                        double mask_eps, int max_rows, double *loss, um_error *err);

/* Writes dir/config.json (a copy of config_json, the model's), dir/model.safetensors
 * (F32 weights: `unmask run -m dir` loads it) and dir/optimizer.safetensors
 * (F32 parameters and moments, and the step) for resuming. */
um_status um_trainer_save(const um_trainer *tr, const char *config_json, const char *dir, um_error *err);
/* Restores parameters, moments and step from dir/optimizer.safetensors into a
 * trainer initialised for the same shapes. */
um_status um_trainer_resume(um_trainer *tr, const char *dir, um_error *err);

#endif
