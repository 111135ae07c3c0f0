/* Byte-level BPE tokenizers (GPT-2 style, as LLaDA, LLaDA-MoE, LLaDA2 and
 * Dream/Qwen use) and the chat templates of those model families.
 *
 * A tokenizer loads from any of the places a model carries one:
 *
 *   - a Hugging Face tokenizer.json (model type "BPE" with a ByteLevel
 *     pre-tokenizer or decoder), with tokenizer_config.json beside it for the
 *     chat template and the bos/eos/pad/mask tokens (optional);
 *   - Hugging Face's vocab.json + merges.txt (the "slow" GPT-2/Qwen2
 *     tokenizers; Dream's repository ships only these), with the added tokens
 *     from tokenizer_config.json's added_tokens_decoder and the split from its
 *     tokenizer_class: Qwen2's regex (and NFC) for Qwen2Tokenizer and
 *     DreamTokenizer, GPT-2's for GPT2Tokenizer or no class;
 *   - a GGUF file's tokenizer.ggml.* metadata as llama.cpp writes it
 *     (tokenizer.ggml.model "gpt2"); tokenizer.ggml.pre names the split
 *     regexes exactly as llama.cpp's llama-vocab.cpp does. A vocabulary-only
 *     GGUF (no tensors) is enough.
 *
 * Both give the same ids for the same tokenizer. Encoding is:
 *
 *   1. added tokens first: the text is cut at every occurrence of an added
 *      token (leftmost, longest first). Special ones (tokenizer.json
 *      "special": true, GGUF CONTROL) are matched only when parse_special is
 *      set; the others (tokenizer.json "special": false, GGUF USER_DEFINED)
 *      always. The ids of matched tokens are emitted as they are.
 *   2. each piece between them is normalized (tokenizer.json "NFC", when the
 *      file has it), split by the pre-tokenizer's regexes (PCRE2, UTF and
 *      Unicode properties), mapped byte by byte to GPT-2's printable
 *      characters, and merged by rank.
 *
 * Invalid UTF-8 is not an error: the split regexes never match invalid bytes,
 * so each run of them becomes a word of its own and encodes through the byte
 * tokens (NFC leaves a piece holding invalid UTF-8 as it is). Decoding returns
 * the exact bytes the tokens stand for, so decode(encode(s)) == s for every
 * byte string s, valid UTF-8 or not; a caller printing a partial sequence
 * may see an incomplete UTF-8 character at its end.
 *
 * One tokenizer may be used from several threads: encode serialises on an
 * internal lock (it owns a word -> ids cache); everything else is read-only.
 */
#ifndef UM_TOKENIZER_TOKENIZER_H
#define UM_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "format/gguf.h"

/* um_tokenizer, um_tokenizer_load/free/encode/decode and um_chat_prompt are
 * also public (include/unmask.h). */

/* ---- loading ---- */

/* Loads the tokenizer of a model from the path a user gives for the model:
 *   - a directory: DIR/tokenizer.json, with DIR/tokenizer_config.json and
 *     DIR/chat_template.jinja when present; without tokenizer.json,
 *     DIR/vocab.json + DIR/merges.txt (tokenizer.json wins when both are
 *     there); a directory with neither is UM_ERR_IO naming it;
 *   - a file ending in .gguf or starting with the GGUF magic: its
 *     tokenizer.ggml.* metadata (UM_ERR_FORMAT when it has none);
 *   - a file named vocab.json: as um_tokenizer_load_vocab with the others
 *     beside it;
 *   - any other file: a tokenizer.json, with tokenizer_config.json and
 *     chat_template.jinja looked for beside it.
 * Errors name the file and, for content, the key at fault. */
um_status um_tokenizer_load(const char *path, um_tokenizer **out, um_error *err);

/* tokenizer.json at json_path; config_path names tokenizer_config.json, or is
 * NULL to look for one beside json_path (missing is fine). */
um_status um_tokenizer_load_json(const char *json_path, const char *config_path, um_tokenizer **out, um_error *err);

/* vocab.json at vocab_path; merges_path and config_path name merges.txt
 * and tokenizer_config.json, or are NULL for the ones beside vocab_path
 * (merges.txt must exist; a missing tokenizer_config.json means GPT-2's split
 * and no added tokens). Every malformed entry is an error naming the file,
 * and for merges.txt the line: ids that are not whole numbers in [0, 2^26)
 * or that two tokens share, merge lines that are not two tokens or name a
 * token the vocabulary lacks, an unknown tokenizer_class. */
