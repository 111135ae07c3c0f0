/* The pick of one masked position from its logits, as the references
 * compute it. First the logits are adjusted, in the reference's order:
 *   guidance  cond = un + (cfg_scale + 1)(cond - un)     (LLaDA's CFG)
 *   EOS       logits[eos] = -inf                          (logits_eos_inf)
 *   credit    the top-1 token's credit grows by p_top1^gamma, then every
 *             token with credit gets alpha * log(1 + credit) (dInfer's
 *             CreditThresholdParallelDecoder)
 *   top-p     logits outside the nucleus = -inf           (Dream's top_p)
 *   top-k     logits below the k-th largest = -inf        (Dream's top_k)
 *   min-p     logits whose probability is below min_p times the largest one
 *             = -inf (transformers' MinPLogitsWarper, llama.cpp's min_p)
 * then the token is chosen and scored:
 *   x0   = argmax(logits)                                     temperature 0
 *        = argmax(exp(logits) / (-log u)^T), u ~ U[0,1) f64   temperature T > 0
 *   conf = softmax(logits)[x0]        (low_confidence remasking)
 *        = u' ~ U[0,1)               (random remasking)
 * plus, for the margin and entropy decoders, the two largest probabilities
 * and the entropy of softmax(logits). The Gumbel form is evaluated as
 * logits - T*log(-log u), the log of the reference's expression: the same
 * argmax without overflowing exp(). */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/pick.h"

enum { STREAM_GUMBEL = 1, STREAM_REMASK = 2, STREAM_DRAW = 3 };

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
    /* H = log(sum) - sum_i p_i (l_i - mx) */
    double acc = 0, sum = um_exp_sum_f64(um_kernel_path_get(), logits, n, mx, st ? &acc : NULL);
    if (st) { /* the runner-up logit gives p2 */
        float second = -INFINITY;
        bool top_seen = false;
        for (int i = 0; i < n; i++) {
            if (logits[i] == mx && !top_seen)
                top_seen = true;
            else if (logits[i] > second)
                second = logits[i];
        }
        st->p1 = 1.0 / sum;
        st->p2 = exp((double)second - mx) / sum;
        st->entropy = log(sum) - acc / sum;
    }
    return exp((double)logits[k] - mx) / sum;
}

static void add_credit(const um_pick_request *r, float *logits, int n_vocab) {
    int32_t top = argmax_f32(logits, n_vocab);
    double sum = 0;
    for (int t = 0; t < n_vocab; t++)
        sum += exp((double)logits[t] - logits[top]);
    float add = (float)pow(1.0 / sum, r->credit_gamma); /* p_top1^gamma */
    um_credit_entry *e = r->credit;
    int j = 0;
    while (j < *r->n_credit && e[j].tok != top)
        j++;
    if (j == *r->n_credit) /* the caller keeps a free slot */
        e[(*r->n_credit)++] = (um_credit_entry){top, 0.0f};
    e[j].credit += add;
    for (j = 0; j < *r->n_credit; j++)
        logits[e[j].tok] += (float)r->credit_alpha * logf(e[j].credit + 1.0f);
}

/* Sifts heap[i] down a min-heap of n. */
static void sift_down(float *heap, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && heap[c + 1] < heap[c])
            c++;
        if (heap[i] <= heap[c])
            return;
        float t = heap[i];
        heap[i] = heap[c];
        heap[c] = t;
        i = c;
    }
}

/* Logits below the k-th largest become -inf (ties with it stay), as
 * transformers' top-k filter does: a min-heap of the k largest seen. */
