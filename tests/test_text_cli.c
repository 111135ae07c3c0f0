/* Text in, text out through the commands: prompts tokenized as the reference
 * tokenizers do (llama.cpp's own run on the fixture GGUF, the Hugging Face
 * vectors), answers cut at EOS, infilling, the live view, `unmask tokenize`,
 * and `unmask chat` driven through a pseudo-terminal. */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "tokenizer/tokenizer.h"

static const char *unmask_bin(void) {
    const char *b = getenv("UNMASK_BIN");
    return b && *b ? b : "build/unmask";
}

/* llama-diffusion-cli's prompt for "What is free software?" on this GGUF
 * (fixtures/llada/gguf/llamacpp_runs.txt): the chat template, BOS included. */
static const int32_t LLAMA_CPP_CHAT_PROMPT[] = {503, 504, 84, 82, 260, 505, 198, 198, 54,  71,  282, 330, 286,
                                                415, 492, 30, 502, 504, 449, 82, 268, 83, 402, 505, 377};

static void chat_prompt_matches_llama_cpp(void **state) {
    cJSON *o = run_unmask_json("run -m %s -p 'What is free software?' --chat -n 8 --steps 8 --block-length 8 --json",
                        fixture("llada/gguf/tiny-llada-f32.gguf"));
    const cJSON *tokens = cJSON_GetObjectItem(o, "tokens");
    int n = (int)(sizeof LLAMA_CPP_CHAT_PROMPT / sizeof *LLAMA_CPP_CHAT_PROMPT);
    assert_int_equal(cJSON_GetObjectItem(o, "prompt_length")->valueint, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(cJSON_GetArrayItem(tokens, i)->valueint, LLAMA_CPP_CHAT_PROMPT[i]);
    cJSON_Delete(o);
}

/* `run --chat` on LLaDA-MoE and Dream (their GGUF files, whose metadata
 * carries the chat template) gives the prompt ids of the fixtures README's
 * renderings of one user turn; `unmask chat` answers each line of a pipe. */
/* "[1, 2, 3]\n" (tokenize --ids) as ids. */
static bool parse_id_list(const char *text, int32_t **ids, int *n) {
    cJSON *a = cJSON_Parse(text);
    *ids = json_int_array(a, n);
    cJSON_Delete(a);
    return *ids && *n > 0;
}

static void chat_of_each_family(void **state) {
    static const int32_t moe[] = {504, 39, 52, 44, 32, 45, 505, 54, 71, 282, 330, 286, 415, 492,
                                  30,  502, 504, 32, 50, 50, 40, 50, 51, 32, 45, 51, 505};
    static const int32_t dream[] = {501, 82,  88,  334, 68,  76,  198, 381, 469, 259, 390, 68,  75,  79, 69, 84,
                                    75,  391, 82,  268, 83,  402, 13,  502, 198, 501, 84,  82,  260, 198, 54, 71,
                                    282, 330, 286, 415, 492, 30,  502, 198, 501, 449, 82,  268, 83,  402, 198};
    struct {
        const char *model;
        const int32_t *ids;
        int n;
    } fam[] = {{"llada-moe/gguf/tiny-llada-moe-f32.gguf", moe, (int)(sizeof moe / sizeof *moe)},
               {"dream/gguf/tiny-dream-f32.gguf", dream, (int)(sizeof dream / sizeof *dream)},
               {"llada2/tiny-llada2/hf-bf16", NULL, 0}};
    /* LLaDA2's: the Ling 2.0 rendering the fixtures' README gives for this turn, as its tokenizer encodes it */
    cmd_result r = run_unmask("tokenize -m %s --ids -p '<role>SYSTEM</role>detailed thinking off<|role_end|>"
                              "<role>HUMAN</role>What is free software?<|role_end|><role>ASSISTANT</role>'",
                              fixture(fam[2].model));
    assert_int_equal(r.status, 0);
    int32_t *llada2 = NULL;
    assert_true(parse_id_list(r.out, &llada2, &fam[2].n));
    fam[2].ids = llada2;
    cmd_result_free(&r);
    for (int f = 0; f < 3; f++) {
        cJSON *o = run_unmask_json("run -m %s -p 'What is free software?' --chat -n 8 --steps 8 --json",
                                   fixture(fam[f].model));
        const cJSON *tokens = cJSON_GetObjectItem(o, "tokens");
        assert_int_equal(cJSON_GetObjectItem(o, "prompt_length")->valueint, fam[f].n);
        for (int i = 0; i < fam[f].n; i++)
            assert_int_equal(cJSON_GetArrayItem(tokens, i)->valueint, fam[f].ids[i]);
        cJSON_Delete(o);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "printf 'What is free software?\\nName one license.\\n' | %s %s chat -m %s -n 8 2>&1",
                 exec_wrapper(), unmask_bin(), fixture(fam[f].model));
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char buf[4096];
        size_t got = fread(buf, 1, sizeof buf - 1, p);
        buf[got] = 0;
        assert_int_equal(pclose(p), 0);
        int answers = 0;
        for (const char *q = buf; (q = strstr(q, "[nfe ")) != NULL; q++)
            answers++;
        assert_int_equal(answers, 2); /* one answer a line, each with its statistics */
    }
    free(llada2);
}

