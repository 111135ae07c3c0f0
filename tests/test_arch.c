/* The architecture table (model/arch.h): LLaDA's row reads the fixture
 * checkpoints and llama.cpp's GGUF files to the same hyper-parameters, its
 * name templates map every tensor of either format to the other and back,
 * and an architecture outside the table is refused naming the table's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/checkpoint.h"
#include "format/gguf.h"
#include "format/json.h"
#include "model/arch.h"
#include "testutil.h"

static const char *const gguf_fixtures[] = {"tiny-llada-f32", "tiny-llada-f16", "tiny-llada-q8_0",
                                            "tiny-llada-gqa-f32", "tiny-llada-gqa-f16", "tiny-llada-gqa-q8_0"};

static const char *gguf_path(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "llada/gguf/%s.gguf", name);
    return fixture(rel);
}

static void hparams_of_config(const char *model, const char *layout, um_hparams *hp) {
    char rel[256];
    snprintf(rel, sizeof rel, "llada/%s/%s/config.json", model, layout);
    const char *path = fixture(rel);
    cJSON *cfg;
    um_error err;
    const um_arch *a;
    if (um_json_load(path, 1u << 20, &cfg, &err) != UM_OK || um_arch_from_config(cfg, path, &a, &err) != UM_OK ||
        um_arch_parse_config(a, cfg, path, -1, hp, &err) != UM_OK)
        fail_msg("%s", err.msg);
    assert_ptr_equal(a, &um_arch_llada);
    cJSON_Delete(cfg);
}

static void hparams_of_gguf(const char *name, um_hparams *hp) {
    um_gguf_file f;
    um_error err;
    if (um_gguf_open(gguf_path(name), &f, &err) != UM_OK || um_arch_read_gguf(&um_arch_llada, &f, hp, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_gguf_close(&f);
}

/* Everything but where the q/k rows' RoPE pairs lie, which is the format's. */
static void assert_same_hparams(const um_hparams *a, const um_hparams *b) {
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->d_model, b->d_model);
    assert_int_equal(a->n_heads, b->n_heads);
    assert_int_equal(a->n_kv_heads, b->n_kv_heads);
    assert_int_equal(a->head_dim, b->head_dim);
    assert_int_equal(a->d_ff, b->d_ff);
    assert_int_equal(a->n_vocab, b->n_vocab);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->max_seq, b->max_seq);
    assert_true(a->norm_eps == b->norm_eps);
    assert_true(a->rope_theta == b->rope_theta);
    assert_int_equal(a->mask_id, b->mask_id);
    assert_int_equal(a->eos_id, b->eos_id);
    assert_int_equal(a->tied, b->tied);
    assert_int_equal(a->qkv_bias, b->qkv_bias);
    assert_int_equal(a->bias, b->bias);
    assert_int_equal(a->qk_norm, b->qk_norm);
    assert_int_equal(a->ffn, b->ffn);
    assert_int_equal(a->attn_mask, b->attn_mask);
    assert_int_equal(a->logit_shift, b->logit_shift);
}

static void lookups(void **state) {
    assert_ptr_equal(um_arch_by_hf_name("llada"), &um_arch_llada);
    assert_ptr_equal(um_arch_by_hf_name("LLaDAModelLM"), &um_arch_llada);
    assert_ptr_equal(um_arch_by_gguf_name("llada"), &um_arch_llada);
    assert_null(um_arch_by_hf_name("LLaDA"));
    assert_null(um_arch_by_gguf_name("LLaDAModelLM"));
    assert_null(um_arch_by_hf_name(NULL));
    char list[64], key[64];
    assert_string_equal(um_arch_list(list, sizeof list), "llada, dream, llada-moe, llada2");
    assert_ptr_equal(um_arch_by_hf_name("LLaDAMoEModelLM"), &um_arch_llada_moe);
    assert_ptr_equal(um_arch_by_hf_name("llada2_moe"), &um_arch_llada2);
    assert_ptr_equal(um_arch_by_gguf_name("llada2"), &um_arch_llada2);
    /* a role whose last part a format spells its own way: LLaDA2's expert bias, llama.cpp's exp_probs_b.bias */
    char name[128];
    um_tensor_role role;
    assert_true(um_arch_gguf_name(&um_arch_llada2, "model.layers.3.mlp.gate.expert_bias", name, sizeof name, &role));
    assert_string_equal(name, "blk.3.exp_probs_b.bias");
    assert_int_equal(role, UM_T_EXP_BIAS);
    assert_true(um_arch_hf_name(&um_arch_llada2, "blk.3.exp_probs_b.bias", name, sizeof name, &role));
    assert_string_equal(name, "model.layers.3.mlp.gate.expert_bias");
    assert_true(um_arch_gguf_name(&um_arch_llada2, "model.layers.3.mlp.gate.weight", name, sizeof name, &role));
    assert_string_equal(name, "blk.3.ffn_gate_inp.weight");
    assert_false(um_arch_gguf_name(&um_arch_llada2, "model.layers.3.mlp.gate.expert_bias.weight", name, sizeof name,
                                   NULL));
    assert_ptr_equal(um_arch_by_gguf_name("llada-moe"), &um_arch_llada_moe);
    /* LLaDA-MoE's config says model_type "llada": its class name decides */
    cJSON *cfg = cJSON_Parse("{\"model_type\": \"llada\", \"architectures\": [\"LLaDAMoEModelLM\"]}");
    const um_arch *a = NULL;
    um_error e;
    assert_int_equal(um_arch_from_config(cfg, "config.json", &a, &e), UM_OK);
    assert_ptr_equal(a, &um_arch_llada_moe);
    cJSON_Delete(cfg);
    assert_string_equal(um_gguf_key_name(UM_KEY_BLOCK_COUNT, "llada", key, sizeof key), "llada.block_count");
    assert_string_equal(um_gguf_key_name(UM_KEY_SHIFT_LOGITS, "llada", key, sizeof key), "diffusion.shift_logits");
    /* LLaDA's block as the table states it */
    const um_block_options *b = &um_arch_llada.block;
    assert_false(b->qk_norm);
    assert_int_equal(b->ffn, UM_FFN_DENSE);
    assert_int_equal(b->attn_mask, UM_ATTN_BIDIRECTIONAL);
    assert_int_equal(b->logit_shift, 0);
    assert_int_equal(b->rope_hf, UM_ROPE_HALVES);
    assert_int_equal(b->rope_gguf, UM_ROPE_PAIRS);
}

