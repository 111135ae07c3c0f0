/* The training loop's steps, validation and checkpoints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/rng.h"
#include "format/safetensors.h"
#include "train/train.h"

um_status um_trainer_init(um_trainer *tr, const um_model *m, int n_threads, um_error *err) {
    memset(tr, 0, sizeof *tr);
    tr->pool = um_pool_create(n_threads);
    if (!tr->pool)
        return um_fail(err, UM_ERR_NOMEM, "training: cannot start %d threads", n_threads);
    um_status s = um_train_params_from_model(&tr->p, m, err);
    if (s == UM_OK)
        s = um_train_params_init(&tr->g, &m->hp, err);
    if (s == UM_OK)
        s = um_train_params_init(&tr->m, &m->hp, err);
    if (s == UM_OK)
        s = um_train_params_init(&tr->v, &m->hp, err);
    if (s != UM_OK)
        um_trainer_free(tr);
    return s;
}

void um_trainer_free(um_trainer *tr) {
    if (tr->p.tensors)
        um_train_params_free(&tr->p);
    if (tr->g.tensors)
        um_train_params_free(&tr->g);
    if (tr->m.tensors)
        um_train_params_free(&tr->m);
    if (tr->v.tensors)
        um_train_params_free(&tr->v);
    free(tr->order);
    if (tr->pool)
        um_pool_destroy(tr->pool);
    memset(tr, 0, sizeof *tr);
}

static um_status make_order(um_trainer *tr, int n, uint64_t seed, um_error *err) {
    if (tr->order && tr->n_order == n)
        return UM_OK;
    free(tr->order);
    tr->order = malloc((size_t)n * sizeof *tr->order);
    if (!tr->order)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    tr->n_order = n;
    for (int i = 0; i < n; i++)
        tr->order[i] = i;
    um_rng rng;
    um_rng_stream(&rng, seed, 0x6f72646572u /* "order" */, 0, 0);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(um_rng_next(&rng) % (uint64_t)(i + 1));
        int32_t x = tr->order[i];
        tr->order[i] = tr->order[j];
        tr->order[j] = x;
    }
    return UM_OK;
}

/* Loss (and gradient, when grad) of the first len tokens of rows[0..n) of d,
 * masked with stream (seed, step). */
static um_status batch_loss(um_pool *pool, const um_train_params *p, const um_train_data *d, const int32_t *rows, int n,
                            int len, uint64_t seed, uint64_t step, double eps, double *loss, um_train_params *grad,
                            um_error *err) {
    size_t cells = (size_t)n * len;
    int32_t *x0 = malloc(cells * sizeof *x0), *noisy = malloc(cells * sizeof *noisy);
    int32_t *pl = d->prompt_lengths ? malloc((size_t)n * sizeof *pl) : NULL;
    double *pm = malloc(cells * sizeof *pm);
    um_status s = UM_OK;
    if (!x0 || !noisy || !pm || (d->prompt_lengths && !pl)) {
        s = um_fail(err, UM_ERR_NOMEM, "out of memory");
    } else {
        for (int r = 0; r < n; r++) {
            memcpy(x0 + (size_t)r * len, d->tokens + (size_t)rows[r] * d->seq, (size_t)len * sizeof *x0);
            if (pl)
                pl[r] = d->prompt_lengths[rows[r]];
        }
        um_mdm_mask(seed, step, n, len, x0, pl, p->hp.mask_id, eps, noisy, pm);
        um_mdm_batch b = {n, len, x0, noisy, pm, pl};
        s = um_llada_loss_grad(pool, p, &b, loss, grad, err);
    }
    free(x0);
    free(noisy);
    free(pl);
    free(pm);
    return s;
}

/* The length micro-batch micro trains on: the rows' own, or with probability
 * c->random_length a uniform one in [1, seq] (pre-training only: an SFT row
 * cut short could lose its answer), from a stream of its own. */
static int micro_batch_length(const um_train_config *c, const um_train_data *d, uint64_t micro) {
    if (c->random_length <= 0 || d->prompt_lengths)
        return d->seq;
    um_rng rng;
    um_rng_stream(&rng, c->seed, 0x6c656e677468u /* "length" */, micro, 0);
    if (um_rng_uniform(&rng) >= c->random_length)
        return d->seq;
    return 1 + (int)(um_rng_next(&rng) % (uint64_t)d->seq);
}

