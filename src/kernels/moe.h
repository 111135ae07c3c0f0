/* Mixture-of-experts routing on the host: which experts each token runs and
 * with what weight, and the tokens grouped by expert so that each expert's
 * weights are read once per forward for all of its tokens (ggml's
 * mul_mat_id does the same). Both are deterministic: the groups list their
 * tokens in increasing order whatever the thread count. */
#ifndef UM_KERNELS_MOE_H
#define UM_KERNELS_MOE_H

#include <stdbool.h>
#include <stdint.h>

/* For each of n tokens, from its router logits [n][n_expert]: the softmax
 * over all the experts (f32, as upstream's softmax(dtype=float)), then the
 * k experts of highest score (highest first; equal scores to the lower
 * index) into ids[n][k] and their scores into weights[n][k], divided by
 * their sum when renormalize. */
void um_moe_route(const float *logits, int n, int n_expert, int k, bool renormalize, int32_t *ids, float *weights);

/* The n * k (token, slot) pairs of ids[n][k] grouped by expert: expert e's
 * rows are [start[e], start[e + 1]) of the grouped order (start has
 * n_expert + 1 entries), row r serves token token_of[r], and pair
 * (t, j)'s row is row_of[t * k + j]. */
void um_moe_group(const int32_t *ids, int n, int k, int n_expert, int32_t *start, int32_t *token_of,
                  int32_t *row_of);

#endif
