# provd — top-level build. One static library per folder, thin programs on top.
#
#   make deps     install every Debian package the build, tests and demo need
#   make          build provd, provctl (and the libraries) into build/
#   make check    deps, build (plain and ASan+UBSan), then every test suite
#   make demo     deps, build, private PostgreSQL + slapd, provd, sample devices
#   make bench    benchmarks in tests/bench/ (prints "bench: NAME VALUE UNIT")
#   make install  PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build
CC       ?= gcc
SAN      ?=

# gnutls: provd reads client certificates from libmicrohttpd's GnuTLS session
PKGS     := openssl libpq libmicrohttpd gnutls jansson inih ldap lber libcurl libsystemd
override CPPFLAGS += -D_GNU_SOURCE -I. -I$(BUILD)/gen
CFLAGS   ?= -O2 -g
override CFLAGS += -std=c17 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla \
            -fno-strict-aliasing -fstack-protector-strong -pthread \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread
ifneq ($(SAN),)
override CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
endif

# Libraries, in link order (a library may use those after it).
LIBDIRS  := $(foreach d,server device provision ldap db ca common,$(if $(wildcard $(d)/*.c),$(d)))
LIBS     := $(foreach d,$(LIBDIRS),$(BUILD)/lib/lib$(d).a)

lib_srcs = $(filter-out $(1)/main_%.c,$(wildcard $(1)/*.c))
lib_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(call lib_srcs,$(1)))

PROGS    := $(BUILD)/bin/provd $(BUILD)/bin/provctl $(BUILD)/bin/devagent
GEN      := $(BUILD)/gen/migrations.c

UNIT_SRCS  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRCS))
TOOL_SRCS  := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRCS))

.PHONY: all deps check check-build demo bench install clean fuzz
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/migrations.c: $(sort $(wildcard sql/*.sql)) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-sql.sh $(sort $(wildcard sql/*.sql)) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/migrations.o: $(BUILD)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

define LIB_RULE
$(BUILD)/lib/lib$(1).a: $(call lib_objs,$(1)) $(if $(filter db,$(1)),$(BUILD)/obj/gen/migrations.o)
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach d,$(LIBDIRS),$(eval $(call LIB_RULE,$(d))))

$(BUILD)/bin/%: $(BUILD)/obj/server/main_%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/bin/devagent: $(BUILD)/obj/device/main_devagent.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# The swtpm TCTI is linked into the tests (tctildr would dlopen it anyway) so
# that it stays loaded and tests/lsan.supp can name a leak inside it.
comma := ,
TEST_LDLIBS := $(shell pkg-config --libs cmocka) \
	$(if $(wildcard /usr/lib/*/libtss2-tcti-swtpm.so.0),-Wl$(comma)--no-as-needed -l:libtss2-tcti-swtpm.so.0 -Wl$(comma)--as-needed)

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -MF $@.d -o $@ $< $(LIBS) $(LDLIBS) $(TEST_LDLIBS)

# Helper programs the integration tests run (misbehaving peers and such).
$(BUILD)/tests/tools/%: tests/tools/%.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -MMD -MP -MF $@.d -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/tests/bench/%: tests/bench/%.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)

# Everything the tests need from this build variant.
check-build: $(PROGS) $(UNIT_BINS) $(BENCH_BINS) $(TOOL_BINS)

# Fuzz targets need clang's libFuzzer; built separately into build-fuzz/.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_LIBS := $(foreach d,$(filter-out server,$(LIBDIRS)),build-fuzz/lib/lib$(d).a)
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang SAN= \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	    LDFLAGS="-fsanitize=address,undefined" $(FUZZ_LIBS)
	@mkdir -p build-fuzz/bin
	for f in $(FUZZ_SRCS); do \
	    n=$$(basename $$f .c); \
	    clang -D_GNU_SOURCE -I. -O1 -g -fsanitize=fuzzer,address,undefined -o build-fuzz/bin/$$n $$f \
	        $(FUZZ_LIBS) $$(pkg-config --libs $(PKGS)) -pthread || exit 1; \
	done

deps:
	sh scripts/deps.sh

check: deps
	$(MAKE) check-build
	$(MAKE) BUILD=build-asan SAN=1 check-build
	$(MAKE) fuzz
	sh tests/run-all.sh

demo: deps all
	sh scripts/demo.sh

bench: deps
	$(MAKE) check-build
	sh tests/bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/provd $(DESTDIR)$(PREFIX)/share/doc/provd
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 etc/provd.conf $(DESTDIR)$(PREFIX)/share/provd/provd.conf.sample
	install -m 0644 docs/*.md docs/*.yaml $(DESTDIR)$(PREFIX)/share/doc/provd/

clean:
	rm -rf build build-asan build-fuzz
