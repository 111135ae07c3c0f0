#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pool.h"

void cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "unmask %s: error: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_init(cli_args *a, const char *cmd, int argc, char **argv) {
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->i = 0;
    a->ok = true;
    a->msg = NULL;
    a->msg_size = 0;
}

/* A bad argument: said on stderr, or kept in a->msg for a caller that
 * answers with it (serve's request bodies). */
__attribute__((format(printf, 2, 3))) static void arg_error(cli_args *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (a->msg) {
        vsnprintf(a->msg, a->msg_size, fmt, ap);
    } else {
        fprintf(stderr, "unmask %s: error: ", a->cmd);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    a->ok = false;
}

bool cli_next(cli_args *a) {
    a->i++;
    return a->ok && a->i < a->argc;
}

bool cli_is(const cli_args *a, const char *short_name, const char *long_name) {
    const char *s = a->argv[a->i];
    return (short_name && strcmp(s, short_name) == 0) || (long_name && strcmp(s, long_name) == 0);
}

const char *cli_value(cli_args *a) {
    const char *flag = a->argv[a->i];
    if (a->i + 1 >= a->argc) {
        arg_error(a, "%s needs a value", flag);
        a->ok = false;
        return "";
    }
    return a->argv[++a->i];
}

int cli_int(cli_args *a, int lo, int hi) {
    const char *flag = a->argv[a->i], *v = cli_value(a);
    if (!a->ok)
        return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        arg_error(a, "%s: expected an integer in [%d, %d], got '%s'", flag, lo, hi, v);
        a->ok = false;
        return 0;
    }
    return (int)x;
}

double cli_double(cli_args *a, double lo, double hi) {
    const char *flag = a->argv[a->i], *v = cli_value(a);
    if (!a->ok)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) {
        arg_error(a, "%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, v);
        a->ok = false;
        return 0;
    }
    return x;
}

uint64_t cli_u64(cli_args *a) {
    const char *flag = a->argv[a->i], *v = cli_value(a);
    if (!a->ok)
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        arg_error(a, "%s: expected a non-negative integer, got '%s'", flag, v);
        a->ok = false;
        return 0;
    }
    return (uint64_t)x;
}

void cli_unknown(cli_args *a) {
    arg_error(a, "unknown argument '%s' (see unmask %s --help)", a->argv[a->i], a->cmd);
    a->ok = false;
}

bool cli_parse_tokens(const char *cmd, const char *text, int32_t **ids, int *n) {
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    int32_t *out = malloc(cap * sizeof *out);
    if (!out) {
        cli_error(cmd, "out of memory");
        return false;
    }
    int count = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        /* a trailing comma is an id left out, as much as "1,,2" is */
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ',') || (*end == ',' && !end[1])) {
            cli_error(cmd, "--prompt-tokens: '%s' is not a comma-separated list of token ids (at '%.20s')", text, p);
            free(out);
            return false;
        }
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    *ids = out;
    *n = count;
    return true;
}

/* A model directory exists at dir/rel: it holds a config.json. */
static bool default_model_at(char *buf, size_t size, const char *dir, const char *rel) {
    snprintf(buf, size, "%s/%s/config.json", dir, rel);
    if (access(buf, R_OK) != 0)
        return false;
    snprintf(buf, size, "%s/%s", dir, rel);
    return true;
}

const char *cli_model_path(const char *given, char *buf, size_t size) {
    if (given)
        return given;
    const char *env = getenv("UNMASK_MODEL");
    if (env && *env)
        return env;
    /* the binary is build/unmask (or build/asan/unmask, ...) of a checkout:
     * the checkout's models/, found from the binary's directory upwards */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = 0, strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = 0;
        static const char *const up[] = {UM_DEFAULT_MODEL, "../" UM_DEFAULT_MODEL, "../../" UM_DEFAULT_MODEL};
        for (size_t i = 0; i < sizeof up / sizeof *up; i++)
            if (default_model_at(buf, size, exe, up[i]))
                return buf;
    }
    return NULL;
}

void cli_print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        puts(s);
    free(s);
    cJSON_Delete(o);
}