/* A raw prompt encodes as the Hugging Face tokenizer does (first line of the
 * fixture vectors); the answer is the generated ids decoded up to EOS/EOT. */
static void raw_prompt_and_answer(void **state) {
    size_t n;
    char *vectors = read_whole_file(fixture("tokenizers/hf-vectors/tiny-llada.jsonl"), &n);
    char *nl = strchr(vectors, '\n');
    if (nl)
        *nl = 0;
    cJSON *vec = cJSON_Parse(vectors);
    free(vectors);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(vec, "text"));
    const cJSON *ids = cJSON_GetObjectItem(vec, "ids");
    assert_non_null(text);
    char path[4096];
    snprintf(path, sizeof path, "%s/prompt.txt", fixtures_dir());
    char *dir = make_temp_dir(), file[512];
    snprintf(file, sizeof file, "%s/prompt.txt", dir);
    write_file(file, text, strlen(text));
    char args[1024];
    snprintf(args, sizeof args, "run -m %%s -f %s -n 16 --steps 16 --block-length 8 --json", file);
    cJSON *o = run_unmask_json(args, fixture("llada/tiny-llada/hf-bf16"));
    const cJSON *tokens = cJSON_GetObjectItem(o, "tokens");
    int n_ids = cJSON_GetArraySize(ids);
    assert_int_equal(cJSON_GetObjectItem(o, "prompt_length")->valueint, n_ids); /* no BOS: add_bos_token false */
    for (int i = 0; i < n_ids; i++)
        assert_int_equal(cJSON_GetArrayItem(tokens, i)->valueint, cJSON_GetArrayItem(ids, i)->valueint);

    /* the text field is the generated ids up to EOS/EOT, decoded without specials */
    um_tokenizer *tok;
    um_error err;
    assert_int_equal(um_tokenizer_load(fixture("llada/tiny-llada/hf-bf16"), &tok, &err), UM_OK);
    int n_gen = cJSON_GetArraySize(tokens) - n_ids, end = 0;
    int32_t gen[64];
    for (int i = 0; i < n_gen && i < 64; i++)
        gen[i] = cJSON_GetArrayItem(tokens, n_ids + i)->valueint;
    while (end < n_gen && gen[end] != 501 && gen[end] != 502)
        end++;
    char *want;
    size_t len;
    assert_int_equal(um_tokenizer_decode(tok, gen, (size_t)end, true, &want, &len, &err), UM_OK);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "text")), want);
    free(want);
    um_tokenizer_free(tok);
    cJSON_Delete(o);
    cJSON_Delete(vec);
    remove_tree(dir);
    free(dir);
}

