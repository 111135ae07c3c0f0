/* The public model API: open a model directory by architecture, describe it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "model/arch.h"
#include "model/loader.h"
#include "model/model.h"

const char *um_version(void) { return UNMASK_VERSION; }

void um_model_close(um_model *m) {
    if (!m)
        return;
    um_model_unpack(m);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    um_weights_close(&m->weights);
    free(m);
}

/* The row config.json asks for (architectures[], then model_type). */
static um_status config_architecture(const char *dir, const um_arch **row, um_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg;
    UM_TRY(um_json_load(path, 1u << 20, &cfg, err));
    um_status s = um_arch_from_config(cfg, path, row, err);
    cJSON_Delete(cfg);
    return s;
}

/* The row of a GGUF file's general.architecture. */
static um_status gguf_architecture(const char *path, const um_arch **row, um_error *err) {
    um_gguf_file f;
    UM_TRY(um_gguf_open(path, &f, err));
    um_gguf_str s;
    char arch[64];
    um_status st = um_gguf_get_str(&f, "general.architecture", &s, err);
    if (st == UM_OK) {
        snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
        st = um_arch_find(arch, true, path, row, err);
    }
    um_gguf_close(&f);
    return st;
}

/* A directory is a Hugging Face checkpoint; a file must be GGUF. */
static um_status identify(const char *path, bool *is_gguf, const um_arch **row, um_error *err) {
    *is_gguf = !um_is_directory(path);
    if (!*is_gguf)
        return config_architecture(path, row, err);
    if (!um_file_exists(path))
        return um_fail(err, UM_ERR_IO, "%s: no such model directory or GGUF file", path);
    um_mapped_file map;
    UM_TRY(um_map_file(path, &map, err));
    bool magic = map.size >= 4 && memcmp(map.data, "GGUF", 4) == 0;
    um_unmap_file(&map);
    if (!magic)
        return um_fail(err, UM_ERR_UNSUPPORTED,
                       "%s: not a GGUF file; expected a GGUF file or a Hugging Face model directory", path);
    return gguf_architecture(path, row, err);
}

/* Memory left for everything else when the packed matrices are in (the
 * contexts' buffers, KV caches, the rest of the system): less than this and
 * the model keeps its weights as stored. */
#define REPACK_HEADROOM ((size_t)1 << 30)

/* Packs the matrices for the kernels a context with the default settings
 * (the environment's) chooses on this CPU, on a pool of the model's threads,
 * where the memory allows it: the panels replace the file's pages (which
 * the system counts as available, being page cache), but not the copies
 * the loader made, and a 4-bit file's panels are twice its size. */
static um_status repack(um_model *m, um_error *err) {
    um_pool *pool = um_pool_create(m->n_threads);
    if (!pool)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    um_exec ex = um_exec_defaults(pool);
    size_t need = um_model_packed_size(m, &ex);
    if (need > 0 && (need == SIZE_MAX || need + REPACK_HEADROOM > um_memory_available())) {
        m->repack_skipped = need;
        um_pool_destroy(pool);
        return UM_OK;
    }
    um_status s = um_model_repack(m, &ex, err);
    um_pool_destroy(pool);
    return s;
}

um_status um_model_open(const char *path, const um_model_params *params, um_model **out, um_error *err) {
    *out = NULL;
    bool is_gguf;
    const um_arch *row;
    UM_TRY(identify(path, &is_gguf, &row, err));
    um_model *m = calloc(1, sizeof *m);
    if (!m)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    m->n_threads = params && params->n_threads > 0 ? params->n_threads : um_physical_core_count();
    um_status s = um_model_load(m, row, path, is_gguf, err);
    if (s == UM_OK && !(params && params->no_repack))
        s = repack(m, err);
    if (s != UM_OK) {
        um_model_close(m);
        return s;
    }
    *out = m;
    return UM_OK;
}

void um_model_get_info(const um_model *m, um_model_info *info) {
    const um_hparams *hp = &m->hp;
    memset(info, 0, sizeof *info);
    info->architecture = m->arch;
    info->weight_type = m->weight_type;
    info->n_layers = hp->n_layers;
    info->d_model = hp->d_model;
    info->n_heads = hp->n_heads;
    info->n_kv_heads = hp->n_kv_heads;
    info->head_dim = hp->head_dim;
    info->d_ff = hp->d_ff;
    info->n_vocab = hp->n_vocab;
    info->max_seq_len = hp->max_seq;
    info->mask_id = hp->mask_id;
    info->eos_id = hp->eos_id;
    info->eot_id = hp->eot_id;
    info->logit_shift = hp->logit_shift;
    info->diffusion_block = hp->attn_mask == UM_ATTN_BLOCK_CAUSAL ? hp->diffusion_block : 0;
    info->n_params = m->n_params;
    info->n_active_params = m->n_params;
    if (hp->ffn == UM_FFN_MOE) {
        info->n_expert = hp->n_expert;
        info->n_expert_used = hp->n_expert_used;
        info->d_ff_expert = hp->d_ff_exp;
        info->n_active_params -= (int64_t)(hp->n_layers - hp->n_dense_layers) * (hp->n_expert - hp->n_expert_used) *
                                 3 * (int64_t)hp->d_ff_exp * hp->d_model;
    }
    info->n_threads = m->n_threads;
    info->repacked_bytes = m->repacked_bytes;
    info->repack_skipped_bytes = m->repack_skipped;
}
