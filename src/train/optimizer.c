/* AdamW, the warm-up + cosine learning-rate schedule, gradient clipping. */
#include <math.h>

#include "train/train.h"

um_adamw_config um_adamw_default_config(void) {
    return (um_adamw_config){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                             .clip = 1.0, .warmup = 0, .total_steps = 1, .min_lr_ratio = 0.1};
}

double um_lr_at(const um_adamw_config *c, int step) {
    if (c->warmup > 0 && step <= c->warmup)
        return c->lr * step / c->warmup;
    int span = c->total_steps - c->warmup;
    if (span <= 0)
        return c->lr;
    double progress = (double)(step - c->warmup) / span;
    if (progress > 1)
        progress = 1;
    double floor = c->lr * c->min_lr_ratio;
    return floor + (c->lr - floor) * 0.5 * (1 + cos(M_PI * progress));
}

double um_clip_grad_norm(um_train_params *g, double clip) {
    double sq = 0;
    for (int i = 0; i < g->n_tensors; i++)
        for (int64_t j = 0; j < g->tensors[i].numel; j++)
            sq += (double)g->tensors[i].data[j] * g->tensors[i].data[j];
    double norm = sqrt(sq);
    if (clip > 0 && norm > clip) {
        double f = clip / (norm + 1e-6);
        for (int i = 0; i < g->n_tensors; i++)
            for (int64_t j = 0; j < g->tensors[i].numel; j++)
                g->tensors[i].data[j] = (float)(g->tensors[i].data[j] * f);
    }
    return norm;
}

void um_adamw_step(um_train_params *p, const um_train_params *g, um_train_params *m, um_train_params *v,
                   const um_adamw_config *c, int step, double lr) {
    double bc1 = 1 - pow(c->beta1, step), bc2 = 1 - pow(c->beta2, step);
    for (int i = 0; i < p->n_tensors; i++) {
        float *w = p->tensors[i].data, *mm = m->tensors[i].data, *vv = v->tensors[i].data;
        const float *gg = g->tensors[i].data;
        double decay = p->tensors[i].n_dims == 2 ? 1 - lr * c->weight_decay : 1;
        for (int64_t j = 0; j < p->tensors[i].numel; j++) {
            double mj = c->beta1 * mm[j] + (1 - c->beta1) * gg[j];
            double vj = c->beta2 * vv[j] + (1 - c->beta2) * (double)gg[j] * gg[j];
            mm[j] = (float)mj;
            vv[j] = (float)vj;
            w[j] = (float)(w[j] * decay - lr * (mj / bc1) / (sqrt(vj / bc2) + c->eps));
        }
    }
}
