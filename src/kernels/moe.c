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

void um_moe_route(const float *logits, int n, int n_expert, int k, bool renormalize, int32_t *ids, float *weights) {
    for (int t = 0; t < n; t++) {
        const float *l = logits + (size_t)t * n_expert;
        float max = l[0], sum = 0;
        for (int e = 1; e < n_expert; e++)
            max = l[e] > max ? l[e] : max;
        for (int e = 0; e < n_expert; e++)
            sum += expf(l[e] - max);
        int32_t *best = ids + (size_t)t * k;
        float *w = weights + (size_t)t * k;
        for (int e = 0; e < n_expert; e++)
            keep_best(best, w, e, k, e, expf(l[e] - max) / sum);
        float kept = 0;
        for (int j = 0; j < k; j++)
            kept += w[j];
        for (int j = 0; renormalize && j < k; j++)
            w[j] /= kept;
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