/* bf16 safetensors, sharded f32 safetensors and llama.cpp's GGUF: one model. */
static void fixtures_give_the_same_hparams(void **state) {
    um_hparams bf16, sharded, gguf;
    hparams_of_config("tiny-llada", "hf-bf16", &bf16);
    hparams_of_config("tiny-llada", "hf-f32-sharded", &sharded);
    hparams_of_gguf("tiny-llada-f32", &gguf);
    assert_same_hparams(&bf16, &sharded);
    assert_same_hparams(&bf16, &gguf);
    assert_int_equal(gguf.n_layers, 3);
    assert_int_equal(gguf.d_model, 64);
    assert_int_equal(gguf.head_dim, 16);
    assert_int_equal(gguf.mask_id, 500);
    assert_false(bf16.rope_interleaved);
    assert_true(gguf.rope_interleaved);
    /* through the loader: the end-of-turn id from either tokenizer, too */
    um_model *m[3];
    m[0] = open_fixture_model("tiny-llada", "hf-bf16", 1);
    m[1] = open_fixture_model("tiny-llada", "hf-f32-sharded", 1);
    um_error err;
    if (um_model_open(gguf_path("tiny-llada-f32"), NULL, &m[2], &err) != UM_OK)
        fail_msg("%s", err.msg);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(m[i]->arch, "llada");
        assert_same_hparams(&m[i]->hp, &bf16);
        assert_int_equal(m[i]->hp.eot_id, m[0]->hp.eot_id);
        assert_int_equal(m[i]->n_params, m[0]->n_params);
    }
    assert_true(m[0]->hp.eot_id >= 0);
    for (int i = 0; i < 3; i++)
        um_model_close(m[i]);
    /* and the grouped-query model */
    hparams_of_config("tiny-llada-gqa", "hf-f32-sharded", &sharded);
    hparams_of_gguf("tiny-llada-gqa-f32", &gguf);
    assert_same_hparams(&sharded, &gguf);
    assert_int_equal(gguf.n_kv_heads, 2);
}

/* Every tensor llama.cpp wrote has a checkpoint name that maps back to it,
 * and every checkpoint tensor has a GGUF name that is in the file. */