um_status um_tokenizer_load_vocab(const char *vocab_path, const char *merges_path, const char *config_path,
                                  um_tokenizer **out, um_error *err);

/* From a parsed GGUF file; nothing is kept pointing into f, so it may be
 * closed afterwards. A tokenizer.ggml.model other than "gpt2" is
 * UM_ERR_UNSUPPORTED; an unknown tokenizer.ggml.pre falls back to llama.cpp's
 * "default" regexes with a warning (um_tokenizer_warning), as llama.cpp does. */
um_status um_tokenizer_load_gguf(const um_gguf_file *f, um_tokenizer **out, um_error *err);

void um_tokenizer_free(um_tokenizer *t);

/* ---- encoding and decoding ---- */

/* Encodes len bytes of text (no NUL needed; may contain NULs) into a new
 * malloc'd array *ids of *n_ids ids (free() it; NULL when empty). No BOS is
 * added: see um_tokenizer_specials.add_bos. */
um_status um_tokenizer_encode(um_tokenizer *t, const char *text, size_t len, bool parse_special, int32_t **ids,
                              size_t *n_ids, um_error *err);

/* Decodes ids into a new malloc'd, NUL-terminated *text of *len bytes (free()
 * it). Special tokens (control tokens) are left out when skip_special, else
 * written as their text; added non-special tokens are always written. Ids
 * outside [0, n_vocab) are UM_ERR_ARG naming the id and its position. */
um_status um_tokenizer_decode(const um_tokenizer *t, const int32_t *ids, size_t n_ids, bool skip_special,
                              char **text, size_t *len, um_error *err);

/* ---- the vocabulary ---- */

/* Valid ids are [0, n_vocab). Ids no token uses (holes in tokenizer.json, a
 * GGUF's UNUSED "[PADn]" entries) decode to nothing. A model's output head
 * can have more rows than its tokenizer.json has ids (LLaDA-8B's head has
 * 126464; llama.cpp's converter pads the GGUF vocabulary to the head's
 * size), so a caller decoding generated ids must expect decode to reject
 * ids at or past n_vocab, or filter them first. */
int32_t um_tokenizer_n_vocab(const um_tokenizer *t);

/* The token's text as the vocabulary spells it, NUL-terminated ("Ġthe",
 * "<|eot_id|>"); "" for an unused id; NULL outside [0, n_vocab). Lives as
 * long as t. What `unmask tokenize` shows as the piece. */
const char *um_tokenizer_token_text(const um_tokenizer *t, int32_t id);

/* The bytes decode writes for the token (" the", "<|eot_id|>"): *len bytes,
 * NUL-terminated for convenience (a token may contain NUL bytes itself); NULL
 * outside [0, n_vocab). */
const char *um_tokenizer_token_bytes(const um_tokenizer *t, int32_t id, size_t *len);

/* The id of the token spelled text (vocabulary spelling, as token_text
 * returns it), or -1. */
int32_t um_tokenizer_token_id(const um_tokenizer *t, const char *text, size_t len);

/* true for special (control) tokens: tokenizer.json added tokens with
 * "special": true, GGUF token_type CONTROL. */
bool um_tokenizer_is_special(const um_tokenizer *t, int32_t id);

typedef struct {
    int32_t bos, eos, eot, mask, pad; /* -1 when the tokenizer has none */
    bool add_bos; /* the model wants bos before a raw prompt (GGUF add_bos_token,
                     tokenizer_config.json add_bos_token); chat renderings
                     already hold it and need no other */
} um_tokenizer_specials;

/* Special ids: from tokenizer_config.json (bos_token, eos_token, pad_token,
 * mask_token) or the GGUF keys (tokenizer.ggml.{bos,eos,eot,mask,padding}_token_id).
 * eot and mask, when not given, are the special tokens spelled <|eot_id|>,
 * <|im_end|>, <|role_end|>, <|end|>, <end_of_turn> (eot) and <|mdm_mask|>,
 * <|mask|> (mask), if present. */
void um_tokenizer_get_specials(const um_tokenizer *t, um_tokenizer_specials *s);

