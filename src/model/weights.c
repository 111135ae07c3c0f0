#include "model/weights.h"

#include <stdlib.h>
#include <string.h>

#include "model/arch.h"

um_status um_weights_open_hf(um_weights *w, const char *dir, um_error *err) {
    memset(w, 0, sizeof *w);
    return um_checkpoint_open(dir, &w->ck, err);
}

um_status um_weights_open_gguf(um_weights *w, const char *path, const um_arch *arch, um_error *err) {
    memset(w, 0, sizeof *w);
    w->is_gguf = true;
    w->arch = arch;
    UM_TRY(um_gguf_open(path, &w->gguf, err));
    w->gguf_taken = calloc(w->gguf.n_tensors + 1, sizeof *w->gguf_taken);
    if (!w->gguf_taken) {
        um_gguf_close(&w->gguf);
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    }
    return UM_OK;
}

void um_weights_close(um_weights *w) {
    if (w->is_gguf) {
        um_gguf_close(&w->gguf);
        free(w->gguf_taken);
    } else {
        um_checkpoint_close(&w->ck);
    }
    memset(w, 0, sizeof *w);
}

void um_weights_release(const um_weights *w, const void *p, size_t n) {
    if (w->is_gguf)
        um_mapped_file_release(&w->gguf.map, p, n);
    for (int i = 0; !w->is_gguf && i < w->ck.n_files; i++)
        um_mapped_file_release(&w->ck.files[i].map, p, n);
}

const char *um_weights_source(const um_weights *w) {
    if (w->is_gguf)
        return w->gguf.path;
    return w->ck.source ? w->ck.source : w->ck.files[0].path;
}

bool um_weights_take_stored(um_weights *w, const char *name, um_tensor_ref *out) {
    memset(out, 0, sizeof *out);
    if (!w->is_gguf)
        return um_weights_take(w, name, out);
    const um_gguf_tensor *t = um_gguf_find_tensor(&w->gguf, name);
    if (!t)
        return false;
    w->gguf_taken[t - w->gguf.tensors] = true;
    out->name = t->name;
    out->file = w->gguf.path;
    out->type = t->type;
    out->n_dims = t->n_dims;
    for (int i = 0; i < t->n_dims; i++)
        out->shape[i] = t->ne[t->n_dims - 1 - i]; /* GGUF lists the innermost dimension first */
    out->data = t->data;
    out->nbytes = t->nbytes;
    return true;
}

static bool take_gguf(um_weights *w, const char *hf_name, um_tensor_ref *out) {
    char name[192];
    return um_arch_gguf_name(w->arch, hf_name, name, sizeof name, NULL) && um_weights_take_stored(w, name, out);
}

bool um_weights_take(um_weights *w, const char *hf_name, um_tensor_ref *out) {
    memset(out, 0, sizeof *out);
    if (w->is_gguf)
        return take_gguf(w, hf_name, out);
    const char *file = NULL;
    const um_st_tensor *t = um_checkpoint_take(&w->ck, hf_name, &file);
    if (!t)
        return false;
    out->name = t->name;
    out->file = file;
    out->type = t->dtype;
    out->n_dims = t->n_dims;
    for (int i = 0; i < t->n_dims; i++)
        out->shape[i] = t->shape[i];
    out->data = t->data;
    out->nbytes = t->nbytes;
    return true;
}

um_status um_weights_check_all_taken(const um_weights *w, um_error *err) {
    if (!w->is_gguf)
        return um_checkpoint_check_all_taken(&w->ck, err);
    for (size_t i = 0; i < w->gguf.n_tensors; i++)
        if (!w->gguf_taken[i])
            return um_fail(err, UM_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of this architecture)",
                           w->gguf.path, w->gguf.tensors[i].name);
    return UM_OK;
}
