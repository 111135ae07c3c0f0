/* Decoders: which of a step's candidates (the masked positions it has
 * logits for) to commit. Each scores the candidates, sorts them best first
 * (ties: lower position first) and keeps a prefix or a subset:
 *
 *   topk          the schedule's count by confidence (LLaDA's reference)
 *   threshold     Fast-dLLM: the best, and every other with confidence >= tau
 *   factor        Fast-dLLM: rank n (1-based) while confidence >= 1 - f/(n+1),
 *                 the best always. (Fast-dLLM's get_transfer_index_dynamic
 *                 also commits the last rank when it is the first to fail;
 *                 this follows the rule as its paper states it.)
 *   margin        the schedule's count by p_top1 - p_top2 (Dream's topk_margin)
 *   entropy       the schedule's count by lowest entropy (Dream's entropy)
 *   med           every candidate with entropy < lambda, the best always
 *   hierarchical  dInfer: the best of each run of adjacent candidates when its
 *                 confidence > low_threshold, every candidate > threshold, and
 *                 the best overall
 *   credit        dInfer: threshold decoding on logits boosted by the credit
 *                 (kernels/pick.c, before sampling)
 *   origin        Dream: every candidate independently, with the timesteps
 *                 schedule's probability (um_decode_origin; no ranking)
 *
 * The quota schedule (Fast-dLLM's Dream threshold decoding) lets the
 * threshold decoder rank only the step's quota of best candidates. With
 * alg_temp (Dream's), the count-based decoders sample their count of
 * positions from softmax(score / alg_temp) without replacement instead of
 * taking the best: as torch.multinomial does, by the Gumbel-top-k trick
 * (the count largest of score / alg_temp + Gumbel noise from the picks'
 * draws).
 *
 * EOS early rejection makes EOS candidates look less sure early in a block:
 * their confidence or margin is multiplied by gamma, their entropy divided. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "diffusion/diffusion.h"

typedef struct {
    double score; /* higher is better */
    int32_t pos;
    int idx;      /* candidate index */
} scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* The candidate's score under the decoder, with EOS rejection's gamma. */
static double score_of(um_decoder d, const um_pick *pk, bool eos, double gamma) {
    double g = eos ? gamma : 1.0;
    switch (d) {
    case UM_DECODER_MARGIN:
        return (pk->p1 - pk->p2) * g;
    case UM_DECODER_ENTROPY:
    case UM_DECODER_MED:
        return -pk->entropy / g;
    default:
        return pk->conf * g;
    }
}

/* hierarchical: marks the best of each run of adjacent positions (all that tie
 * with it) when above low, and everything above high. */
static void mark_hierarchical(const int32_t *pos, const double *score, int n, double low, double high, bool *take) {
    for (int a = 0; a < n;) {
        int b = a + 1;
        while (b < n && pos[b] == pos[b - 1] + 1)
            b++;
        double best = score[a];
        for (int i = a + 1; i < b; i++)
            best = fmax(best, score[i]);
        for (int i = a; i < b; i++)
            if (score[i] == best && score[i] > low)
                take[i] = true;
        a = b;
    }
    for (int i = 0; i < n; i++)
        if (score[i] > high)
            take[i] = true;
}

int um_decode_select(const um_generate_params *p, const int32_t *pos, const um_pick *picks, int n, int count,
                     int eos_id, double eos_gamma, int32_t *out) {
    if (n <= 0)
        return 0;
    scored *s = malloc((size_t)n * sizeof *s);
    double *score = malloc((size_t)n * sizeof *score);
    bool *take = calloc((size_t)n, sizeof *take);
    if (!s || !score || !take) {
        free(s);
        free(score);
        free(take);
        return -1;
    }
    bool sample = p->alg_temp > 0 && um_decoder_counts(p->decoder);
    for (int i = 0; i < n; i++) {
        score[i] = score_of(p->decoder, &picks[i], eos_id >= 0 && picks[i].token == eos_id, eos_gamma);
        if (sample)
            score[i] = score[i] / p->alg_temp - log(-log(picks[i].draw));
        s[i] = (scored){score[i], pos[i], i};
    }
    qsort(s, (size_t)n, sizeof *s, cmp_scored);
    if (p->decoder == UM_DECODER_HIERARCHICAL)
        mark_hierarchical(pos, score, n, p->low_threshold, p->threshold, take);
    int k = 0;
    if (p->loop == UM_LOOP_BLOCKS && (p->decoder == UM_DECODER_THRESHOLD || p->decoder == UM_DECODER_CREDIT)) {
        /* LLaDA2: every candidate strictly above the threshold when they are at least the step's count, else
           the count best (the ranking's prefix either way) */
        int above = 0;
        while (above < n && s[above].score > p->threshold)
            above++;
        for (int want = above >= count ? above : count < n ? count : n; k < want; k++)
            out[k] = s[k].pos;
        free(s);
        free(score);
        free(take);
        return k;
    }
    int ranked = p->schedule == UM_SCHEDULE_QUOTA ? count : n; /* the quota: only the best count are considered */
    for (int r = 0; r < ranked && r < n; r++) {
        double v = s[r].score;
        bool keep;
        switch (p->decoder) {
        case UM_DECODER_THRESHOLD:
        case UM_DECODER_CREDIT:
            keep = r == 0 || v >= p->threshold;
            break;
        case UM_DECODER_FACTOR: /* a prefix: ends at the first rank that fails */
            keep = r == 0 || v >= 1.0 - p->factor / (r + 2);
            break;
        case UM_DECODER_MED:
            keep = r == 0 || -v < p->entropy_bound;
            break;
        case UM_DECODER_HIERARCHICAL:
            keep = r == 0 || take[s[r].idx];
            break;
        default: /* topk, margin, entropy: the schedule's count */
            keep = r < count;
            break;
        }
        if (keep)
            out[k++] = s[r].pos;
        else if (p->decoder == UM_DECODER_FACTOR || um_decoder_counts(p->decoder))
            break;
    }
    free(s);
    free(score);
    free(take);
    return k;
}