/* ---- what was loaded ---- */

/* Where the tokenizer came from: "tokenizer.json", "vocab.json" or "gguf". */
const char *um_tokenizer_source(const um_tokenizer *t);
/* The pre-tokenizer: the GGUF pre name as resolved ("gpt-2", "llama-bpe",
 * "default", ...), for vocab.json "gpt-2" or "qwen2", or for tokenizer.json a
 * short description ("ByteLevel", "Sequence[Split,ByteLevel]", with Qwen2's
 * regex "Sequence[Split(qwen2),ByteLevel]"). */
const char *um_tokenizer_pre_name(const um_tokenizer *t);
/* The model's chat template (jinja source) or NULL. */
const char *um_tokenizer_chat_template(const um_tokenizer *t);
/* A warning from loading (an unknown GGUF pre name), or NULL. */
const char *um_tokenizer_warning(const um_tokenizer *t);

/* ---- chat templates ---- */

/* The chat formats unmask renders itself (there is no jinja engine):
 *
 *   llada      LLaDA-8B/LLaDA-1.5 (Llama-3 style): BOS, then per message
 *              <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
 *              with CONTENT trimmed of surrounding whitespace as the jinja's
 *              `| trim` does; the generation prompt is the assistant header.
 *   ling       LLaDA-MoE and LLaDA2.x (Ling-2.0 style, names "llada-moe",
 *              "llada2"): <role>SYSTEM</role>[SYSTEM\n]detailed thinking
 *              off<|role_end|>, then <role>HUMAN|ASSISTANT|SYSTEM</role>
 *              CONTENT<|role_end|> per message; the generation prompt is
 *              <role>ASSISTANT</role>.
 *   chatml     Dream (Qwen2 style): <|im_start|>ROLE\nCONTENT<|im_end|>\n per
 *              message, preceded by a default system turn when the first
 *              message is not a system one; the generation prompt is
 *              <|im_start|>assistant\n.
 */
typedef enum { UM_CHAT_LLADA = 0, UM_CHAT_LING = 1, UM_CHAT_CHATML = 2, UM_CHAT_LLADA_MOE = 3 } um_chat_family;

/* um_chat_message: include/unmask.h (public). */

/* A chosen format. Strings belong to the tokenizer it was selected for (or
 * are static). */
typedef struct {
    um_chat_family family;
    const char *name;           /* "llada", "llada2", "chatml", ... as selected */
    const char *bos;            /* llada: written before the first message */
    const char *default_system; /* chatml: the system turn used when the conversation has
                                   none (Dream: "You are a helpful assistant."); NULL: none */
} um_chat_format;

/* The names --chat-template accepts, comma separated (for help texts). */
#define UM_CHAT_TEMPLATE_NAMES "llada, llada-moe, llada2, chatml (alias dream)"

/* Recognises a jinja chat template by distinctive substrings:
 *   <|start_header_id|> and <|end_header_id|>        -> llada
 *   <role> and <|role_end|> (and HUMAN or ASSISTANT) -> ling
 *   <|im_start|>                                     -> chatml
 * Returns false when none matches. */
bool um_chat_detect(const char *jinja, um_chat_family *family);

/* Chooses the format for t (t may be NULL: no model template):
 *   - override_name (NULL or "" for none) wins: one of UM_CHAT_TEMPLATE_NAMES,
 *     else UM_ERR_ARG listing them;
 *   - else the model's chat template when um_chat_detect recognises it (a
 *     chatml template's own default system prompt, if it writes one, is used);
 *   - else the documented fallback, with a one-line warning written to
 *     warning (if not NULL; "" when there is none): the family whose marker
 *     tokens the vocabulary has (<|im_start|> -> chatml, <|role_end|> -> ling,
 *     <|start_header_id|> -> llada), and llada when it has none of them. */
um_status um_chat_select(const um_tokenizer *t, const char *override_name, um_chat_format *fmt, char *warning,
                         size_t warning_size, um_error *err);

/* Renders n messages (and the generation prompt when add_generation_prompt)
 * into a new malloc'd NUL-terminated *out of *len bytes; encode it with
 * parse_special set. */
um_status um_chat_render(const um_chat_format *fmt, const um_chat_message *msgs, size_t n,
                         bool add_generation_prompt, char **out, size_t *len, um_error *err);

#endif