/* {mask:N} placeholders become masks; all are filled, the text around them kept. */
static void infill_template(void **state) {
    cJSON *o = run_unmask_json("run -m %s --infill 'The capital of France is {mask:4}, of Spain {mask:3}.' --json",
                        fixture("llada/tiny-llada/hf-bf16"));
    const cJSON *tokens = cJSON_GetObjectItem(o, "tokens");
    int n = cJSON_GetArraySize(tokens);
    assert_int_equal(cJSON_GetObjectItem(o, "prompt_length")->valueint, n); /* nothing appended */
    assert_int_equal(cJSON_GetObjectItem(o, "nfe")->valueint, 7);            /* one step per mask */
    for (int i = 0; i < n; i++)
        assert_int_not_equal(cJSON_GetArrayItem(tokens, i)->valueint, 500);
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(o, "text"));
    assert_non_null(text);
    assert_true(strncmp(text, "The capital of France is", 24) == 0);
    assert_non_null(strstr(text, ", of Spain"));
    cJSON_Delete(o);
    cmd_result r = run_unmask("run -m %s --infill 'bad {mask:x}'", fixture("llada/tiny-llada/hf-bf16"));
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "bad placeholder"));
    cmd_result_free(&r);
}

/* Without a terminal --visual falls back to plain output. */
static void visual_plain_when_piped(void **state) {
    cmd_result r = run_unmask("run -m %s -p 'Once upon a time' -n 8 --steps 8 --block-length 8 --visual",
                              fixture("llada/tiny-llada/hf-bf16"));
    assert_int_equal(r.status, 0);
    assert_null(strchr(r.out, '\x1b'));
    assert_true(strlen(r.out) > 0);
    cmd_result_free(&r);
}

/* Vocabulary-only GGUF files work, and ids match llama.cpp's vectors. */
static void tokenize_vocab_only_gguf(void **state) {
    cmd_result r = run_unmask("tokenize -m %s -p 'Hello world' --ids",
                              fixture("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"));
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[15496, 995]\n"); /* GPT-2's ids for "Hello" and " world" */
    cmd_result_free(&r);
    r = run_unmask("tokenize -m %s -p 'Hello <|eot_id|>'", fixture("llada/gguf/tiny-llada-f16.gguf"));
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "502 -> '<|eot_id|>'"));
    cmd_result_free(&r);
    /* pieces as the text they stand for (GPT-2's "Ġworld" is " world"), a newline escaped; the model from
       UNMASK_MODEL when -m is not given */
    setenv("UNMASK_MODEL", fixture("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"), 1);
    r = run_unmask("tokenize -p \"$(printf 'Hello world\\nx')\"");
    unsetenv("UNMASK_MODEL");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "15496 -> 'Hello'\n"));
    assert_non_null(strstr(r.out, "995 -> ' world'\n"));
    assert_non_null(strstr(r.out, " -> '\\n'\n"));
    cmd_result_free(&r);
}

/* Reads from fd into buf until want appears at or after offset from (or
 * 30 s pass); returns where it is, or NULL. */
static char *read_until(int fd, const char *want, char *buf, size_t cap, size_t *len, size_t from) {
    for (int waited = 0; waited < 300; waited++) {
        buf[*len] = 0;
        if (strstr(buf + from, want))
            return strstr(buf + from, want);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t got = read(fd, buf + *len, cap - *len - 1);
            if (got <= 0)
                break;
            *len += (size_t)got;
        }
    }
    buf[*len] = 0;
    return strstr(buf + from, want);
}

/* `unmask run` on a terminal shows a progress line; the first Ctrl-C stops
 * at the next step, prints what was committed and exits 130. In a pipe no
 * progress line is written. */
/* The child's exit status, waiting at most 30 s (then it is killed: a
 * failure, not a hung test). */
static int wait_child(pid_t pid) {
    int status;
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the child did not exit within 30 s");
    return -1;
}

/* Reads from the child's terminal until want appears; kills the child and
 * fails when it does not. */
static void expect_child_says(pid_t pid, int fd, const char *want, char *buf, size_t cap, size_t *len) {
    if (read_until(fd, want, buf, cap, len, 0))
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the child never wrote '%s'; it wrote: %s", want, buf);
}

