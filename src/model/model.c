/* The public model API: open a model directory by architecture, describe it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "format/json.h"
#include "model/loader.h"
#include "model/model.h"

void um_model_close(um_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    um_weights_close(&m->weights);
    free(m);
}

/* Reads config.json's model_type (or architectures[0]) to pick a loader. */
static um_status detect_architecture(const char *dir, char *arch, size_t n, um_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg;
    UM_TRY(um_json_load(path, 1u << 20, &cfg, err));
    const char *type = um_json_get_string(cfg, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *first = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!type && cJSON_IsString(first))
        type = first->valuestring;
    um_status s = UM_OK;
    if (!type)
        s = um_fail(err, UM_ERR_FORMAT, "%s: no 'model_type' or 'architectures' to say what model this is", path);
    else
        snprintf(arch, n, "%s", type);
    cJSON_Delete(cfg);
    return s;
}

/* general.architecture of a GGUF file. */
static um_status gguf_architecture(const char *path, char *arch, size_t n, um_error *err) {
    um_gguf_file f;
    UM_TRY(um_gguf_open(path, &f, err));
    um_gguf_str s;
    um_status st = um_gguf_get_str(&f, "general.architecture", &s, err);
    if (st == UM_OK)
        snprintf(arch, n, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    um_gguf_close(&f);
    return st;
}

/* A directory is a Hugging Face checkpoint; a file must be GGUF. */
static um_status identify(const char *path, bool *is_gguf, char *arch, size_t n, um_error *err) {
    *is_gguf = !um_is_directory(path);
    if (!*is_gguf)
        return detect_architecture(path, arch, n, err);
    if (!um_file_exists(path))
        return um_fail(err, UM_ERR_IO, "%s: no such model directory or GGUF file", path);
    um_mapped_file map;
    UM_TRY(um_map_file(path, &map, err));
    bool magic = map.size >= 4 && memcmp(map.data, "GGUF", 4) == 0;
    um_unmap_file(&map);
    if (!magic)
        return um_fail(err, UM_ERR_UNSUPPORTED,
                       "%s: not a GGUF file; expected a GGUF file or a Hugging Face model directory", path);
    return gguf_architecture(path, arch, n, err);
}

um_status um_model_open(const char *path, const um_model_params *params, um_model **out, um_error *err) {
    *out = NULL;
    bool is_gguf;
    char arch[64];
    UM_TRY(identify(path, &is_gguf, arch, sizeof arch, err));
    char where[4200];
    snprintf(where, sizeof where, "%s%s", path, is_gguf ? "" : "/config.json");
    const um_arch *row;
    UM_TRY(um_arch_find(arch, is_gguf, where, &row, err));
    um_model *m = calloc(1, sizeof *m);
    if (!m)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    m->n_threads = params && params->n_threads > 0 ? params->n_threads : um_physical_core_count();
    um_status s = um_model_load(m, row, path, is_gguf, err);
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
    info->n_params = m->n_params;
    info->n_threads = m->n_threads;
}