cJSON *cli_generation_json(const um_generation *g, const char *text) {
    cJSON *o = cJSON_CreateObject();
    if (text)
        cJSON_AddStringToObject(o, "text", text);
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *gen = cJSON_AddArrayToObject(o, "generated");
    for (int i = 0; i < g->n_tokens; i++) {
        cJSON_AddItemToArray(tokens, cJSON_CreateNumber(g->tokens[i]));
        if (i >= g->prompt_len)
            cJSON_AddItemToArray(gen, cJSON_CreateNumber(g->tokens[i]));
    }
    cJSON_AddNumberToObject(o, "prompt_length", g->prompt_len);
    cJSON_AddNumberToObject(o, "nfe", g->nfe);
    cJSON_AddNumberToObject(o, "seconds", g->seconds);
    cJSON_AddNumberToObject(o, "ms_per_forward", g->nfe ? 1e3 * g->forward_seconds / g->nfe : 0);
    cJSON_AddNumberToObject(o, "committed", g->n_committed);
    cJSON_AddNumberToObject(o, "tokens_per_second", g->seconds > 0 ? g->n_committed / g->seconds : 0);
    return o;
}

char *cli_unescape(const char *s) {
    char *o = malloc(strlen(s) + 1), *p = o;
    if (!o)
        return NULL;
    for (; *s; s++) {
        if (s[0] == '\\' && (s[1] == 'n' || s[1] == 't' || s[1] == '\\')) {
            *p++ = s[1] == 'n' ? '\n' : s[1] == 't' ? '\t' : '\\';
            s++;
        } else {
            *p++ = *s;
        }
    }
    *p = 0;
    return o;
}

um_model *cli_open_model(const char *cmd, const char *path, int n_threads, unsigned flags) {
    /* default: one thread per physical core (SMT siblings share the vector units the kernels saturate) */
    um_model_params mp = {n_threads > 0 ? n_threads : um_physical_core_count(), (flags & CLI_MODEL_NO_REPACK) != 0};
    um_model *m;
    um_error err;
    if (n_threads > um_cpu_count()) /* more threads than CPUs only wait for each other */
        fprintf(stderr, "unmask %s: warning: -t %d is more than the %d CPUs of this machine\n", cmd, n_threads,
                um_cpu_count());
    if (!path) {
        cli_error(cmd, "no model given and the default model (%s) was not found: use -m MODEL (a GGUF file or a "
                       "Hugging Face directory) or set UNMASK_MODEL", UM_DEFAULT_MODEL);
        return NULL;
    }
    if (um_model_open(path, &mp, &m, &err) != UM_OK) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    um_model_info info;
    um_model_get_info(m, &info);
    if (!(flags & CLI_MODEL_QUIET)) {
        size_t rss;
        um_memory_usage(&rss, NULL);
        char ffn[64];
        if (info.n_expert > 0)
            snprintf(ffn, sizeof ffn, "%d of %d experts of %d (%.1fM active)", info.n_expert_used, info.n_expert,
                     info.d_ff_expert, (double)info.n_active_params / 1e6);
        else
            snprintf(ffn, sizeof ffn, "ffn %d", info.d_ff);
        char packed[64] = "";
        if (info.repacked_bytes > 0)
            snprintf(packed, sizeof packed, " (weights packed at load: %.1f MiB)", (double)info.repacked_bytes / 1048576.0);
        fprintf(stderr,
                "model: %s %s, %.1fM params, %d layers, d_model %d, %d heads (%d kv), %s, vocab %d; "
                "%d threads; resident %.1f MiB%s\n",
                info.architecture, info.weight_type, (double)info.n_params / 1e6, info.n_layers, info.d_model,
                info.n_heads, info.n_kv_heads, ffn, info.n_vocab, info.n_threads, (double)rss / 1048576.0, packed);
    }
    if (info.repack_skipped_bytes > 0)
        fprintf(stderr,
                "unmask %s: note: weights used as stored: packing them for the kernels would take %.1f MiB, more "
                "than the memory available allows (--no-repack: as stored, without this note)\n",
                cmd, (double)info.repack_skipped_bytes / 1048576.0);
    return m;
}

um_context *cli_open_context(const char *cmd, const um_model *m) {
    um_context *ctx;
    um_error err;
    if (um_context_create(m, NULL, &ctx, &err) != UM_OK) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    return ctx;
}

