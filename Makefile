# cost-extender - build, run, test, bench.
#
#   make         install what is missing, build bin/cost-extender
#   make run     install what is missing, build, serve on 127.0.0.1:8888
#   make test    install what is missing, lint, build with ASan+UBSan, run every test
#   make lint    clang-tidy (.clang-tidy) and cppcheck; fails on any finding
#   make install PREFIX=/usr/local (DESTDIR=...): the binary, the pricing tables, the docs
#   make bench   build optimised, measure latency and memory (prints figures)
#   make image   container image from deploy/Dockerfile (docker or podman; says so when neither runs)
#   make fuzz    build the libFuzzer targets (clang), run each FUZZ_SECONDS (60), report crashes
#
# Debian packages are installed with apt-get when missing (needs root).

CC       ?= cc
PKGS     := libmicrohttpd yaml-0.1 libcurl gnutls libcjson
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 \
            -Wno-missing-field-initializers -pthread $(CFLAGS_EXTRA)
LDLIBS   += -pthread -lm

BUILD_DEBS := gcc make pkg-config libmicrohttpd-dev libyaml-dev libcurl4-openssl-dev libgnutls28-dev \
              libcjson-dev
LINT_DEBS  := clang-tidy cppcheck
TEST_DEBS  := $(BUILD_DEBS) $(LINT_DEBS) libcmocka-dev python3 python3-pytest \
              python3-yaml openssl wrk
BENCH_DEBS := $(BUILD_DEBS) python3 python3-pytest g++ libsimdjson-dev

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
PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all run test bench load deps test-deps bench-deps unit blackbox clean format lint lint-checks help \
        image image-refresher deploy-pricing pricing-tables install

# The default target, like run, installs the build packages first: on a fresh
# machine `make` works as it stands.
all: deps
	@$(MAKE) --no-print-directory bin/cost-extender

help:
	@sed -n '2,13p' Makefile

# --- dependencies -----------------------------------------------------------
define install_missing
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  flock /tmp/cost-extender-apt.lock sh -c 'apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq '"$$missing"' >/dev/null' || exit 1; \
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

