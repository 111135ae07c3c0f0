/* Picks: a masked position's logits turned into the token it proposes and
 * the scores the decoders rank by (kernels/pick.c). A backend runs them
 * next to the logits (backend.h: pick), so the logits never travel. */
#ifndef UM_KERNELS_PICK_H
#define UM_KERNELS_PICK_H

#include <stdbool.h>
#include <stdint.h>

/* One position's proposal. */
typedef struct {
    int32_t token;
    double conf;    /* softmax(logits)[token], or a uniform draw with random remasking */
    double p1, p2;  /* the two largest probabilities (with stats) */
    double entropy; /* of softmax(logits), nats (with stats) */
    double draw;    /* a uniform draw in [0, 1) for the decoder's random choices (with draw) */
} um_pick;

/* A token's credit with the credit decoder (dInfer's credit matrix, kept sparse). */
typedef struct {
    int32_t tok;
    float credit;
} um_credit_entry;

#define UM_PICK_MAX_TOP_K 1024

/* What one pick needs. */
typedef struct {
    int32_t row, uncond_row; /* rows of the states to pick from; uncond_row < 0: no guidance */
    float guidance;          /* with uncond_row: logits = un + guidance * (cond - un), guidance = cfg_scale + 1 */
    int32_t eos_inf;         /* this logit is -inf (-1: none) */
    int32_t eot_inf;         /* this logit is -inf in the confidence softmax only (-1: none) */
    double temperature;      /* 0: argmax; > 0: Gumbel-max in float64 */
    uint64_t seed;           /* random streams keyed by (seed, step, pos): */
    int32_t step, pos;       /* draws do not depend on threads or batches */
    bool random_remasking;   /* conf is a uniform draw */
    bool stats;              /* also p1, p2 and the entropy */
    int32_t top_k;           /* in (0, UM_PICK_MAX_TOP_K]: logits below the k-th largest are -inf before choosing
                                and scoring; 0: off */
    double top_p;            /* in (0, 1): logits outside the nucleus are -inf before choosing and scoring (before
                                top_k, as Dream's sample_tokens); 0 or 1: off */
    double min_p;            /* in (0, 1]: logits of probability below min_p times the top one are -inf (after
                                top_k); 0: off */
    bool draw;               /* also a uniform draw (um_pick.draw) for the decoder */
    /* the credit decoder: the position's entries (tok, credit), *n_credit of
     * them and room for one more; NULL: no credit */
    um_credit_entry *credit;
    int *n_credit;
    double credit_alpha, credit_gamma;
} um_pick_request;

/* The pick of one request from its logits (cond, modified in place) and,
 * with guidance, the unconditional row's. */
void um_pick_row(const um_pick_request *r, float *cond, const float *un, int n_vocab, um_pick *out);

#endif