static void run_progress_and_ctrl_c(void **state) {
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) { /* a long generation on the story model: 500 full passes, seconds */
        char *argv[] = {(char *)unmask_bin(), "run", "-m", "models/stories", "--prompt-tokens", "1,2,3", "-n",
                        "500", "--reference", NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    static char buf[1 << 16];
    size_t len = 0;
    expect_child_says(pid, master, "masks left", buf, sizeof buf, &len);
    expect_child_says(pid, master, "ETA", buf, sizeof buf, &len);
    assert_true(write(master, "\x03", 1) == 1); /* the terminal turns it into SIGINT */
    expect_child_says(pid, master, "tokens committed", buf, sizeof buf, &len);
    int status = wait_child(pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    assert_non_null(strstr(buf, "interrupted after"));
    close(master);

    cmd_result r = run_unmask("run -m models/stories --prompt-tokens 1,2,3 -n 16 --reference");
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.err, "masks left"));
    cmd_result_free(&r);
}

/* `unmask chat` in a terminal: Ctrl-C during an answer stops it and returns
 * to the prompt (the conversation goes on: /exit then leaves, exit 0). */
static void chat_ctrl_c(void **state) {
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) { /* answers of 400 full passes on the story model: seconds each */
        char *argv[] = {(char *)unmask_bin(), "chat", "-m", "models/stories", "-n", "400", "--reference", NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    static char buf[1 << 16];
    size_t len = 0;
    expect_child_says(pid, master, "> ", buf, sizeof buf, &len);
    assert_true(write(master, "Once upon a time\r", 17) == 17);
    /* the warning comes as the conversation is rendered: the answer starts */
    expect_child_says(pid, master, "no chat template", buf, sizeof buf, &len);
    usleep(200 * 1000);
    assert_true(write(master, "\x03", 1) == 1);
    expect_child_says(pid, master, "(answer stopped)", buf, sizeof buf, &len);
    size_t mark = (size_t)(strstr(buf, "(answer stopped)") - buf); /* the prompt comes after it */
    assert_non_null(read_until(master, "> ", buf, sizeof buf, &len, mark));
    usleep(300 * 1000);
    assert_true(write(master, "/exit\r", 6) == 6);
    int status = wait_child(pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(master);
}

/* Ctrl-D at the prompt leaves on a fresh line, exit 0. */
static void chat_ctrl_d(void **state) {
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {(char *)unmask_bin(), "chat", "-m", (char *)fixture("llada/tiny-llada/hf-bf16"), NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    static char buf[1 << 16];
    size_t len = 0;
    expect_child_says(pid, master, "> ", buf, sizeof buf, &len);
    usleep(300 * 1000); /* libedit has the terminal */
    assert_true(write(master, "\x04", 1) == 1);
    int status = wait_child(pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    read_until(master, "\n", buf, sizeof buf, &len, (size_t)(strstr(buf, "> ") - buf));
    close(master);
}

/* A conversation that outgrows the context loses its oldest turns (said
 * once) and goes on; -n that leaves no room is refused at start. */
static void chat_context_overflow(void **state) {
    const char *model = fixture("llada/tiny-llada/hf-bf16"); /* a 256-token context */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'the cat sat on the mat and the dog sat on the log all day long\\n%%.0s' 1 2 3 4 | "
             "%s %s chat -m %s -n 100 --steps 20 --reference 2>&1",
             exec_wrapper(), unmask_bin(), model);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char buf[1 << 16];
    size_t got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    assert_int_equal(pclose(p), 0);
    int answers = 0, warnings = 0;
    for (const char *q = buf; (q = strstr(q, "[nfe 20")) != NULL; q++)
        answers++;
    for (const char *q = buf; (q = strstr(q, "dropping its oldest turns")) != NULL; q++)
        warnings++;
    assert_int_equal(answers, 4);
    assert_int_equal(warnings, 1);
    cmd_result r = run_unmask("chat -m %s -n 256", model);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "leaves no room"));
    cmd_result_free(&r);
    r = run_unmask("chat -m %s -n 100 -c 100", model); /* llama.cpp's -c: a smaller context than the model's */
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "-n 100 leaves no room for the conversation in the 100-token context (-c)"));
    cmd_result_free(&r);
}

/* Two turns of `unmask chat` in a pseudo-terminal: each answer appears after
 * its prompt, the first equals `run --chat` on the same message, /exit ends. */