static void names_map_both_ways(void **state) {
    for (size_t i = 0; i < sizeof gguf_fixtures / sizeof *gguf_fixtures; i++) {
        um_gguf_file f;
        um_error err;
        if (um_gguf_open(gguf_path(gguf_fixtures[i]), &f, &err) != UM_OK)
            fail_msg("%s", err.msg);
        for (size_t t = 0; t < f.n_tensors; t++) {
            char hf[192], back[192];
            um_tensor_role r1, r2;
            if (!um_arch_hf_name(&um_arch_llada, f.tensors[t].name, hf, sizeof hf, &r1))
                fail_msg("%s: '%s' has no Hugging Face name", gguf_fixtures[i], f.tensors[t].name);
            assert_true(um_arch_gguf_name(&um_arch_llada, hf, back, sizeof back, &r2));
            assert_string_equal(back, f.tensors[t].name);
            assert_int_equal(r1, r2);
        }
        const char *model = strstr(gguf_fixtures[i], "gqa") ? "tiny-llada-gqa" : "tiny-llada";
        char rel[128];
        snprintf(rel, sizeof rel, "llada/%s/hf-f32-sharded", model);
        um_checkpoint ck;
        if (um_checkpoint_open(fixture(rel), &ck, &err) != UM_OK)
            fail_msg("%s", err.msg);
        assert_int_equal((size_t)ck.n_tensors, f.n_tensors);
        for (int t = 0; t < ck.n_tensors; t++) {
            char gname[192], back[192];
            if (!um_arch_gguf_name(&um_arch_llada, ck.tensors[t]->name, gname, sizeof gname, NULL))
                fail_msg("'%s' has no GGUF name", ck.tensors[t]->name);
            assert_non_null(um_gguf_find_tensor(&f, gname));
            assert_true(um_arch_hf_name(&um_arch_llada, gname, back, sizeof back, NULL));
            assert_string_equal(back, ck.tensors[t]->name);
        }
        um_checkpoint_close(&ck);
        um_gguf_close(&f);
    }
    /* names outside the templates map nowhere */
    char out[192];
    const char *const not_names[] = {"model.transformer.blocks.01.q_proj.weight", "model.transformer.blocks.3.q_proj",
                                     "model.transformer.blocks.x.q_proj.weight", "model.transformer.blocks.3.rotary.weight",
                                     "blk.3.attn_q.scale", "model.transformer.wte.weight.weight", ""};
    for (size_t i = 0; i < sizeof not_names / sizeof *not_names; i++)
        if (um_arch_gguf_name(&um_arch_llada, not_names[i], out, sizeof out, NULL))
            fail_msg("'%s' mapped to '%s'", not_names[i], out);
    assert_false(um_arch_hf_name(&um_arch_llada, "blk.-1.attn_q.weight", out, sizeof out, NULL));
    assert_true(um_arch_gguf_name(&um_arch_llada, "model.transformer.blocks.12.ff_out.bias", out, sizeof out, NULL));
    assert_string_equal(out, "blk.12.ffn_down.bias");
    assert_true(um_arch_hf_name(&um_arch_llada, "output.weight", out, sizeof out, NULL));
    assert_string_equal(out, "model.transformer.ff_out.weight");
}

static void expect_unsupported(const char *path, const char *name) {
    um_model *m = (um_model *)1;
    um_error err;
    assert_int_equal(um_model_open(path, NULL, &m, &err), UM_ERR_UNSUPPORTED);
    assert_null(m);
    print_message("    %s\n", err.msg);
    char want[128];
    snprintf(want, sizeof want, "unsupported architecture '%s'", name);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "(supported: llada, dream, llada-moe, llada2)"));
}

static void unknown_architectures(void **state) {
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"model_type\": \"dream\"}", 23); /* Dream's is "Dream": names are exact */
    expect_unsupported(dir, "dream");
    const char *cfg = "{\"architectures\": [\"Qwen2ForCausalLM\"]}";
    write_file(path, cfg, strlen(cfg));
    expect_unsupported(dir, "Qwen2ForCausalLM");

    /* a GGUF file whose general.architecture is not in the table */
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    um_gguf_writer *w = um_gguf_writer_new();
    um_error err;
    assert_non_null(w);
    assert_int_equal(um_gguf_writer_add_str(w, "general.architecture", "qwen2", &err), UM_OK);
    assert_int_equal(um_gguf_writer_add_u32(w, "qwen2.block_count", 1, &err), UM_OK);
    if (um_gguf_writer_write(w, path, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_gguf_writer_free(w);
    expect_unsupported(path, "qwen2");
    remove_tree(dir);
    free(dir);
}

/* One validator for both sources: each names the key as its file spells it. */
static void one_validator(void **state) {
    um_hparams hp;
    hparams_of_gguf("tiny-llada-f32", &hp);
    um_error err;
    const um_hparam_names *cfg_names = um_arch_llada.config_names;
    assert_int_equal(um_hparams_validate(&hp, cfg_names, "x/config.json", &err), UM_OK);
    um_hparams bad = hp;
    bad.n_kv_heads = 3;
    assert_int_equal(um_hparams_validate(&bad, cfg_names, "x/config.json", &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "x/config.json: n_heads 4 is not a multiple of n_kv_heads 3"));
    bad = hp;
    bad.mask_id = hp.n_vocab;
    assert_int_equal(um_hparams_validate(&bad, cfg_names, "x/config.json", &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mask_token_id 512 is outside the vocabulary"));
    bad = hp;
    bad.n_layers = UM_MAX_LAYERS + 1;
    assert_int_equal(um_hparams_validate(&bad, cfg_names, "x/config.json", &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "n_layers = 4097 is outside [1, 4096]"));
    bad = hp;
    bad.norm_eps = 1e-40f; /* subnormal */
    assert_int_equal(um_hparams_validate(&bad, cfg_names, "x/config.json", &err), UM_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "'rms_norm_eps' must be in (0, 1)"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(lookups),
    cmocka_unit_test(fixtures_give_the_same_hparams),
    cmocka_unit_test(names_map_both_ways),
    cmocka_unit_test(unknown_architectures),
    cmocka_unit_test(one_validator),
};

const test_group arch_group = {"arch", tests, sizeof tests / sizeof *tests};
