/* Runs every test group and closes with "N passed, N failed". Pass a group
 * name to run only that group.
 *
 * In this process every product is computed in f32, the arithmetic of the
 * PyTorch references the groups hold the model to; the tests of the reduced
 * precision (bf16 and int8 activations, the default of unmask) switch it on
 * themselves, and the unmask commands the tests start run with the default
 * unless a test holds their output to an f32 reference. */
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"
#include "testutil.h"

extern const test_group formats_group, forward_group, generate_group, sampling_group, bad_input_group,
    cli_group;
extern const test_group gguf_group;
extern const test_group quant_group;
extern const test_group gguf_model_group;
extern const test_group convert_group;
extern const test_group decode_group;
extern const test_group kernels_group;
extern const test_group tokenizer_group;
extern const test_group bpe_train_group;
extern const test_group text_cli_group;
extern const test_group train_group;
extern const test_group train_loop_group;
extern const test_group eval_group;
extern const test_group models_group;
extern const test_group arch_group;
extern const test_group batch_group;
extern const test_group backend_group;
extern const test_group dream_group;
extern const test_group moe_group;
extern const test_group llada2_group;
extern const test_group serve_group;

int main(int argc, char **argv) {
    const test_group *groups[] = {&formats_group,    &forward_group,   &generate_group,   &sampling_group,
                                  &bad_input_group,  &cli_group,       &quant_group,      &kernels_group,
                                  &gguf_group,       &gguf_model_group, &convert_group,   &decode_group,
                                  &tokenizer_group,  &bpe_train_group, &text_cli_group,   &train_group,
                                  &train_loop_group, &eval_group,      &models_group,
                                  &arch_group,       &batch_group,     &backend_group,
                                  &dream_group,      &moe_group,       &llada2_group,     &serve_group};
    size_t total = 0, failed = 0;
    if (!fixtures_found())
        return 1;
    um_matmul_set_reduced(false);
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++) {
        if (argc > 1 && strcmp(argv[1], groups[i]->name) != 0)
            continue;
        failed += (size_t)_cmocka_run_group_tests(groups[i]->name, groups[i]->tests, groups[i]->count, NULL, NULL);
        total += groups[i]->count;
    }
    printf("\n%zu passed, %zu failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
