/* libFuzzer target for config.json: the bytes are parsed the way
 * um_json_load parses a file, then read by the LLaDA loader's
 * hyper-parameter parser. Any input must give valid hyper-parameters or a
 * one-line message naming the file. Built and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *cfg = cJSON_ParseWithLengthOpts((const char *)data, size, NULL, 0);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return 0;
    }
    um_hparams hp;
    um_error err;
    memset(&err, 0, sizeof err);
    if (um_llada_parse_hparams(cfg, "config.json", &hp, &err) != UM_OK) {
        if (err.code == UM_OK || strncmp(err.msg, "config.json: ", 13) != 0 || strchr(err.msg, '\n'))
            abort();
    } else {
        /* what the loader and the forward pass rely on */
        if (hp.n_layers < 1 || hp.d_model < 1 || hp.n_heads < 1 || hp.n_kv_heads < 1 ||
            hp.n_heads % hp.n_kv_heads != 0 || hp.head_dim * hp.n_heads != hp.d_model || hp.head_dim % 2 != 0 ||
            hp.d_ff < 1 || hp.n_vocab < 1 || hp.max_seq < 1 || hp.mask_id < 0 || hp.mask_id >= hp.n_vocab ||
            hp.eos_id >= hp.n_vocab || hp.eot_id >= hp.n_vocab || !(hp.norm_eps > 0) || !(hp.rope_theta > 0))
            abort();
    }
    cJSON_Delete(cfg);
    return 0;
}
