/* libFuzzer target for config.json: the bytes are parsed the way
 * um_json_load parses a file, then read by every architecture's
 * hyper-parameter parser (LLaDA's, Dream's, LLaDA-MoE's, LLaDA2's keys). Any input
 * must give valid hyper-parameters or a one-line message naming the file.
 * Built and run by `make fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "hparams_check.h"
#include "model/arch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *cfg = cJSON_ParseWithLengthOpts((const char *)data, size, NULL, 0);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return 0;
    }
    for (int i = 0; um_archs[i]; i++) {
        um_hparams hp;
        um_error err;
        memset(&err, 0, sizeof err);
        if (um_arch_parse_config(um_archs[i], cfg, "config.json", -1, &hp, &err) != UM_OK) {
            if (err.code == UM_OK || strncmp(err.msg, "config.json: ", 13) != 0 || strchr(err.msg, '\n'))
                abort();
        } else {
            check_hparams(&hp);
        }
    }
    cJSON_Delete(cfg);
    return 0;
}
