/* Text in, text out for the commands: the model's tokenizer and chat format,
 * prompts from text (raw, chat or an infill template), answers as text. */
#ifndef UM_TOOLS_TEXT_H
#define UM_TOOLS_TEXT_H

#include <stdbool.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef struct {
    const char *cmd; /* for error messages */
    um_tokenizer *tok;
    um_tokenizer_specials sp;
    um_chat_format chat;
    char chat_warning[512]; /* a fallback format's warning, printed when first used */
    bool chat_warning_pending;
} cli_text;

/* Loads the tokenizer of the model at path and picks its chat format
 * (template_name overrides; a fallback prints its warning). */
bool cli_text_open(cli_text *t, const char *cmd, const char *model_path, const char *template_name);
void cli_text_close(cli_text *t);

/* Raw text: BOS first when the model wants it; special tokens written in the
 * text (<|mdm_mask|>, ...) become those tokens. */
bool cli_text_prompt_raw(cli_text *t, const char *text, int32_t **ids, int *n);
/* A conversation rendered with the chat format, ending in the assistant's
 * turn. */
bool cli_text_prompt_chat(cli_text *t, const um_chat_message *msgs, int n_msgs, int32_t **ids, int *n);
/* An infill template: "{mask:N}" stands for N mask tokens, "{mask}" for one. */
bool cli_text_prompt_infill(cli_text *t, const char *tmpl, int mask_id, int32_t **ids, int *n);

/* The answer in generated ids: cut at the first EOS or EOT, special tokens
 * left out. malloc'd; NULL after printing an error. */
char *cli_text_answer(cli_text *t, const int32_t *ids, int n);
/* Every id as text, special tokens left out (an infilled canvas). */
char *cli_text_answer_all(cli_text *t, const int32_t *ids, int n);

/* Reads a whole file for -f. */
char *cli_text_read_file(const char *cmd, const char *path);

#endif