static void chat_two_turns_in_a_terminal(void **state) {
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    cmd_result r = run_unmask("run -m %s -p 'What is free software?' --chat -n 16 --reference", model);
    assert_int_equal(r.status, 0);
    char first[1024];
    snprintf(first, sizeof first, "%s", r.out);
    cmd_result_free(&r);

    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {(char *)unmask_bin(), "chat", "-m", (char *)model, "-n", "16", "--reference", NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    static char buf[1 << 16];
    size_t len = 0;
    assert_non_null(read_until(master, "> ", buf, sizeof buf, &len, 0));
    assert_true(write(master, "What is free software?\n", 23) == 23);
    size_t mark = len;
    assert_non_null(read_until(master, "[nfe 16", buf, sizeof buf, &len, mark));
    assert_non_null(read_until(master, "\n> ", buf, sizeof buf, &len, mark));
    /* the terminal echoes input and turns \n into \r\n */
    char want[1100];
    snprintf(want, sizeof want, "%.*s\r\n", (int)strcspn(first, "\n"), first);
    assert_non_null(strstr(buf + mark, want));
    mark = len;
    assert_true(write(master, "Tell me more.\n", 14) == 14);
    assert_non_null(read_until(master, "[nfe 16", buf, sizeof buf, &len, mark));
    assert_true(write(master, "/exit\n", 6) == 6);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(master);
}

/* In a terminal --visual draws: escape codes and the status line. */
static void visual_draws_in_a_terminal(void **state) {
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {(char *)unmask_bin(), "run", "-m", (char *)fixture("llada/tiny-llada/hf-bf16"), "-p",
                        "Once upon a time", "-n", "8", "--steps", "4", "--block-length", "8", "--visual", NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    static char buf[1 << 16];
    size_t len = 0;
    read_until(master, "generated 8 tokens", buf, sizeof buf, &len, 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(strstr(buf, "\x1b[H"));
    assert_non_null(strstr(buf, "NFE 4"));
    assert_non_null(strstr(buf, "0 masks left"));
    close(master);
}

/* --visual in a terminal of rows x cols; the output's bytes into buf. */
static void visual_in(unsigned short rows, unsigned short cols, char *buf, size_t cap) {
    struct winsize ws = {rows, cols, 0, 0};
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {(char *)unmask_bin(), "run", "-m", (char *)fixture("llada/tiny-llada/hf-bf16"), "-p",
                        "Once upon a time", "-n", "200", "--steps", "40", "--reference", "--visual", NULL};
        exec_wrapped(argv);
        _exit(127);
    }
    size_t len = 0;
    expect_child_says(pid, master, "generated 200 tokens", buf, cap, &len);
    int status = wait_child(pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(master);
}

/* A canvas taller than the terminal shows its last rows (the prompt at its
 * top scrolls out of view instead of the screen scrolling); in a terminal
 * large enough the whole canvas, prompt included, is drawn. */
static void visual_keeps_the_last_rows(void **state) {
    static char buf[1 << 18];
    visual_in(8, 40, buf, sizeof buf); /* 200 tokens of 40 columns: 5 rows and more, 5 rows to draw them in */
    assert_null(strstr(buf, "Once"));
    assert_non_null(strstr(buf, "0 masks left"));
    visual_in(50, 200, buf, sizeof buf);
    assert_non_null(strstr(buf, "Once"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(chat_prompt_matches_llama_cpp), cmocka_unit_test(chat_of_each_family),
    cmocka_unit_test(run_progress_and_ctrl_c), cmocka_unit_test(chat_ctrl_c), cmocka_unit_test(chat_ctrl_d),
    cmocka_unit_test(chat_context_overflow), cmocka_unit_test(raw_prompt_and_answer),
    cmocka_unit_test(infill_template),               cmocka_unit_test(visual_plain_when_piped),
    cmocka_unit_test(tokenize_vocab_only_gguf),      cmocka_unit_test(chat_two_turns_in_a_terminal),
    cmocka_unit_test(visual_draws_in_a_terminal),    cmocka_unit_test(visual_keeps_the_last_rows),
};
const test_group text_cli_group = {"text_cli", tests, sizeof tests / sizeof *tests};
