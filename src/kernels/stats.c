#include "kernels/stats.h"

#include <math.h>

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* log(sum(exp(x))) without overflow */
static double log_sum_exp(const float *x, int n, int best) {
    double mx = x[best], sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - mx);
    return mx + log(sum);
}

/* KL(P || Q) = sum_i p_i (log p_i - log q_i), with log-probabilities from logits. */
static double row_kl(const float *p_logits, const float *q_logits, int n, int p_best, int q_best) {
    double lp = log_sum_exp(p_logits, n, p_best), lq = log_sum_exp(q_logits, n, q_best), kl = 0;
    for (int i = 0; i < n; i++) {
        double log_p = (double)p_logits[i] - lp, log_q = (double)q_logits[i] - lq;
        kl += exp(log_p) * (log_p - log_q);
    }
    return kl > 0 ? kl : 0; /* rounding can leave a tiny negative */
}

void um_compare_logits(const float *ref, const float *test, int64_t rows, int vocab, um_logit_stats *out) {
    double kl_sum = 0, kl_max = 0, sq = 0;
    int64_t agree = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *p = ref + r * vocab, *q = test + r * vocab;
        int pb = argmax(p, vocab), qb = argmax(q, vocab);
        double kl = row_kl(p, q, vocab, pb, qb);
        kl_sum += kl;
        if (kl > kl_max)
            kl_max = kl;
        agree += pb == qb;
        for (int i = 0; i < vocab; i++)
            sq += ((double)p[i] - q[i]) * ((double)p[i] - q[i]);
    }
    out->rows = rows;
    out->mean_kl = rows ? kl_sum / (double)rows : 0;
    out->max_kl = kl_max;
    out->top1 = rows ? (double)agree / (double)rows : 0;
    out->rms_error = rows ? sqrt(sq / ((double)rows * vocab)) : 0;
}
