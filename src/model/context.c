/* Contexts: what runs a model. The model is immutable once loaded; a
 * context owns a backend (the CPU's: a thread pool, the arithmetic and the
 * instruction set, from its parameters, defaulting to the environment's) and
 * the forward pass's working buffers in it, so contexts on different threads
 * never share mutable state. */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

um_context_params um_context_default_params(void) {
    um_context_params p;
    memset(&p, 0, sizeof p);
    p.activations = UM_ACTIVATIONS_DEFAULT;
    return p;
}

static um_status choose_exec(const um_context_params *p, um_exec *ex, um_error *err) {
    *ex = um_exec_defaults(NULL);
    if (p->activations == UM_ACTIVATIONS_REDUCED || p->activations == UM_ACTIVATIONS_F32)
        ex->reduced = p->activations == UM_ACTIVATIONS_REDUCED;
    else if (p->activations != UM_ACTIVATIONS_DEFAULT)
        return um_fail(err, UM_ERR_ARG, "context: unknown activations %d", (int)p->activations);
    if (!p->kernel)
        return UM_OK;
    if (!um_kernel_parse(p->kernel, &ex->path, &ex->lib))
        return um_fail(err, UM_ERR_ARG, "context: unknown kernel '%s' (scalar, avx2, avx512, neon, onednn or auto)",
                       p->kernel);
    if (um_kernel_path_lack(ex->path))
        return um_fail(err, UM_ERR_UNSUPPORTED, "context: kernel '%s' needs %s, which this CPU lacks", p->kernel,
                       um_kernel_path_lack(ex->path));
    if (ex->lib == UM_LIB_ONEDNN && !um_onednn_available())
        return um_fail(err, UM_ERR_UNSUPPORTED, "context: kernel 'onednn': this build has no oneDNN");
    return UM_OK;
}

um_status um_context_create(const um_model *m, const um_context_params *params, um_context **out, um_error *err) {
    *out = NULL;
    um_context_params p = params ? *params : um_context_default_params();
    um_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    ctx->m = m;
    um_exec ex;
    um_status s = choose_exec(&p, &ex, err);
    if (s == UM_OK)
        s = um_cpu_backend_create(p.n_threads > 0 ? p.n_threads : m->n_threads, ex, &ctx->be, err);
    if (s != UM_OK) {
        um_context_free(ctx);
        return s;
    }
    *out = ctx;
    return UM_OK;
}

void um_context_free(um_context *ctx) {
    if (!ctx)
        return;
    if (ctx->be)
        um_workspace_free(ctx->be, &ctx->ws);
    um_backend_free(ctx->be);
    free(ctx);
}

const um_model *um_context_model(const um_context *ctx) { return ctx->m; }

um_status um_forward(um_context *ctx, const int32_t *tokens, int n_rows, int seq_len, float *logits, um_error *err) {
    return um_model_forward(ctx, tokens, n_rows, seq_len, NULL, 0, logits, err);
}