build/asan/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(ASAN_LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -O1 $(SAN) $(PKG_CFLAGS) -Iextender -o $@ $< $(ASAN_LIB) \
	  $(PKG_LIBS) -lcmocka $(LDLIBS) $(TEST_LDFLAGS)

# Unit tests that make allocations fail on purpose (tests/unit/fail_alloc.h).
ALLOC_FAIL_TESTS := build/asan/tests/test_record_queue build/asan/tests/test_cluster_state
$(ALLOC_FAIL_TESTS): TEST_LDFLAGS := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc

# A wall clock the clock-jump tests step (tests/cluster_gang/fakeclock.c).
FAKECLOCK := build/asan/tests/libfakeclock.so
$(FAKECLOCK): tests/cluster_gang/fakeclock.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -O1 -g -Wall -Wextra -fPIC -shared -o $@ $<

# It includes the fuzz targets themselves.
build/asan/tests/test_fuzz_regressions: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

# --- what users run ---------------------------------------------------------
# No --pricing: the binary finds the bundled table next to itself
# (bin/../pricing/tables/), as any copy run from a checkout does.
run: deps
	@$(MAKE) --no-print-directory bin/cost-extender
	exec ./bin/cost-extender --listen 127.0.0.1:8888 $(RUN_ARGS)

# PREFIX/bin/cost-extender finds PREFIX/share/cost-extender/pricing/ by its
# own location, so the installed copy runs from any folder (and from a
# DESTDIR staging tree too).
install: deps
	@$(MAKE) --no-print-directory bin/cost-extender
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/cost-extender/pricing \
	  $(DESTDIR)$(PREFIX)/share/doc/cost-extender/pricing $(DESTDIR)$(PREFIX)/share/doc/cost-extender/deploy
	install -m 755 bin/cost-extender $(DESTDIR)$(PREFIX)/bin/cost-extender
	install -m 644 pricing/tables/*.yaml $(DESTDIR)$(PREFIX)/share/cost-extender/pricing/
	install -m 644 README.md BENCHMARKS.md $(DESTDIR)$(PREFIX)/share/doc/cost-extender/
	install -m 644 pricing/README.md $(DESTDIR)$(PREFIX)/share/doc/cost-extender/pricing/
	install -m 644 deploy/README.md $(DESTDIR)$(PREFIX)/share/doc/cost-extender/deploy/

test: test-deps
	@$(MAKE) --no-print-directory -j$(LINT_JOBS) lint-checks
	@$(MAKE) --no-print-directory build/asan/cost-extender $(UNIT_BIN) bin/cost-extender \
	  $(KUBECTL_OLD) $(PROMTOOL) $(FAKECLOCK)
	@/usr/bin/python3 tests/run_all.py $(UNIT_BIN)

bench: bench-deps
	@$(MAKE) --no-print-directory bin/cost-extender
	@$(MAKE) --no-print-directory build/bench/bench_client build/bench/bench_handlers \
	  build/bench/bench_gang build/bench/bench_cost build/bench/bench_throughput \
	  build/bench/bench_scan build/bench/bench_simdjson
	@/usr/bin/python3 tests/bench/bench.py

# --- upkeep -----------------------------------------------------------------
format:
	clang-format -i $(SRC) $(HDR) $(UNIT_SRC) tests/unit/*.h

# make lint fails on any finding: clang-tidy with the checks of .clang-tidy
# (every finding an error), then cppcheck. make test runs it first. A
# source is checked again only when it, a header or .clang-tidy changed
# (build/lint/ keeps a stamp per source): the static analyser takes about
# two CPU-minutes for the whole tree.
LINT_JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
LINT_STAMP := $(SRC:%.c=build/lint/%.tidy)

lint: test-deps
	@$(MAKE) --no-print-directory -j$(LINT_JOBS) lint-checks

lint-checks: $(LINT_STAMP) build/lint/cppcheck.stamp
	@echo "lint: clang-tidy and cppcheck found nothing"

build/lint/%.tidy: %.c $(HDR) .clang-tidy Makefile
	@mkdir -p $(@D)
	@clang-tidy --quiet $< -- $(CFLAGS) $(PKG_CFLAGS) 2>/dev/null > $@.out; \
	  rc=$$?; if [ $$rc -ne 0 ] || grep -q "warning:\|error:" $@.out; then \
	    cat $@.out; echo "clang-tidy: findings in $< (exit $$rc)" >&2; rm -f $@.out; exit 1; fi; \
	  mv $@.out $@

# varFuncNullUB: log_kv's NULL sentinel is checked by __attribute__((sentinel)),
# and glibc's NULL is a pointer. cJSON.h is included first so that cppcheck
# knows its cJSON_ArrayForEach macro.
build/lint/cppcheck.stamp: $(SRC) $(HDR) Makefile
	@mkdir -p $(@D)
	@cppcheck --quiet --error-exitcode=1 -j$(LINT_JOBS) --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem --suppress=varFuncNullUB -D__GNUC__ \
	  --include=/usr/include/cjson/cJSON.h $(SRC)
	@touch $@

clean:
	rm -rf build bin

# --- benchmark tools ----------------------------------------------------------
LIB_REL_OBJ := $(LIB_SRC:%.c=build/release/%.o)

build/bench/bench_handlers: tests/bench/bench_handlers.c tests/bench/bench_util.h $(LIB_REL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iextender -o $@ $< $(LIB_REL_OBJ) $(PKG_LIBS) $(LDLIBS)

build/bench/bench_gang: tests/bench/bench_gang.c tests/bench/bench_util.h $(LIB_REL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iextender -o $@ $< $(LIB_REL_OBJ) $(PKG_LIBS) $(LDLIBS)

build/bench/bench_cost: tests/bench/bench_cost.c tests/bench/bench_util.h $(LIB_REL_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iextender -o $@ $< $(LIB_REL_OBJ) $(PKG_LIBS) $(LDLIBS)

build/bench/bench_client: tests/bench/bench_client.c tests/bench/bench_util.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<

# jscan's scan rate, and simdjson's on the same body for reference (C++,
# bench only: nothing else is built with it).
SCAN_OBJ := build/release/extender/base/jscan.o build/release/extender/base/fileio.o
build/bench/bench_scan: tests/bench/bench_scan.c tests/bench/bench_util.h $(SCAN_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iextender -o $@ $< $(SCAN_OBJ)

build/bench/bench_simdjson: tests/bench/bench_simdjson.cc
	@mkdir -p $(@D)
	g++ -O2 -std=c++17 -o $@ $< -lsimdjson

# Plain sockets like bench_client: the kube-scheduler call pattern, no libraries.
build/bench/bench_throughput: tests/bench/bench_throughput.c tests/bench/bench_util.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<

# --- fuzzing ------------------------------------------------------------------
# libFuzzer targets (tests/fuzz/fuzz_<name>.c), built with Debian's clang:
# the extender sources (all but main.c) with -fsanitize=fuzzer-no-link plus
# ASan and UBSan into build/fuzz/obj/, each target linked with
# -fsanitize=fuzzer. `make fuzz` runs every target for FUZZ_SECONDS (or the
# ones in FUZZ_TARGETS) over a corpus in build/fuzz/corpus/<name>/ seeded from
# tests/fixtures, pricing/tables and tests/fuzz/seeds, prints executions,
# exec/s, corpus size and crashes per target, and fails when one crashed.
# Not part of `make test`: tests/unit/test_fuzz_regressions.c replays the
# saved crashers (tests/fuzz/regressions/) there instead.
FUZZ_CC      := clang
FUZZ_DEBS    := $(BUILD_DEBS) clang libclang-rt-14-dev python3
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_OBJ     := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_BIN     := $(FUZZ_ALL:%=build/fuzz/fuzz_%)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-missing-field-initializers \
                -pthread $(FUZZ_SAN)

.PHONY: fuzz fuzz-deps fuzz-build

fuzz-deps:
	$(call install_missing,$(FUZZ_DEBS))

fuzz: fuzz-deps
	@$(MAKE) --no-print-directory fuzz-build
	@/usr/bin/python3 tests/fuzz/fuzz.py --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) \
	  $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_BIN)

# Kept between builds (make would delete them as intermediates otherwise).
.SECONDARY: $(FUZZ_OBJ)

# The regression replay test includes the targets' sources.
build/asan/tests/test_fuzz_regressions: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)

build/fuzz/obj/%.o: %.c $(HDR) Makefile
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c -o $@ $<

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -Iextender \
	  -DCE_FUZZ_ROOT='"$(CURDIR)"' -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS) $(LDLIBS)

# --- deploy/ ------------------------------------------------------------------
# kubectl whose built-in kustomize every deploy/ kustomization must render
# with: Debian bookworm's kubernetes-client (kubectl 1.20, kustomize v2.0.3),
# the oldest we support. tests/deploy uses it (and any newer kubectl on PATH).
# Installed with apt-get when no other kubectl is there; when another package
# owns /usr/bin/kubectl (the two would clash on that file), the Debian package
# is fetched with `apt-get download` and unpacked into build/tools/ instead.
KUBECTL_OLD := build/tools/kubectl

$(KUBECTL_OLD):
	@mkdir -p $(@D)
	@if [ "$$(dpkg-query -W -f='$${db:Status-Status}' kubernetes-client 2>/dev/null)" = installed ]; then \
	  ln -sf /usr/bin/kubectl $@; \
	elif [ ! -e /usr/bin/kubectl ] && [ ! -L /usr/bin/kubectl ]; then \
	  $(MAKE) --no-print-directory TEST_DEBS=kubernetes-client test-deps && ln -sf /usr/bin/kubectl $@; \
	else \
	  echo "unpacking Debian's kubernetes-client into $(@D)/ (/usr/bin/kubectl belongs to another package)"; \
	  rm -rf $(@D)/kubernetes-client && mkdir -p $(@D)/kubernetes-client && cd $(@D)/kubernetes-client && \
	  { apt-get download -qq -o APT::Sandbox::User=root kubernetes-client 2>/dev/null || \
	    { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root kubernetes-client; }; } && \
	  dpkg-deb -x kubernetes-client_*.deb root && rm -f kubernetes-client_*.deb && \
	  ln -sf kubernetes-client/root/usr/bin/kubectl ../kubectl; \
	fi
	@$@ version --client --short 2>/dev/null || $@ version --client

# promtool, for tests/monitoring (`promtool check rules`, `promtool test
# rules` on deploy/monitoring), from Debian's prometheus package: fetched with
# `apt-get download` and only promtool unpacked into build/tools/ (a 19 MB
# download, a few seconds), not installed: the package's postinst starts a
# Prometheus server on :9090 (invoke-rc.d prometheus start) and its
# Recommends would add a node exporter on :9100. A promtool already on PATH
# is used as it is.
PROMTOOL := build/tools/promtool

$(PROMTOOL):
	@mkdir -p $(@D)
	@if command -v promtool >/dev/null 2>&1; then \
	  ln -sf "$$(command -v promtool)" $@; \
	else \
	  echo "unpacking promtool from Debian's prometheus package into $(@D)/ (not installed: it would start a Prometheus server)"; \
	  rm -rf $(@D)/prometheus && mkdir -p $(@D)/prometheus && cd $(@D)/prometheus && \
	  { apt-get download -qq -o APT::Sandbox::User=root prometheus 2>/dev/null || \
	    { flock /tmp/cost-extender-apt.lock apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	      apt-get download -qq -o APT::Sandbox::User=root prometheus; }; } && \
	  dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool && \
	  rm -f prometheus_*.deb && ln -sf prometheus/usr/bin/promtool ../promtool; \
	fi
	@$@ --version 2>&1 | head -1

# deploy/shared/pricing.yaml is a copy of the bundled table (kustomize reads
# no file outside its folder); tests/deploy fails when the two differ.
deploy-pricing:
	cp $(DEFAULT_PRICING) deploy/shared/pricing.yaml

# Rebuild every table in pricing/tables from pricing/data (pricing/README.md),
# then the deploy/ copy of the default one.
pricing-tables:
	python3 pricing/tools/pricing.py regenerate
	@$(MAKE) --no-print-directory deploy-pricing

# Container image. Exits 0 with a "skipped" line where no container engine
# runs (a docker client without a daemon counts as none): `make image` is not
# part of `make test`, and a machine without an engine is not an error.
IMAGE            ?= ghcr.io/cost-extender/cost-extender:0.1.0
IMAGE_REFRESHER  ?= ghcr.io/cost-extender/cost-extender-pricing:0.1.0
CONTAINER_ENGINE ?=

# $(1): make target, $(2): extra build flags, $(3): image name.
define build_image
	@engine="$(CONTAINER_ENGINE)"; \
	if [ -z "$$engine" ]; then \
	  for e in docker podman; do \
	    if command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1; then engine=$$e; break; fi; \
	  done; \
	fi; \
	if [ -z "$$engine" ]; then \
	  echo "make $(1): no container engine: skipped (neither 'docker info' nor 'podman info' succeeds here; image $(3) NOT built)"; \
	  exit 0; \
	fi; \
	echo "$$engine build -f deploy/Dockerfile $(2)-t $(3) ."; \
	$$engine build -f deploy/Dockerfile $(2)-t $(3) .
endef

image:
	$(call build_image,image,,$(IMAGE))

# The pricing refresher's image (deploy/pricing-refresher): python3,
# pricing/tools and the binary, from the Dockerfile's pricing-refresher stage.
image-refresher:
	$(call build_image,image-refresher,--target pricing-refresher ,$(IMAGE_REFRESHER))

# --- load and fault test, longer than in make test ------------------------------
LOAD_SECONDS ?= 30
load: test-deps
	@$(MAKE) --no-print-directory bin/cost-extender build/asan/cost-extender
	LOAD_SECONDS=$(LOAD_SECONDS) LOAD_REPORT=build/load-report.jsonl \
	  /usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/load
