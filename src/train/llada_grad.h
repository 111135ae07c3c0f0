/* Training LLaDA: the masked-diffusion objective's loss and its gradient
 * with respect to every parameter (the LLaDA guidelines' pre-training and SFT
 * losses, ML-GSAI/LLaDA GUIDELINES.md).
 *
 * Parameters, gradients and activations are f32, every product runs on the
 * inference matmul kernels and the pool's threads; sums that decide the loss
 * (softmax normalizers, RMS) are accumulated in double. Gradients have the
 * parameters' layout (PyTorch [out, in]).
 *
 * Pre-training: x0 is a clean batch, noisy the same with some positions
 * replaced by the mask id, each position masked with probability p_mask:
 *
 *   loss = sum over masked (r, i) of CE(logits[r][i], x0[r][i]) / p_mask[r][i]  / (n_rows * seq)
 *
 * SFT: the first prompt_lengths[r] positions of row r are never masked, and
 * each masked token's loss is also divided by its row's answer length:
 *
 *   loss = sum over masked (r, i) of CE / p_mask[r][i] / (seq - prompt_lengths[r])  / n_rows */
#ifndef UM_TRAIN_LLADA_GRAD_H
#define UM_TRAIN_LLADA_GRAD_H

#include <stdint.h>

#include "base/pool.h"
#include "model/model.h"

/* One parameter tensor: its Hugging Face name ("model.transformer.blocks.0.q_proj.weight"),
 * shape and f32 data. */
typedef struct {
    char name[96];
    int n_dims;
    int64_t shape[2];
    int64_t numel;
    float *data;
} um_train_tensor;

typedef struct {
    float *attn_norm, *ff_norm;    /* [d] */
    float *wq, *wk, *wv, *wo;      /* [d][d], [kv][d], [kv][d], [d][d] */
    float *w_gate, *w_up, *w_down; /* ff_proj [ff][d], up_proj [ff][d], ff_out [d][ff] */
} um_train_layer;

/* Every parameter of a LLaDA model (or a gradient of the same shapes). The
 * pointers of layers, wte, ln_f and head point into tensors' data. */
typedef struct {
    um_hparams hp;
    float *wte;  /* [n_vocab][d] */
    float *ln_f; /* [d] */
    float *head; /* [n_vocab][d]; == wte when the head is tied to the embedding */
    um_train_layer *layers;
    um_train_tensor *tensors; /* in the order wte, blocks.0..n-1, ln_f, ff_out (untied) */
    int n_tensors;
} um_train_params;

/* Zero-filled parameters of the shapes hp describes. Biases and llama.cpp's
 * interleaved RoPE are not supported (UM_ERR_UNSUPPORTED). */
um_status um_train_params_init(um_train_params *p, const um_hparams *hp, um_error *err);
/* The weights of a loaded model, converted to f32. */
um_status um_train_params_from_model(um_train_params *p, const um_model *m, um_error *err);
void um_train_params_zero(um_train_params *p);
void um_train_params_free(um_train_params *p);
/* The tensor of that name, NULL when there is none. */
const um_train_tensor *um_train_params_find(const um_train_params *p, const char *name);

/* One batch of the masked-diffusion objective. */
typedef struct {
    int n_rows, seq;
    const int32_t *x0;             /* [n_rows][seq] clean tokens: the targets */
    const int32_t *noisy;          /* [n_rows][seq] model input; masked positions hold hp.mask_id */
    const double *p_mask;          /* [n_rows][seq] masking probability of each position */
    const int32_t *prompt_lengths; /* [n_rows] for SFT; NULL for pre-training */
} um_mdm_batch;

/* The weight w[r][i] of each position's cross-entropy in the loss (0 where
 * the position is not masked), as in the formulas above. Checks the batch:
 * token ids in range, p_mask in (0, 1] where masked, no masked prompt position. */
um_status um_mdm_loss_weights(const um_mdm_batch *b, int mask_id, int n_vocab, double *w, um_error *err);

/* The loss of batch b under parameters p, on the threads of pool; when grad
 * is not NULL, adds the loss's gradient with respect to every parameter into
 * grad (initialize it with um_train_params_init, which zeroes it;
 * um_train_params_zero between steps). */
um_status um_llada_loss_grad(um_pool *pool, const um_train_params *p, const um_mdm_batch *b, double *loss,
                             um_train_params *grad, um_error *err);

#endif
