# cost-extender - build, run, test, bench.
#
#   make run     install what is missing, build, serve on 127.0.0.1:8888
#   make test    install what is missing, build with ASan+UBSan, run every test
#   make bench   build optimised, measure latency and memory (prints figures)
#
# Debian packages are installed with apt-get when missing (needs root).

CC       ?= cc
PKGS     := libmicrohttpd yaml-0.1 libcurl
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 \
            -Wno-missing-field-initializers -pthread $(CFLAGS_EXTRA)
LDLIBS   += -pthread -lm

BUILD_DEBS := gcc make pkg-config libmicrohttpd-dev libyaml-dev libcurl4-openssl-dev
TEST_DEBS  := $(BUILD_DEBS) libcmocka-dev libcjson-dev python3 python3-pytest
BENCH_DEBS := $(BUILD_DEBS) python3

SRC      := $(shell find extender -name '*.c' | sort)
LIB_SRC  := $(filter-out extender/main.c,$(SRC))
HDR      := $(shell find extender -name '*.h')
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

REL_OBJ  := $(SRC:%.c=build/release/%.o)
ASAN_OBJ := $(SRC:%.c=build/asan/%.o)
ASAN_LIB := $(LIB_SRC:%.c=build/asan/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)

SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

RUN_ARGS ?=
DEFAULT_PRICING := pricing/tables/aws-us-east-1.yaml

.PHONY: all run test bench deps test-deps bench-deps unit blackbox clean format lint help

all: bin/cost-extender

help:
	@sed -n '2,8p' Makefile

# --- dependencies -----------------------------------------------------------
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_DEBS))

test-deps:
	$(call install_missing,$(TEST_DEBS))

bench-deps:
	$(call install_missing,$(BENCH_DEBS))

# --- release build ----------------------------------------------------------
bin/cost-extender: $(REL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

build/release/%.o: %.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

# --- sanitizer build for tests ----------------------------------------------
build/asan/cost-extender: $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

build/asan/%.o: %.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -c -o $@ $<

build/asan/tests/%: tests/unit/%.c tests/unit/test_util.h $(ASAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -Iextender -o $@ $< $(ASAN_LIB) \
	  $(PKG_LIBS) -lcmocka -lcjson $(LDLIBS)

# --- what users run ---------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory bin/cost-extender
	exec ./bin/cost-extender --listen 127.0.0.1:8888 --pricing $(DEFAULT_PRICING) $(RUN_ARGS)

test: test-deps
	@$(MAKE) --no-print-directory build/asan/cost-extender $(UNIT_BIN) bin/cost-extender
	@/usr/bin/python3 tests/run_all.py $(UNIT_BIN)

bench: bench-deps
	@$(MAKE) --no-print-directory bin/cost-extender
	@$(MAKE) --no-print-directory build/bench/bench_client build/bench/bench_handlers
	@/usr/bin/python3 tests/bench/bench.py

# --- upkeep -----------------------------------------------------------------
format:
	clang-format -i $(SRC) $(HDR) $(UNIT_SRC) tests/unit/*.h

lint:
	clang-tidy --quiet $(SRC) -- $(CFLAGS) $(PKG_CFLAGS) 2>/dev/null | grep -E "warning|error" || true
	cppcheck --quiet --enable=warning,performance,portability --inline-suppr \
	  --suppress=missingIncludeSystem -D__GNUC__ $(SRC)

clean:
	rm -rf build bin

# --- benchmark tools ----------------------------------------------------------
LIB_REL_OBJ := $(LIB_SRC:%.c=build/release/%.o)

build/bench/bench_handlers: tests/bench/bench_handlers.c $(LIB_REL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iextender -o $@ $< $(LIB_REL_OBJ) $(PKG_LIBS) $(LDLIBS)

build/bench/bench_client: tests/bench/bench_client.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<
