#include "kernels/moe.h"

#include <math.h>
#include <string.h>

/* Inserts expert e of score p into the k best so far (best[0] highest),
 * of which have are filled. */
static void keep_best(int32_t *best, float *score, int have, int k, int32_t e, float p) {
    int at = have < k ? have : k;
    while (at > 0 && p > score[at - 1])
        at--;
    if (at >= k)
        return;
    int last = have < k ? have : k - 1;
    memmove(best + at + 1, best + at, (size_t)(last - at) * sizeof *best);
    memmove(score + at + 1, score + at, (size_t)(last - at) * sizeof *score);
    best[at] = e;
    score[at] = p;
}

/* The router's scores of one token's logits into s. */
static void scores(const float *l, int n_expert, um_moe_gating gating, float *s) {
    if (gating == UM_GATING_SIGMOID) {
        for (int e = 0; e < n_expert; e++)
            s[e] = 1.0f / (1.0f + expf(-l[e]));
        return;
    }
    float max = l[0], sum = 0;
    for (int e = 1; e < n_expert; e++)
        max = l[e] > max ? l[e] : max;
    for (int e = 0; e < n_expert; e++)
        sum += expf(l[e] - max);
    for (int e = 0; e < n_expert; e++)
        s[e] = expf(l[e] - max) / sum;
}

/* Group-limited choice: marks allowed[e] for the experts of the n_used
 * groups whose two best choice scores c sum highest. */
static void allowed_groups(const float *c, int n_expert, int n_group, int n_used, bool *allowed) {
    int per = n_expert / n_group;
    int32_t groups[UM_MOE_MAX_GROUPS];
    float group_score[UM_MOE_MAX_GROUPS];
    for (int g = 0; g < n_group; g++) {
        int32_t top[2];
        float v[2];
        int two = per < 2 ? per : 2;
        for (int j = 0; j < per; j++)
            keep_best(top, v, j, two, j, c[g * per + j]);
        keep_best(groups, group_score, g, n_used, g, two == 2 ? v[0] + v[1] : v[0]);
    }
    memset(allowed, 0, (size_t)n_expert * sizeof *allowed);
    for (int i = 0; i < n_used; i++)
        for (int j = 0; j < per; j++)
            allowed[groups[i] * per + j] = true;
}

void um_moe_route(const float *logits, int n, int n_expert, int k, const um_moe_router *r, const float *bias,
                  int32_t *ids, float *weights) {
    float s[UM_MOE_MAX_EXPERTS], c[UM_MOE_MAX_EXPERTS], chosen[UM_MOE_MAX_EXPERTS];
    bool allowed[UM_MOE_MAX_EXPERTS];
    for (int t = 0; t < n; t++) {
        scores(logits + (size_t)t * n_expert, n_expert, r->gating, s);
        for (int e = 0; e < n_expert; e++)
            c[e] = bias ? s[e] + bias[e] : s[e];
        if (r->n_group > 1)
            allowed_groups(c, n_expert, r->n_group, r->n_group_used, allowed);
        int32_t *best = ids + (size_t)t * k;
        for (int e = 0, have = 0; e < n_expert; e++)
            if (r->n_group <= 1 || allowed[e])
                keep_best(best, chosen, have++, k, e, c[e]);
        float *w = weights + (size_t)t * k, kept = 0;
        for (int j = 0; j < k; j++)
            kept += w[j] = s[best[j]];
        for (int j = 0; j < k; j++)
            w[j] = (r->renormalize ? w[j] / (kept + 1e-20f) : w[j]) * r->scale;
    }
}

void um_moe_group(const int32_t *ids, int n, int k, int n_expert, int32_t *start, int32_t *token_of,
                  int32_t *row_of) {
    memset(start, 0, (size_t)(n_expert + 1) * sizeof *start);
    for (int i = 0; i < n * k; i++)
        start[ids[i] + 1]++;
    for (int e = 0; e < n_expert; e++)
        start[e + 1] += start[e];
    /* a counting sort: pairs in token order land in their expert's rows in order */
    for (int i = 0; i < n * k; i++) {
        int32_t r = start[ids[i]]++;
        token_of[r] = i / k;
        row_of[i] = r;
    }
    for (int e = n_expert; e > 0; e--)
        start[e] = start[e - 1];
    start[0] = 0;
}
