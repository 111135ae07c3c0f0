/* How far one model's logits are from another's: what quantization costs.
 * The measures llama.cpp's perplexity tool reports with --kl-divergence. */
#ifndef UM_KERNELS_STATS_H
#define UM_KERNELS_STATS_H

#include <stdint.h>

typedef struct {
    double mean_kl;   /* mean over rows of KL(softmax(ref) || softmax(test)), nats */
    double max_kl;
    double top1;      /* fraction of rows whose argmax agrees */
    double rms_error; /* root mean square logit difference */
    int64_t rows;
} um_logit_stats;

/* Compares rows of logits (ref and test, [rows][vocab]); accumulates in double. */
void um_compare_logits(const float *ref, const float *test, int64_t rows, int vocab, um_logit_stats *out);

#endif
