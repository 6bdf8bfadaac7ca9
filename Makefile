# airlock - GNU Makefile.  `make` builds ./airlock; `make run` and `make test`
# install what is missing first (scripts/deps.sh).
#   make SANITIZER=address,undefined   build into build/san/ with clang sanitizers
#   make fuzz                          libFuzzer targets into build/fuzz/
#   make bench                         benchmark against nginx and direct calls

PKGS     := libuv libcurl yajl libfyaml libcrypto sqlite3 libhs
CC       ?= cc
OPT      ?= -O2 -g
CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wno-unused-parameter
ifneq ($(CI),)
WARN     += -Werror
endif
ifneq ($(WERROR),)
WARN     += -Werror
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm

ifneq ($(SANITIZER),)
CC       := clang
BUILD    := build/san
OPT      := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
else
BUILD    := build/rel
SANFLAGS :=
endif

CFLAGS_ALL  = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -Isrc $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

SRCS     := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
DEPS     := $(SRCS:%.c=$(BUILD)/%.d)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 30

.PHONY: all airlock deps run test unit unit-bins client sanitize fuzz fuzz-smoke bench clean check-src

all: airlock

airlock: $(BUILD)/airlock
ifeq ($(SANITIZER),)
	@ln -sf $(BUILD)/airlock airlock
endif

$(BUILD)/airlock: $(LIB_OBJS) $(MAIN_OBJ)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDFLAGS_ALL) $(PKG_LIBS) -lcmocka

-include $(DEPS)

deps:
	@bash scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory airlock
	@bash scripts/run.sh

# Every test: source rules, unit, client, the sanitizer run, fuzz smoke.
test: deps
	@bash scripts/test.sh

unit-bins: $(UNIT_BINS)

unit: $(UNIT_BINS)
	@bash scripts/unit.sh $(BUILD)

sanitize:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined airlock unit

# libFuzzer targets: clang, ASan + UBSan, linked with the library objects
# built for fuzzing.
FUZZ_CFLAGS := $(CSTD) -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all -DAL_FUZZING $(WARN) -Isrc $(PKG_CFLAGS)
FUZZ_OBJS := $(LIB_SRCS:%.c=build/fuzzobj/%.o)
build/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS:-fsanitize=fuzzer,%=-fsanitize=fuzzer-no-link,%) -MMD -MP -c -o $@ $<
build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJS) $(PKG_LIBS)
-include $(FUZZ_OBJS:%.o=%.d)

fuzz: $(FUZZ_BINS)

fuzz-smoke: fuzz
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

bench: deps
	@$(MAKE) --no-print-directory airlock
	@bash bench/run.sh

check-src:
	@bash scripts/checksrc.sh

clean:
	rm -rf build airlock
