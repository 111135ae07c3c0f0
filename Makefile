# unmask - build, test, sanitize.
#
#   make              the unmask command, libunmask.a/.so and the example
#   make test         build and run the test suite
#   make test-asan    the same tests under AddressSanitizer + UBSan
#   make fuzz         fuzz the file parsers (clang/libFuzzer) for FUZZ_SECONDS each
#   make deps         install the Debian packages the build and tests need (fuzz-deps: for make fuzz)
#   make test-arm64   cross-compile for arm64 into build/arm64 and run the tests under qemu-aarch64,
#                     once per NEON feature level (deps-arm64 installs the toolchain, qemu and libraries)

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?=
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-format-truncation
BASEFLAGS = -std=c11 -D_DEFAULT_SOURCE -ffp-contract=fast -fPIC -fvisibility=hidden -pthread \
            -Iinclude -Isrc $(WARN) $(OPT) -g $(CFLAGS)
BASE_LDLIBS = -lcjson -lpcre2-8 -lutf8proc -lm -pthread
LDLIBS   = $(BASE_LDLIBS)
# the unmask command's HTTP server (unmask serve)
TOOL_LDLIBS = -lmicrohttpd -ledit

# oneDNN, the optional matmul backend (src/kernels/matmul_onednn.c;
# UNMASK_KERNEL=onednn): built in when its header is installed (`make deps`
# installs it), or never with ONEDNN=0. Debian's libdnnl runs on OpenMP
# (libgomp), whose thread count the backend sets.
ONEDNN  ?= $(shell [ -f /usr/include/oneapi/dnnl/dnnl.h ] && echo 1 || echo 0)
ifeq ($(ONEDNN),1)
BASEFLAGS += -DUM_HAVE_ONEDNN
LDLIBS    += -ldnnl -lgomp
endif