/* The value of a flag that names one of n choices; its index, or -1 after an error. */
int cli_choice(cli_args *a, const char *const *names, int n) {
    const char *flag = a->argv[a->i], *v = cli_value(a);
    for (int i = 0; a->ok && i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    if (a->ok) {
        char list[256] = "";
        for (int i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (i + 1 < n ? ", " : " or ") : "",
                     names[i]);
        arg_error(a, "%s: expected %s, got '%s'", flag, list, v);
        a->ok = false;
    }
    return -1;
}

um_generate_params cli_generate_defaults(void) {
    um_generate_params p = um_generate_default_params();
    p.cache = UM_CACHE_DUAL;
    p.decoder = UM_DECODER_THRESHOLD;
    p.threshold = 0.9;
    return p;
}

/* llama-diffusion-cli's --diffusion-algorithm N: 0 origin, 1 entropy, 2
 * margin, 3 random positions, 4 confidence (its default), as our decoders. */
static void diffusion_algorithm(cli_args *a, cli_gen_flags *f) {
    static const um_decoder decoders[] = {UM_DECODER_ORIGIN, UM_DECODER_ENTROPY, UM_DECODER_MARGIN, UM_DECODER_TOPK,
                                          UM_DECODER_TOPK};
    int alg = cli_int(a, 0, 4);
    f->p->decoder = decoders[alg];
    f->p->remasking = alg == 3 ? UM_REMASK_RANDOM : UM_REMASK_LOW_CONFIDENCE;
    f->set_decoder = true;
}

bool cli_generation_flag(cli_args *a, cli_gen_flags *f) {
    um_generate_params *p = f->p;
    if (cli_is(a, NULL, "--reference")) {
        p->cache = UM_CACHE_NONE;
        p->decoder = UM_DECODER_TOPK;
        f->set_cache = f->set_decoder = true;
    } else if (cli_is(a, "-n", "--gen-length") || cli_is(a, NULL, "--n-predict")) f->gen_length = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--steps") || cli_is(a, NULL, "--diffusion-steps")) f->steps = cli_int(a, 1, 1 << 20);
    else if (cli_is(a, NULL, "--block-length") || cli_is(a, NULL, "--diffusion-block-length"))
        f->block = cli_int(a, 1, 1 << 20);
    else if (cli_is(a, NULL, "--diffusion-algorithm")) diffusion_algorithm(a, f);
    else if (cli_is(a, NULL, "--temp")) p->temperature = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--cfg-scale")) p->cfg_scale = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--logits-eos-inf")) p->logits_eos_inf = true;
    else if (cli_is(a, NULL, "--confidence-eos-eot-inf")) p->confidence_eos_eot_inf = true;
    else if (cli_is(a, "-s", "--seed")) p->seed = cli_u64(a);
    else if (cli_is(a, NULL, "--remasking")) {
        static const char *const names[] = {"low_confidence", "random"};
        p->remasking = (um_remasking)cli_choice(a, names, 2);
    } else if (cli_is(a, NULL, "--cache")) {
        static const char *const names[] = {"none", "prefix", "dual", "vicinity"};
        p->cache = (um_cache_mode)cli_choice(a, names, 4);
        f->set_cache = true;
    } else if (cli_is(a, NULL, "--decoder")) {
        static const char *const names[] = {"topk", "threshold",    "factor", "margin", "entropy",
                                            "med",  "hierarchical", "credit", "origin"};
        p->decoder = (um_decoder)cli_choice(a, names, 9);
        f->set_decoder = true;
    } else if (cli_is(a, NULL, "--schedule")) {
        static const char *const names[] = {"uniform", "power", "timesteps", "quota"};
        p->schedule = (um_schedule)cli_choice(a, names, 4);
        f->set_schedule = true;
    } else if (cli_is(a, NULL, "--top-k")) {
        p->top_k = cli_int(a, 0, 1024);
        f->set_top_k = true;
    } else if (cli_is(a, NULL, "--eps")) {
        p->schedule_eps = cli_double(a, 1e-9, 0.999999);
    }
    else if (cli_is(a, NULL, "--top-p")) p->top_p = cli_double(a, 0, 1);
    else if (cli_is(a, NULL, "--min-p")) p->min_p = cli_double(a, 0, 1);
    else if (cli_is(a, NULL, "--alg-temp")) p->alg_temp = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--window")) p->cache_window = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--refresh")) p->cache_refresh = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--threshold")) {
        p->threshold = cli_double(a, 0, 1);
        f->set_threshold = true;
    }
    else if (cli_is(a, NULL, "--minimal-topk")) p->minimal_topk = cli_int(a, 1, 1 << 20);
    else if (cli_is(a, NULL, "--low-threshold")) p->low_threshold = cli_double(a, 0, 1);
    else if (cli_is(a, NULL, "--factor")) p->factor = cli_double(a, 1e-9, 1e6);
    else if (cli_is(a, NULL, "--entropy-bound")) p->entropy_bound = cli_double(a, 1e-9, 1e6);
    else if (cli_is(a, NULL, "--credit-alpha")) p->credit_alpha = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--credit-gamma")) p->credit_gamma = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--credit-decay")) p->credit_decay = cli_double(a, 0, 1);
    else if (cli_is(a, NULL, "--eos-rejection")) p->eos_rejection = true;
    else if (cli_is(a, NULL, "--eos-gamma")) {
        p->eos_gamma = cli_double(a, 0, 1);
        p->eos_rejection = true;
    }
    else if (cli_is(a, NULL, "--early-stop")) p->early_stop = true;
    else if (cli_is(a, NULL, "--loop")) {
        static const char *const names[] = {"steps", "dinfer", "blocks"};
        p->loop = (um_loop)cli_choice(a, names, 3);
    }
    else if (cli_is(a, NULL, "--maximum-unroll")) p->maximum_unroll = cli_int(a, 1, 1 << 20);
    else if (cli_is(a, NULL, "--expected-tpf")) p->expected_tpf = cli_int(a, 1, 1 << 20);
    else if (cli_is(a, NULL, "--start-block-align")) p->start_block_align = true;
    else if (cli_is(a, NULL, "--warmup-steps")) p->warmup_steps = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--prefix-look")) p->prefix_look = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--after-look")) p->after_look = cli_int(a, 0, 1 << 20);
    else if (cli_is(a, NULL, "--iter-smooth")) p->iter_smooth = true;
    else if (cli_is(a, NULL, "--cont-weight")) p->cont_weight = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--cont-weight-init")) p->cont_weight_init = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--cont-weight-growth")) p->cont_weight_growth = cli_double(a, 0, 1e6);
    else if (cli_is(a, NULL, "--threshold-decay")) p->threshold_decay = cli_double(a, 0, 1);
    else if (cli_is(a, NULL, "--max-nfe")) p->max_nfe = cli_int(a, 0, 1 << 30);
    else return false;
    return true;
}