int um_decode_dinfer(const um_generate_params *p, const int32_t *pos, const um_pick *picks, int n, double threshold,
                     int mask_id, int32_t *out) {
    if (n <= 0)
        return 0;
    int best = -1; /* the most confident candidate, the first of ties (torch's argmax) */
    int k = 0;
    if (p->decoder == UM_DECODER_HIERARCHICAL) {
        double *score = malloc((size_t)n * sizeof *score);
        bool *take = calloc((size_t)n, sizeof *take);
        if (!score || !take) {
            free(score);
            free(take);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            score[i] = picks[i].conf;
            if (best < 0 || score[i] > score[best])
                best = i;
        }
        mark_hierarchical(pos, score, n, p->low_threshold, threshold, take);
        take[best] = true;
        for (int i = 0; i < n; i++)
            if (take[i])
                out[k++] = pos[i];
        free(score);
        free(take);
        return k;
    }
    /* threshold, credit: candidates whose token is not the mask; conf >= min(threshold, best - 1e-5) */
    for (int i = 0; i < n; i++)
        if (picks[i].token != mask_id && (best < 0 || picks[i].conf > picks[best].conf))
            best = i;
    if (best < 0)
        return 0;
    double cut = fmin(threshold, picks[best].conf - 1e-5);
    for (int i = 0; i < n; i++)
        if (picks[i].token != mask_id && picks[i].conf >= cut)
            out[k++] = pos[i];
    return k;
}

int um_decode_origin(const int32_t *pos, const um_pick *picks, int n, double transfer_p, int32_t *out) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (picks[i].draw < transfer_p) /* torch.rand(n) < p_transfer, one draw per masked position */
            out[k++] = pos[i];
    return k;
}

/* ---- credit (dInfer's CreditThresholdParallelDecoder) ---------------------- */

um_status um_credit_begin_block(um_credit *c, int start, int len, um_error *err) {
    if (!c->n || len > c->len) {
        um_credit_free(c);
        c->n = calloc((size_t)(len > 0 ? len : 1), sizeof *c->n);
        c->cap = 8;
        c->e = malloc((size_t)(len > 0 ? len : 1) * (size_t)c->cap * sizeof *c->e);
        if (!c->n || !c->e) {
            um_credit_free(c);
            return um_fail(err, UM_ERR_NOMEM, "out of memory");
        }
    }
    c->start = start;
    c->len = len;
    c->steps = 0;
    memset(c->n, 0, (size_t)len * sizeof *c->n);
    return UM_OK;
}

void um_credit_free(um_credit *c) {
    free(c->n);
    free(c->e);
    memset(c, 0, sizeof *c);
}

void um_credit_step(um_credit *c, double decay) {
    if (c->steps++ > 0)
        for (int i = 0; i < c->len; i++)
            for (int j = 0; j < c->n[i]; j++)
                c->e[(size_t)i * c->cap + j].credit *= (float)decay;
}

static um_status grow(um_credit *c, um_error *err) {
    int cap = 2 * c->cap;
    um_credit_entry *e = malloc((size_t)c->len * (size_t)cap * sizeof *e);
    if (!e)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->len; i++)
        memcpy(e + (size_t)i * cap, c->e + (size_t)i * c->cap, (size_t)c->n[i] * sizeof *e);
    free(c->e);
    c->e = e;
    c->cap = cap;
    return UM_OK;
}

um_status um_credit_reserve(um_credit *c, um_error *err) {
    for (int i = 0; i < c->len; i++)
        if (c->n[i] == c->cap)
            return grow(c, err); /* doubles every position's room */
    return UM_OK;
}

void um_credit_point(um_credit *c, int pos, um_pick_request *r) {
    int i = pos - c->start;
    bool inside = i >= 0 && i < c->len;
    r->credit = inside ? c->e + (size_t)i * c->cap : NULL;
    r->n_credit = inside ? &c->n[i] : NULL;
}
