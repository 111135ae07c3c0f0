/* The generation loop's parts, split as dInfer does: the schedule (how many
 * tokens each step commits), the sampler (which token a masked position gets,
 * and how confident it is) and the decoder (which positions to commit). */
#ifndef UM_DIFFUSION_H
#define UM_DIFFUSION_H

#include <stdint.h>

#include "unmask.h"

/* LLaDA's get_num_transfer_tokens: n_masked tokens over steps, base count
 * n_masked / steps each, the remainder given one each to the first steps. */
void um_schedule_transfer_counts(int n_masked, int steps, int *counts);

/* Checks the lengths the reference sampler needs; err names the parameter. */
um_status um_schedule_check(const um_generate_params *p, int n_prompt, int max_seq, um_error *err);

typedef struct {
    double temperature;
    um_remasking remasking;
    int eot_inf_id; /* >= 0: that logit is -inf in the confidence softmax */
    uint64_t seed;
} um_sampler;

/* Picks the token for one position from its logits (argmax, or Gumbel-max in
 * float64 when temperature > 0) and returns its confidence. step and pos key
 * the random streams, so draws are reproducible and thread-independent. */
double um_sample_position(const um_sampler *s, float *logits, int n_vocab, int step, int pos, int32_t *token);

/* Positions with the k highest confidences (ties: lower position first),
 * written to out in that order; returns how many (min(k, n)), -1 when out of
 * memory. */
int um_select_topk(const int32_t *pos, const double *conf, int n, int k, int32_t *out);

#endif