int cli_default_block_length(int gen_length) {
    /* the largest divisor up to 32, LLaDA's block; one block when that would be small blocks of an odd length */
    for (int b = gen_length < 32 ? gen_length : 32; b >= 8; b--)
        if (gen_length % b == 0)
            return b;
    return gen_length;
}

bool cli_generation_key(const cJSON *v, cli_gen_flags *gf, char *msg, size_t msg_size) {
    char flag[96], value[64];
    snprintf(flag, sizeof flag, "--%s", v->string);
    for (char *c = flag + 2; *c; c++)
        *c = *c == '_' ? '-' : *c;
    char *argv[3] = {"", flag, value};
    int argc = 3;
    if (cJSON_IsBool(v)) {
        if (cJSON_IsFalse(v))
            return true;
        argc = 2;
    } else if (cJSON_IsNumber(v)) {
        snprintf(value, sizeof value, "%.17g", v->valuedouble);
    } else if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof value) {
        snprintf(value, sizeof value, "%s", v->valuestring);
    } else {
        snprintf(msg, msg_size, "expected a number, a string or true");
        return false;
    }
    cli_args a;
    cli_init(&a, "", argc, argv);
    a.msg = msg;
    a.msg_size = msg_size;
    cli_next(&a);
    /* "--x" spelled in the key itself, or a flag that is not a generation flag */
    if (strchr(v->string, '-') || strlen(v->string) + 3 > sizeof flag || !cli_generation_flag(&a, gf)) {
        snprintf(msg, msg_size, "not a request key");
        return false;
    }
    if (a.ok && a.i + 1 < argc) {
        snprintf(msg, msg_size, "takes true or false");
        return false;
    }
    return a.ok;
}

void cli_generation_finish(cli_gen_flags *f, int default_gen_length) {
    um_generate_params *p = f->p;
    p->gen_length = f->gen_length >= 0 ? f->gen_length : default_gen_length;
    p->block_length = f->block > 0 ? f->block : cli_default_block_length(p->gen_length);
    p->steps = f->steps > 0 ? f->steps : p->gen_length;
}

