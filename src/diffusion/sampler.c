/* Token choice and scores for one masked position, as the reference
 * sampler computes them:
 *   x0   = argmax(logits)                                     temperature 0
 *        = argmax(exp(logits) / (-log u)^T), u ~ U[0,1) f64   temperature T > 0
 *   conf = softmax(logits)[x0]        (low_confidence remasking)
 *        = u' ~ U[0,1)               (random remasking)
 * plus, for the margin and entropy decoders, the two largest probabilities
 * and the entropy of softmax(logits). The Gumbel form is evaluated as
 * logits - T*log(-log u), the log of the reference's expression: the same
 * argmax without overflowing exp(). */
#include <math.h>

#include "base/rng.h"
#include "diffusion/diffusion.h"

enum { STREAM_GUMBEL = 1, STREAM_REMASK = 2 };

static int32_t argmax_f32(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int32_t gumbel_argmax(const float *logits, int n, double temperature, um_rng *rng) {
    int32_t best = 0;
    double best_v = 0;
    for (int i = 0; i < n; i++) {
        double u = um_rng_uniform(rng);
        double v = (double)logits[i] - temperature * log(-log(u));
        if (i == 0 || v > best_v) {
            best_v = v;
            best = i;
        }
    }
    return best;
}

/* softmax(logits)[k] in double precision; with st, also the two largest
 * probabilities and the entropy. */
static double softmax_at(const float *logits, int n, int32_t k, um_pick *st) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx)
            mx = logits[i];
    if (mx == -INFINITY)
        return 0.0;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - mx);
    if (st) {
        /* H = log(sum) - sum_i p_i (l_i - mx); the runner-up logit gives p2 */
        float second = -INFINITY;
        bool top_seen = false;
        double acc = 0;
        for (int i = 0; i < n; i++) {
            if (logits[i] == mx && !top_seen)
                top_seen = true;
            else if (logits[i] > second)
                second = logits[i];
            double e = exp((double)logits[i] - mx);
            if (e > 0)
                acc += e * ((double)logits[i] - mx);
        }
        st->p1 = 1.0 / sum;
        st->p2 = exp((double)second - mx) / sum;
        st->entropy = log(sum) - acc / sum;
    }
    return exp((double)logits[k] - mx) / sum;
}

void um_sample_pick(const um_sampler *s, bool stats, float *logits, int n_vocab, int step, int pos, um_pick *out) {
    um_rng rng;
    out->p1 = out->p2 = out->entropy = 0;
    if (s->temperature > 0) {
        um_rng_stream(&rng, s->seed, STREAM_GUMBEL, (uint64_t)step, (uint64_t)pos);
        out->token = gumbel_argmax(logits, n_vocab, s->temperature, &rng);
    } else {
        out->token = argmax_f32(logits, n_vocab);
    }
    if (s->remasking == UM_REMASK_RANDOM) {
        um_rng_stream(&rng, s->seed, STREAM_REMASK, (uint64_t)step, (uint64_t)pos);
        out->conf = um_rng_uniform(&rng);
        return;
    }
    /* The reference's confidence_eos_eot_inf sets the EOT logit to -inf after
     * the token is chosen and before the confidence softmax. */
    if (s->eot_inf_id >= 0 && s->eot_inf_id < n_vocab)
        logits[s->eot_inf_id] = -INFINITY;
    out->conf = softmax_at(logits, n_vocab, out->token, stats ? out : NULL);
}