um_status um_trainer_step(um_trainer *tr, const um_train_config *c, const um_train_data *d, double *loss,
                          double *grad_norm, um_error *err) {
    if (c->batch < 1 || c->accum < 1 || d->n_rows < 1)
        return um_fail(err, UM_ERR_ARG, "batch %d, accumulation %d, %d rows: need at least 1 of each", c->batch,
                       c->accum, d->n_rows);
    UM_TRY(make_order(tr, d->n_rows, c->seed, err));
    int32_t *rows = malloc((size_t)c->batch * sizeof *rows);
    if (!rows)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_train_params_zero(&tr->g);
    double total = 0;
    um_status s = UM_OK;
    for (int a = 0; a < c->accum && s == UM_OK; a++) {
        uint64_t micro = (uint64_t)tr->step * (uint64_t)c->accum + (uint64_t)a;
        for (int j = 0; j < c->batch; j++)
            rows[j] = tr->order[(micro * (uint64_t)c->batch + (uint64_t)j) % (uint64_t)d->n_rows];
        double l = 0;
        int len = micro_batch_length(c, d, micro);
        s = batch_loss(tr->pool, &tr->p, d, rows, c->batch, len, c->seed, micro, c->mask_eps, &l, &tr->g, err);
        tr->tokens += (double)c->batch * len;
        total += l;
    }
    free(rows);
    if (s != UM_OK)
        return s;
    if (c->accum > 1)
        for (int i = 0; i < tr->g.n_tensors; i++)
            for (int64_t j = 0; j < tr->g.tensors[i].numel; j++)
                tr->g.tensors[i].data[j] /= (float)c->accum;
    double norm = um_clip_grad_norm(&tr->g, c->opt.clip);
    tr->step++;
    um_adamw_step(&tr->p, &tr->g, &tr->m, &tr->v, &c->opt, tr->step, um_lr_at(&c->opt, tr->step));
    *loss = total / c->accum;
    if (grad_norm)
        *grad_norm = norm;
    return UM_OK;
}

um_status um_train_eval(um_pool *pool, const um_train_params *p, const um_train_data *d, uint64_t seed,
                        double mask_eps, int max_rows, double *loss, um_error *err) {
    int n = max_rows > 0 && max_rows < d->n_rows ? max_rows : d->n_rows, chunk = 8;
    int32_t rows[8];
    double sum = 0;
    for (int r0 = 0; r0 < n; r0 += chunk) {
        int k = n - r0 < chunk ? n - r0 : chunk;
        for (int j = 0; j < k; j++)
            rows[j] = r0 + j;
        double l;
        /* a stream of its own per chunk, never a training one */
        UM_TRY(batch_loss(pool, p, d, rows, k, d->seq, seed ^ 0x76616c6964617465ull, (uint64_t)r0, mask_eps, &l, NULL, err));
        sum += l * k;
    }
    *loss = n ? sum / n : 0;
    return UM_OK;
}

static um_status write_text(const char *path, const char *text, um_error *err) {
    FILE *fp = fopen(path, "w");
    int ok = fp && fputs(text, fp) >= 0;
    if (fp && fclose(fp) != 0)
        ok = 0;
    return ok ? UM_OK : um_fail(err, UM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
}

um_status um_trainer_save(const um_trainer *tr, const char *config_json, const char *dir, um_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return um_fail(err, UM_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    UM_TRY(write_text(path, config_json, err));
    const um_train_params *p = &tr->p;
    int n = p->n_tensors;
    um_st_desc *descs = calloc((size_t)(3 * n + 1), sizeof *descs);
    char (*names)[112] = calloc((size_t)(3 * n), sizeof *names);
    um_status s = descs && names ? UM_OK : um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; s == UM_OK && i < n; i++) {
        const um_train_tensor *t = &p->tensors[i];
        descs[i] = (um_st_desc){t->name, UM_F32, t->n_dims, {t->shape[0], t->shape[1]}, t->data};
    }
    if (s == UM_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        s = um_st_write(path, descs, n, err);
    }
    int64_t step = tr->step;
    if (s == UM_OK) {
        const um_train_params *src[3] = {&tr->p, &tr->m, &tr->v};
        const char *pre[3] = {"param", "m", "v"};
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < n; i++) {
                const um_train_tensor *t = &src[k]->tensors[i];
                snprintf(names[k * n + i], sizeof names[0], "%s.%s", pre[k], t->name);
                descs[k * n + i] =
                    (um_st_desc){names[k * n + i], UM_F32, t->n_dims, {t->shape[0], t->shape[1]}, t->data};
            }
        descs[3 * n] = (um_st_desc){"step", UM_I64, 1, {1}, &step};
        snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
        s = um_st_write(path, descs, 3 * n + 1, err);
    }
    free(descs);
    free(names);
    return s;
}

um_status um_trainer_resume(um_trainer *tr, const char *dir, um_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    um_st_file f;
    UM_TRY(um_st_open(path, &f, err));
    um_status s = UM_OK;
    um_train_params *dst[3] = {&tr->p, &tr->m, &tr->v};
    const char *pre[3] = {"param", "m", "v"};
    for (int k = 0; s == UM_OK && k < 3; k++)
        for (int i = 0; s == UM_OK && i < dst[k]->n_tensors; i++) {
            um_train_tensor *t = &dst[k]->tensors[i];
            char name[128];
            snprintf(name, sizeof name, "%s.%s", pre[k], t->name);
            const um_st_tensor *st = um_st_find(&f, name);
            if (!st || st->dtype != UM_F32 || um_st_numel(st) != t->numel)
                s = um_fail(err, UM_ERR_FORMAT, "%s: no F32 tensor '%s' of %lld values", path, name,
                            (long long)t->numel);
            else
                memcpy(t->data, st->data, (size_t)t->numel * sizeof *t->data);
        }
    const um_st_tensor *st = um_st_find(&f, "step");
    if (s == UM_OK && (!st || st->dtype != UM_I64 || um_st_numel(st) != 1))
        s = um_fail(err, UM_ERR_FORMAT, "%s: no I64 tensor 'step'", path);
    if (s == UM_OK) {
        int64_t step;
        memcpy(&step, st->data, sizeof step);
        tr->step = (int)step;
    }
    um_st_close(&f);
    return s;
}