bool cli_steps_unused(const cli_gen_flags *f) {
    const um_generate_params *p = f->p;
    um_decoder d = p->decoder;
    bool counting = d == UM_DECODER_TOPK || d == UM_DECODER_MARGIN || d == UM_DECODER_ENTROPY || d == UM_DECODER_ORIGIN;
    return f->steps > 0 && !counting && p->schedule != UM_SCHEDULE_QUOTA && p->loop == UM_LOOP_STEPS;
}

/* LLaDA2's generate(): its loop, block length, steps per block, decoder and threshold. */
static void block_diffusion_defaults(cli_gen_flags *f, const um_model_info *info) {
    um_generate_params *p = f->p;
    if (p->loop == UM_LOOP_STEPS)
        p->loop = UM_LOOP_BLOCKS;
    if (!f->set_cache)
        p->cache = UM_CACHE_NONE; /* its own cache of finished blocks; another one given is refused */
    if (!f->set_decoder)
        p->decoder = UM_DECODER_THRESHOLD;
    if (!f->set_threshold)
        p->threshold = 0.95;
    if (f->block <= 0)
        p->block_length = info->diffusion_block;
    if (f->steps <= 0)
        p->steps = p->block_length;
}

void cli_generation_for_model(cli_gen_flags *f, const um_model *m) {
    um_model_info info;
    um_model_get_info(m, &info);
    um_generate_params *p = f->p;
    if (info.diffusion_block > 0)
        block_diffusion_defaults(f, &info);
    if (!info.logit_shift)
        return;
    if (!f->set_cache)
        p->cache = UM_CACHE_NONE;
    if (!f->set_decoder)
        p->decoder = UM_DECODER_ENTROPY;
    /* the schedule of the upstream function the decoder and cache stand for: diffusion_generate's
       timesteps (also in Fast-dLLM's block mode), Fast-dLLM's quota for threshold decoding without cache */
    um_decoder d = p->decoder;
    bool planned = d == UM_DECODER_TOPK || d == UM_DECODER_MARGIN || d == UM_DECODER_ENTROPY || d == UM_DECODER_ORIGIN;
    if (!f->set_schedule && planned)
        p->schedule = UM_SCHEDULE_TIMESTEPS;
    else if (!f->set_schedule && d == UM_DECODER_THRESHOLD && p->cache == UM_CACHE_NONE)
        p->schedule = UM_SCHEDULE_QUOTA;
    if (!f->set_top_k)
        p->top_k = 50;
    /* diffusion_generate decodes one block; Fast-dLLM's block mode keeps the block length (32) */
    if (f->block <= 0 && p->gen_length > 0 && p->cache == UM_CACHE_NONE)
        p->block_length = p->gen_length;
}

/* The first Ctrl-C stops the generation at the next step; a second one
 * exits at once (the generation may be minutes from its next step). */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    if (interrupted)
        _exit(130);
    interrupted = 1;
}

um_status cli_generate(um_context *ctx, const int32_t *prompt, int n_prompt, const um_generate_params *p,
                       um_generation *g, bool *was_interrupted, um_error *err) {
    memset(g, 0, sizeof *g);
    *was_interrupted = false;
    um_session *s;
    um_status st = um_session_begin(um_context_model(ctx), prompt, n_prompt, p, &s, err);
    if (st != UM_OK)
        return st;
    /* The handler runs on a stack of its own: oneDNN's JIT kernels keep data
       below the stack pointer, and a signal frame written there (11 KiB with
       AVX-512 and AMX state) corrupted a matmul in flight, then the heap. */
    static char handler_stack[1 << 16];
    stack_t alt = {.ss_sp = handler_stack, .ss_size = sizeof handler_stack}, old_alt;
    sigaltstack(&alt, &old_alt);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;
    while (st == UM_OK && !um_session_finished(s)) {
        if (interrupted)
            um_session_cancel(s);
        else
            st = um_session_step(ctx, s, err);
    }
    sigaction(SIGINT, &old, NULL);
    sigaltstack(&old_alt, NULL);
    *was_interrupted = interrupted;
    if (st == UM_OK)
        st = um_session_result(s, g, err);
    if (*was_interrupted)
        st = UM_OK; /* the caller shows what was committed */
    else if (st != UM_OK)
        um_generation_free(g);
    um_session_free(s);
    return st;
}

void cli_progress(int i, int n, const char *fmt, ...) {
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDERR_FILENO);
    if (!tty && i != n && i % (n / 10 > 0 ? n / 10 : 1) != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs(tty ? "\r" : "", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(!tty || i == n ? "\n" : "", stderr);
    fflush(stderr);
}