LIB_SRC  = $(wildcard src/base/*.c src/format/*.c src/kernels/*.c src/backend/*.c src/model/*.c src/diffusion/*.c src/tokenizer/*.c src/train/*.c)
TOOL_SRC = $(wildcard tools/*.c)
TEST_SRC = $(wildcard tests/*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_OBJ = $(TOOL_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/obj/%.o)

# Debian packages: compiler, JSON (cJSON), test framework (cmocka), the
# tokenizer's regexes (PCRE2), Unicode normalization (utf8proc), HTTP for
# unmask serve (libmicrohttpd) and its tests (curl), chat's line editing
# (libedit), pkg-config (the install check), the optional oneDNN matmul
# backend (libdnnl-dev), and python3-venv for the openai client's test of the
# server (.ci/run); for `make fuzz` also clang and its libFuzzer runtime.
DEB_PACKAGES = build-essential libcjson-dev libcmocka-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev curl \
               libedit-dev pkg-config libdnnl-dev python3-venv
FUZZ_PACKAGES = clang libclang-rt-14-dev
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

all: $(BUILD)/unmask $(BUILD)/libunmask.a $(BUILD)/libunmask.so $(BUILD)/example-generate

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libunmask.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libunmask.so: $(LIB_OBJ)
	$(CC) $(BASEFLAGS) -shared -o $@ $^ $(LDLIBS)

# unmask serve's page (GET /): tools/serve_page.html as a C string, one
# literal per line ('?' escaped: C11 would read "??x" as a trigraph)
$(BUILD)/gen/serve_page.c: tools/serve_page.html
	@mkdir -p $(dir $@)
	{ echo '/* generated from tools/serve_page.html by the Makefile */'; echo 'const char serve_page_html[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@

$(BUILD)/gen/serve_page.o: $(BUILD)/gen/serve_page.c
	$(CC) $(BASEFLAGS) -c $< -o $@

$(BUILD)/unmask: $(TOOL_OBJ) $(BUILD)/gen/serve_page.o $(BUILD)/libunmask.a
	$(CC) $(BASEFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/gen/serve_page.o $(BUILD)/libunmask.a $(LDLIBS) $(TOOL_LDLIBS)

# The example uses only the public header and links the shared library
# (with CFLAGS, so that a sanitized library gets a sanitized program).
$(BUILD)/example-generate: examples/generate.c $(BUILD)/libunmask.so
	$(CC) -std=c11 -Iinclude $(WARN) -O2 $(CFLAGS) -o $@ $< -L$(BUILD) -lunmask -Wl,-rpath,'$$ORIGIN'

# Extra flags for the test objects only (the arm64 build's compiler needs one).
TEST_CFLAGS ?=
$(BUILD)/obj/tests/%.o: BASEFLAGS += $(TEST_CFLAGS)

$(BUILD)/unmask-tests: $(TEST_OBJ) $(BUILD)/libunmask.a
	$(CC) $(BASEFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libunmask.a -lcmocka -lutil $(LDLIBS)

test: $(BUILD)/unmask-tests $(BUILD)/unmask $(BUILD)/example-generate
	UNMASK_BIN=$(BUILD)/unmask UNMASK_EXAMPLE=$(BUILD)/example-generate $(BUILD)/unmask-tests
	UNMASK_BIN=$(BUILD)/unmask UNMASK_EXAMPLE=$(BUILD)/example-generate bash tests/readme_examples.sh
	BUILD=$(BUILD) CC="$(CC)" CFLAGS="$(CFLAGS)" bash tests/install_check.sh

# make install PREFIX=/usr/local (DESTDIR for packaging): the program, both
# libraries, the header, unmask.pc for pkg-config, unmask(1) made from the
# program's --help, and bash completion; make uninstall removes them.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_FILES = bin/unmask lib/libunmask.a lib/libunmask.so include/unmask.h lib/pkgconfig/unmask.pc \
                share/man/man1/unmask.1 share/bash-completion/completions/unmask
install: $(BUILD)/unmask $(BUILD)/libunmask.a $(BUILD)/libunmask.so
	@d=$(DESTDIR)$(PREFIX); mkdir -p $$d/bin $$d/lib/pkgconfig $$d/include $$d/share/man/man1 \
	    $$d/share/bash-completion/completions && \
	install -m 755 $(BUILD)/unmask $$d/bin/unmask && \
	install -m 644 $(BUILD)/libunmask.a $$d/lib/libunmask.a && \
	install -m 755 $(BUILD)/libunmask.so $$d/lib/libunmask.so && \
	install -m 644 include/unmask.h $$d/include/unmask.h && \
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: unmask\nDescription: %s\nVersion: %s\nLibs: -L$${libdir} -lunmask\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	    "$(PREFIX)" "inference for masked diffusion language models" \
	    "$$(sed -n 's/^#define UNMASK_VERSION "\(.*\)"/\1/p' include/unmask.h)" "$(LDLIBS)" > $$d/lib/pkgconfig/unmask.pc && \
	bash tools/install/man.sh $(BUILD)/unmask > $$d/share/man/man1/unmask.1 && \
	install -m 644 tools/install/unmask.bash $$d/share/bash-completion/completions/unmask && \
	echo "installed unmask $$($(BUILD)/unmask --version | cut -d' ' -f2) under $$d"

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/,$(INSTALL_FILES))

# The libraries a program linking build/libunmask.a needs (bench/*.sh).
print-ldlibs:
	@echo $(LDLIBS)

SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-asan:
	$(MAKE) BUILD=build/asan OPT="-O1" CFLAGS="$(SAN) -DUM_NO_CLONES" test

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = safetensors config gguf tokenizer serve
FUZZ_FLAGS = -std=c11 -D_DEFAULT_SOURCE -Iinclude -Isrc -g -O1 -DUM_NO_CLONES \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# Each fuzzer grows a working corpus under build/ from the seeds in
# fuzz/corpus/NAME and runs FUZZ_SECONDS; crashes land in build/fuzz as
# crash-*: keep each as fuzz/regressions/st-NAME.bin or config-NAME.json, which
# tests/test_bad_input.c replays, gguf-NAME.bin, which tests/test_gguf.c replays,
# or tok-NAME.bin, which tests/test_tokenizer.c replays through fuzz_tokenizer.c.
# fuzz-serve runs unmask serve's endpoints on request bodies (fuzz/fuzz_serve.c).
fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(BUILD)/fuzz/corpus-$$t && \
	    echo "fuzzing $$t for $(FUZZ_SECONDS) s" && \
	    $(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -print_final_stats=1 \
	        -dict=fuzz/$$t.dict -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-$$t fuzz/corpus/$$t || exit 1; \
	done

$(BUILD)/fuzz/fuzz-%: fuzz/fuzz_%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(BASE_LDLIBS)

# unmask serve's request bodies: the endpoints and the scheduler, below HTTP
SERVE_FUZZ_SRC = tools/serve_api.c tools/serve_stream.c tools/serve_sched.c tools/cli.c tools/text.c
$(BUILD)/fuzz/fuzz-serve: fuzz/fuzz_serve.c $(LIB_SRC) $(SERVE_FUZZ_SRC) tools/serve.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -Itools -o $@ $< $(SERVE_FUZZ_SRC) $(LIB_SRC) $(BASE_LDLIBS)

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_PACKAGES)"

fuzz-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(FUZZ_PACKAGES)"

install-packages:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# ---- arm64 ----------------------------------------------------------------------
# test-arm64 cross-compiles the library, the command, the example and the tests
# into build/arm64 with Debian's aarch64 toolchain against the arm64 builds of
# the libraries (multiarch), without oneDNN, and runs the tests under
# qemu-aarch64 with a CPU model that has every feature (-cpu max: asimddot,
# i8mm, bf16), once per NEON feature level, forced with UNMASK_CPU. The
# tests start build/arm64/unmask and the example behind UNMASK_EXEC_WRAPPER
# (tests/testutil.h): binfmt_misc need not know arm64 programs. The programs
# run on the multiarch loader and libc (libc6:arm64, which the libraries pull
# in), not with -L /usr/aarch64-linux-gnu: the cross toolchain's loader there
# is another build of glibc than the multiarch libc.so.6 it would load, and
# pthread_create loops forever on their mismatched private structures.
# Emulation is slow (qemu's floating point is software): the whole suite took
# over 35 minutes as neon-bf16 on a shared 2-core machine, decode (11 min),
# sampling (5), eval (4) and convert (2) the longest. So neon-bf16 (every
# feature: every NEON kernel dispatched) runs ARM64_FULL_GROUPS, the groups
# that run the kernels, the model, the decoders' reference trajectories and
# the programs (about 4 minutes; the terminal tests, text_cli, are the same on
# every CPU and stay out), and the other levels, scalar included, run
# ARM64_CLASS_GROUPS: kernels (each kernel set the level has against the
# reference) and forward (the model on the level's kernels), 6-8 s each:
# 3.5 minutes in all, build included. ARM64_FULL_GROUPS=all runs every group.
# GCC 12.2's aarch64 vectorizer dies (internal compiler error) on two fmax
# reductions in one loop, which some tests have: tests only, no loop vectorizer.
ARM64_BUILD = build/arm64
ARM64_CC = aarch64-linux-gnu-gcc
QEMU_ARM64 = qemu-aarch64 -cpu max
ARM64_FULL = neon-bf16
ARM64_CLASSES = scalar neon neon-dot neon-i8mm
ARM64_FULL_GROUPS = formats forward generate bad_input cli quant kernels gguf gguf_model tokenizer bpe_train \
                    train backend dream arch llada2
ARM64_CLASS_GROUPS = kernels forward backend
ARM64_PACKAGES = gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
                 libcjson-dev:arm64 libcmocka-dev:arm64 libpcre2-dev:arm64 libutf8proc-dev:arm64 \
                 libmicrohttpd-dev:arm64 libedit-dev:arm64

build-arm64:
	$(MAKE) BUILD=$(ARM64_BUILD) CC=$(ARM64_CC) ONEDNN=0 TEST_CFLAGS=-fno-tree-loop-vectorize \
	    $(ARM64_BUILD)/unmask $(ARM64_BUILD)/unmask-tests $(ARM64_BUILD)/example-generate

test-arm64: build-arm64
	@for c in $(ARM64_CLASSES) $(ARM64_FULL); do \
	    case " $(ARM64_FULL) " in *" $$c "*) groups="$(ARM64_FULL_GROUPS)";; *) groups="$(ARM64_CLASS_GROUPS)";; esac; \
	    echo "== arm64, UNMASK_CPU=$$c: $$groups"; \
	    t0=$$(date +%s); \
	    for g in $$groups; do \
	        [ "$$g" = all ] && g=; \
	        UNMASK_CPU=$$c UNMASK_EXEC_WRAPPER="$(QEMU_ARM64)" UNMASK_BIN=$(ARM64_BUILD)/unmask \
	            UNMASK_EXAMPLE=$(ARM64_BUILD)/example-generate $(QEMU_ARM64) $(ARM64_BUILD)/unmask-tests $$g || exit 1; \
	    done; \
	    echo "== arm64, UNMASK_CPU=$$c: $$(( $$(date +%s) - t0 )) s"; \
	done

deps-arm64:
	@dpkg --print-foreign-architectures | grep -qx arm64 || $(SUDO) dpkg --add-architecture arm64
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(ARM64_PACKAGES)"

clean:
	rm -rf build

.PHONY: all test test-asan fuzz deps fuzz-deps install-packages print-ldlibs clean build-arm64 test-arm64 deps-arm64 \
        install uninstall
-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
