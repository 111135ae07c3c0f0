#include "checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/json.h"

#define MAX_INDEX_BYTES (64u << 20)

static um_status add_shard(um_checkpoint *ck, const char *path, um_error *err) {
    um_st_file *files = realloc(ck->files, (size_t)(ck->n_files + 1) * sizeof *files);
    if (!files)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    ck->files = files;
    UM_TRY(um_st_open(path, &ck->files[ck->n_files], err));
    ck->n_files++;
    return UM_OK;
}

/* Shard names come from a file we do not trust: plain file names only. */
static bool safe_shard_name(const char *name) {
    return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256;
}

static um_status open_sharded(um_checkpoint *ck, const char *dir, const char *index_path, um_error *err) {
    cJSON *root;
    UM_TRY(um_json_load(index_path, MAX_INDEX_BYTES, &root, err));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    um_status s = UM_OK;
    if (!cJSON_IsObject(map))
        s = um_fail(err, UM_ERR_FORMAT, "%s: missing object 'weight_map'", index_path);
    else if (!map->child) /* no shards at all: nothing to name in later errors */
        s = um_fail(err, UM_ERR_FORMAT, "%s: 'weight_map' lists no tensors", index_path);
    /* open each distinct shard once, in order of first mention */
    for (const cJSON *e = map ? map->child : NULL; s == UM_OK && e; e = e->next) {
        if (!cJSON_IsString(e)) {
            s = um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' must map to a shard file name", index_path, e->string);
            break;
        }
        if (!safe_shard_name(e->valuestring)) {
            s = um_fail(err, UM_ERR_FORMAT,
                        "%s: tensor '%s' maps to '%.64s', not a plain file name in the model directory", index_path,
                        e->string, e->valuestring);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        bool seen = false;
        for (int i = 0; i < ck->n_files && !seen; i++)
            seen = strcmp(ck->files[i].path, path) == 0;
        if (!seen)
            s = add_shard(ck, path, err);
    }
    /* every listed tensor must be in its shard */
    for (const cJSON *e = map ? map->child : NULL; s == UM_OK && e; e = e->next) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        for (int i = 0; i < ck->n_files; i++)
            if (strcmp(ck->files[i].path, path) == 0 && !um_st_find(&ck->files[i], e->string))
                s = um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' is listed in %s but missing from it", index_path,
                            e->string, e->valuestring);
    }
    cJSON_Delete(root);
    return s;
}

static um_status build_lookup(um_checkpoint *ck, um_error *err) {
    int n = 0;
    for (int i = 0; i < ck->n_files; i++)
        n += ck->files[i].n_tensors;
    ck->tensors = calloc((size_t)n + 1, sizeof *ck->tensors);
    ck->tensor_file = calloc((size_t)n + 1, sizeof *ck->tensor_file);
    ck->taken = calloc((size_t)n + 1, sizeof *ck->taken);
    if (!ck->tensors || !ck->tensor_file || !ck->taken)
        return um_fail(err, UM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ck->n_files; i++) {
        for (int j = 0; j < ck->files[i].n_tensors; j++) {
            const um_st_tensor *t = &ck->files[i].tensors[j];
            for (int k = 0; k < ck->n_tensors; k++)
                if (strcmp(ck->tensors[k]->name, t->name) == 0)
                    return um_fail(err, UM_ERR_FORMAT, "%s: tensor '%s' also appears in %s", ck->files[i].path,
                                   t->name, ck->tensor_file[k]);
            ck->tensors[ck->n_tensors] = t;
            ck->tensor_file[ck->n_tensors] = ck->files[i].path;
            ck->n_tensors++;
        }
    }
    return UM_OK;
}

um_status um_checkpoint_open(const char *dir, um_checkpoint *ck, um_error *err) {
    memset(ck, 0, sizeof *ck);
    char single[4096], index[4096];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    um_status s;
    bool sharded = um_file_exists(index);
    if (sharded)
        s = open_sharded(ck, dir, index, err);
    else if (um_file_exists(single))
        s = add_shard(ck, single, err);
    else
        s = um_fail(err, UM_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    if (s == UM_OK && !(ck->source = strdup(sharded ? index : single)))
        s = um_fail(err, UM_ERR_NOMEM, "out of memory");
    if (s == UM_OK)
        s = build_lookup(ck, err);
    if (s != UM_OK)
        um_checkpoint_close(ck);
    return s;
}

void um_checkpoint_close(um_checkpoint *ck) {
    for (int i = 0; i < ck->n_files; i++)
        um_st_close(&ck->files[i]);
    free(ck->files);
    free(ck->tensors);
    free(ck->tensor_file);
    free(ck->taken);
    free(ck->source);
    memset(ck, 0, sizeof *ck);
}

const um_st_tensor *um_checkpoint_take(um_checkpoint *ck, const char *name, const char **file) {
    for (int i = 0; i < ck->n_tensors; i++) {
        if (strcmp(ck->tensors[i]->name, name) == 0) {
            ck->taken[i] = true;
            if (file)
                *file = ck->tensor_file[i];
            return ck->tensors[i];
        }
    }
    return NULL;
}

um_status um_checkpoint_check_all_taken(const um_checkpoint *ck, um_error *err) {
    for (int i = 0; i < ck->n_tensors; i++)
        if (!ck->taken[i])
            return um_fail(err, UM_ERR_FORMAT, "%s: unexpected tensor '%s' (not part of this architecture)",
                           ck->tensor_file[i], ck->tensors[i]->name);
    return UM_OK;
}
