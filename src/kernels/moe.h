/* Mixture-of-experts routing on the host: which experts each token runs and
 * with what weight, and the tokens grouped by expert so that each expert's
 * weights are read once per forward for all of its tokens (ggml's
 * mul_mat_id does the same). Both are deterministic: the groups list their
 * tokens in increasing order whatever the thread count. */
#ifndef UM_KERNELS_MOE_H
#define UM_KERNELS_MOE_H

#include <stdbool.h>
#include <stdint.h>

/* The most experts (and expert groups) a router may have: the validator's bound. */
#define UM_MOE_MAX_EXPERTS 4096
#define UM_MOE_MAX_GROUPS 4096

/* How a router turns its logits into scores. */
typedef enum {
    UM_GATING_SOFTMAX, /* softmax over all the experts (LLaDA-MoE) */
    UM_GATING_SIGMOID  /* each expert's sigmoid on its own (LLaDA2) */
} um_moe_gating;

/* A router's settings (the same in every layer; the expert bias is the layer's). */
typedef struct {
    um_moe_gating gating;
    int n_group, n_group_used; /* group-limited choice: the experts in n_group contiguous groups, of which the
                                  n_group_used of highest group score stay (0, 0: no groups) */
    bool renormalize;          /* the kept scores divided by their sum (+ 1e-20) */
    float scale;               /* then multiplied by this (routed_scaling_factor; 1 for none) */
} um_moe_router;

/* For each of n tokens, from its router logits [n][n_expert]: the scores
 * (softmax or sigmoid, in f32 as upstream's router_dtype), then the choice:
 * by score + bias[e] when bias is not NULL (the bias steers the choice only);
 * with groups, a group scores the sum of its two best, and only the experts
 * of its n_group_used best groups compete. The k chosen (highest first;
 * equal scores to the lower index) go to ids[n][k], their unbiased scores,
 * renormalized and scaled as r says, to weights[n][k]. */
void um_moe_route(const float *logits, int n, int n_expert, int k, const um_moe_router *r, const float *bias,
                  int32_t *ids, float *weights);

/* The n * k (token, slot) pairs of ids[n][k] grouped by expert: expert e's
 * rows are [start[e], start[e + 1]) of the grouped order (start has
 * n_expert + 1 entries), row r serves token token_of[r], and pair
 * (t, j)'s row is row_of[t * k + j]. */
void um_moe_group(const int32_t *ids, int n, int k, int n_expert, int32_t *start, int32_t *token_of,
                  int32_t *row_of);

#endif