static void keep_top_k(float *logits, int n_vocab, int k) {
    if (k <= 0 || k >= n_vocab)
        return;
    float heap[UM_PICK_MAX_TOP_K];
    for (int i = 0; i < k; i++)
        heap[i] = logits[i];
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(heap, k, i);
    for (int i = k; i < n_vocab; i++)
        if (logits[i] > heap[0]) {
            heap[0] = logits[i];
            sift_down(heap, k, 0);
        }
    float kth = heap[0];
    for (int i = 0; i < n_vocab; i++)
        if (logits[i] < kth)
            logits[i] = -INFINITY;
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The k largest of x[0 .. n), largest first, into top (k <= n). */
static void largest(const float *x, int n, int k, float *top) {
    for (int i = 0; i < k; i++)
        top[i] = x[i];
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down(top, k, i);
    for (int i = k; i < n; i++)
        if (x[i] > top[0]) {
            top[0] = x[i];
            sift_down(top, k, 0);
        }
    qsort(top, (size_t)k, sizeof *top, cmp_desc);
}

/* The probability mass (unnormalised: exp((l - mx) / T)) of the logits above v. */
static double mass_above(const float *logits, int n, float v, float mx, double inv_t) {
    double m = 0;
    for (int i = 0; i < n; i++)
        if (logits[i] > v)
            m += exp(((double)logits[i] - mx) * inv_t);
    return m;
}

/* floats in order as integers: bisection over every float between two */
static int32_t float_order(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? INT32_MIN - i : i;
}

static float order_float(int32_t i) {
    i = i < 0 ? INT32_MIN - i : i;
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* The nucleus, as transformers' TopPLogitsWarper and Dream's top_p_logits
 * keep it: in order of probability (of softmax(logits / T) at temperature
 * T > 0: Dream's sample_tokens divides first), a token stays while the mass
 * of the tokens before it is at most top_p; the first always stays, and so
 * do ties with the last one kept. The rest become -inf. Token l stays iff
 * the mass above l is at most top_p, so the cut is the smallest logit with
 * that property: found among the 1024 largest (a handful of tokens usually
 * hold the mass), else by bisection over the floats below them (no
 * vocabulary-sized sort, no memory). */
static void keep_top_p(float *logits, int n_vocab, double top_p, double temperature) {
    if (!(top_p > 0 && top_p < 1))
        return;
    double inv_t = temperature > 0 ? 1.0 / temperature : 1.0;
    float mx = logits[argmax_f32(logits, n_vocab)];
    if (mx == -INFINITY)
        return;
    double limit = top_p * mass_above(logits, n_vocab, -INFINITY, mx, inv_t);
    float top[UM_PICK_MAX_TOP_K];
    int k = n_vocab < UM_PICK_MAX_TOP_K ? n_vocab : UM_PICK_MAX_TOP_K;
    largest(logits, n_vocab, k, top);
    float cut = -INFINITY;
    double before = 0; /* the mass of the tokens ranked before i */
    int i = 0;
    for (; i < k && (i == 0 || before <= limit); i++)
        before += exp(((double)top[i] - mx) * inv_t);
    if (before > limit) {
        cut = top[i - 1];
    } else if (k < n_vocab) { /* the nucleus holds more than the k largest: the smallest v with mass above <= limit */
        int64_t lo = float_order(-FLT_MAX), hi = float_order(top[k - 1]);
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (mass_above(logits, n_vocab, order_float((int32_t)mid), mx, inv_t) <= limit)
                hi = mid;
            else
                lo = mid + 1;
        }
        cut = order_float((int32_t)lo);
    }
    for (int j = 0; j < n_vocab; j++)
        if (logits[j] < cut)
            logits[j] = -INFINITY;
}

/* min-p: p_i >= min_p * p_max, the probabilities of the logits over the
 * temperature (when > 0, as the warper sees them after it), i.e.
 * (l_i - l_max) / T >= log(min_p). */
static void keep_min_p(float *logits, int n_vocab, double min_p, double temperature) {
    if (!(min_p > 0 && min_p <= 1))
        return;
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double floor = (double)mx + (temperature > 0 ? temperature : 1.0) * log(min_p);
    for (int i = 0; i < n_vocab; i++)
        if ((double)logits[i] < floor)
            logits[i] = -INFINITY;
}

void um_pick_row(const um_pick_request *r, float *logits, const float *un, int n_vocab, um_pick *out) {
    if (un)
        for (int i = 0; i < n_vocab; i++)
            logits[i] = un[i] + r->guidance * (logits[i] - un[i]);
    if (r->eos_inf >= 0 && r->eos_inf < n_vocab)
        logits[r->eos_inf] = -INFINITY;
    if (r->credit)
        add_credit(r, logits, n_vocab);
    keep_top_p(logits, n_vocab, r->top_p, r->temperature);
    keep_top_k(logits, n_vocab, r->top_k);
    keep_min_p(logits, n_vocab, r->min_p, r->temperature);
    um_rng rng;
    out->p1 = out->p2 = out->entropy = out->draw = 0;
    if (r->draw) {
        um_rng_stream(&rng, r->seed, STREAM_DRAW, (uint64_t)r->step, (uint64_t)r->pos);
        out->draw = um_rng_uniform(&rng);
    }
    if (r->temperature > 0) {
        um_rng_stream(&rng, r->seed, STREAM_GUMBEL, (uint64_t)r->step, (uint64_t)r->pos);
        out->token = gumbel_argmax(logits, n_vocab, r->temperature, &rng);
    } else {
        out->token = argmax_f32(logits, n_vocab);
    }
    if (r->random_remasking) {
        um_rng_stream(&rng, r->seed, STREAM_REMASK, (uint64_t)r->step, (uint64_t)r->pos);
        out->conf = um_rng_uniform(&rng);
        return;
    }
    /* The reference's confidence_eos_eot_inf sets the EOT logit to -inf after
     * the token is chosen and before the confidence softmax. */
    if (r->eot_inf >= 0 && r->eot_inf < n_vocab)
        logits[r->eot_inf] = -INFINITY;
    out->conf = softmax_at(logits, n_vocab, out->token, r->stats ? out : NULL);
}
