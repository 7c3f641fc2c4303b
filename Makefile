# tinymta: build, run and test.
CARGO ?= cargo
CONFIG ?= etc/tinymta.conf
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: build run test lint release install clean static size dist test-qemu test-smoke fuzz stress bench

build:
	$(CARGO) build

# tinymta in the foreground with the example config: 127.0.0.1:2525, ./var/.
run: build
	mkdir -p var
	./target/debug/tinymta -c $(CONFIG)

# What CI runs: the test peers this machine lacks (tests/peers/install says
# what it installs), formatting, lints, every unit and integration test, then
# the integration tests again against the aarch64 musl binary under qemu.
test:
	tests/peers/install
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test
	$(MAKE) test-qemu

release:
	$(CARGO) build --release
	@ls -l target/release/tinymta

install: release
	install -D -m 0755 target/release/tinymta $(DESTDIR)$(PREFIX)/sbin/tinymta
	install -D -m 0644 etc/tinymta.conf $(DESTDIR)/etc/tinymta.conf.example

clean:
	$(CARGO) clean
	rm -rf var

# Cross builds without a container engine: rustup's target and Debian's
# cross gcc (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf, musl-tools).
# The musl targets give one static binary. `cross` (cross/Cross.toml) builds
# the same targets in containers where an engine runs.
TARGET ?= x86_64-unknown-linux-musl
STATIC_TARGETS = x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf
CC_x86_64-unknown-linux-musl = musl-gcc
CC_aarch64-unknown-linux-musl = aarch64-linux-gnu-gcc
CC_armv7-unknown-linux-gnueabihf = arm-linux-gnueabihf-gcc
CC_armv7-unknown-linux-musleabihf = arm-linux-gnueabihf-gcc
CC_arm-unknown-linux-musleabihf = arm-linux-gnueabihf-gcc
# The linker for the cross targets; x86_64 musl links with rustc's own
# self-contained musl (musl-gcc as the linker would make a dynamic PIE).
LD_aarch64-unknown-linux-musl = aarch64-linux-gnu-gcc
LD_armv7-unknown-linux-gnueabihf = arm-linux-gnueabihf-gcc
LD_armv7-unknown-linux-musleabihf = arm-linux-gnueabihf-gcc
LD_arm-unknown-linux-musleabihf = arm-linux-gnueabihf-gcc
target_env = $(shell echo $(1) | tr 'a-z-' 'A-Z_')
target_cc = $(CC_$(1))
target_ld = $(if $(LD_$(1)),CARGO_TARGET_$(call target_env,$(1))_LINKER=$(LD_$(1)))

static:
	@test -n "$(call target_cc,$(TARGET))" || { echo "no cross compiler known for $(TARGET)"; exit 1; }
	rustup target add $(TARGET) >/dev/null
	$(call target_ld,$(TARGET)) CC_$(subst -,_,$(TARGET))=$(call target_cc,$(TARGET)) \
	$(CARGO) build --release --target $(TARGET)
	@ls -l target/$(TARGET)/release/tinymta

# Stripped size of the release binary for each target; then what the HTTP
# client costs: the code that stayed src/http.rs's own after LTO inlined
# the rest into its callers, from the symbols of an unstripped x86_64 musl
# build (its TLS and DNS are delivery's, there anyway).
SYMBOLS_DIR = target/symbols
size:
	@for t in $(STATIC_TARGETS); do $(MAKE) -s static TARGET=$$t >/dev/null 2>&1 || echo "$$t: build failed"; done
	@printf '%-34s %10s  %s\n' target bytes linkage
	@for t in $(STATIC_TARGETS); do f=target/$$t/release/tinymta; \
	  if [ -f $$f ]; then printf '%-34s %10s  %s\n' $$t $$(stat -c %s $$f) \
	  "$$(file -b $$f | grep -o 'static-pie linked\|statically linked\|dynamically linked')"; fi; done
	@CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$(SYMBOLS_DIR) \
	  CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build -q --release \
	  --target x86_64-unknown-linux-musl >/dev/null 2>&1 || echo "symbols build failed"
	@f=$(SYMBOLS_DIR)/x86_64-unknown-linux-musl/release/tinymta; if [ -f $$f ]; then \
	  printf '%-34s %10s  %s\n' "  of which the HTTP client" $$(nm -C --size-sort --radix=d $$f \
	  | awk '/[ <]tinymta::http::/ { sum += $$1 } END { print sum + 0 }') \
	  "x86_64 musl: src/http.rs's own functions"; fi

# Release archives in target/dist/: one per static (musl) target of
# STATIC_TARGETS, a target added there is archived too (cross/dist/archive
# says what an archive holds), and SHA256SUMS of the archives.
DIST_TARGETS = $(filter %-musl %-musleabi %-musleabihf,$(STATIC_TARGETS))
DIST_DIR = target/dist
dist:
	rm -rf $(DIST_DIR)
	@for t in $(DIST_TARGETS); do \
	  $(MAKE) static TARGET=$$t && cross/dist/archive $$t target/$$t/release/tinymta $(DIST_DIR) || exit 1; \
	done
	cd $(DIST_DIR) && sha256sum *.tar.gz > SHA256SUMS
	@cat $(DIST_DIR)/SHA256SUMS

# The whole integration suite against the aarch64 musl binary, run by
# qemu-aarch64-static (no binfmt needed: the tests start it through the runner).
test-qemu:
	$(MAKE) static TARGET=aarch64-unknown-linux-musl
	TINYMTA_BIN=$(CURDIR)/target/aarch64-unknown-linux-musl/release/tinymta \
	TINYMTA_RUNNER=qemu-aarch64-static $(CARGO) test --test '*'

# The smoke run (tests/smoke.rs: daemon, SMTP, sendmail, Maildir, smarthost
# with STARTTLS and AUTH, mailq, SIGTERM) against TARGET's static binary,
# run by that target's qemu-user (QEMU_<target>; empty: run natively).
QEMU_aarch64-unknown-linux-musl = qemu-aarch64-static
QEMU_armv7-unknown-linux-musleabihf = qemu-arm-static
QEMU_mipsel-unknown-linux-musl = qemu-mipsel-static
QEMU_mips-unknown-linux-musl = qemu-mips-static
QEMU_x86_64-unknown-linux-musl =
test-smoke:
	@test "$(origin QEMU_$(TARGET))" != undefined || { echo "no qemu-user runner known for $(TARGET)"; exit 1; }
	$(MAKE) static TARGET=$(TARGET)
	TINYMTA_BIN=$(CURDIR)/target/$(TARGET)/release/tinymta \
	$(if $(QEMU_$(TARGET)),TINYMTA_RUNNER=$(QEMU_$(TARGET))) $(CARGO) test --test smoke

# Fuzzing with cargo-fuzz (nightly): each target for FUZZ_TIME seconds.
# Seeds are in fuzz/corpus/T; what a run finds goes to fuzz/runs/T, and
# crashes to fuzz/artifacts/T (each becomes a regression test).
FUZZ_TIME ?= 60
FUZZ_TARGETS = smtp_command smtp_address smtp_session data_decoder dns_message config aliases auth queue_envelope sendmail_args outgoing http_response
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p runs/$$t; \
	  $(CARGO) +nightly fuzz run $$t runs/$$t corpus/$$t -- -max_total_time=$(FUZZ_TIME) || exit 1; done

# Long fault tests: kill -9 under load (STRESS_ROUNDS kills, default 20), the
# upstream down then back, slow clients and connection floods.
stress:
	$(CARGO) test --release --test stress -- --ignored --nocapture

# tinymta, Postfix and OpenSMTPD under the same smtp-source load, beside the
# disk's own fsync limit; relaying to smtp-sink; idle memory, start-up, size.
# bench/run.py installs what it lacks (postfix, Debian's opensmtpd unpacked
# under target/bench-peers), prints the table and writes bench/results.md.
# Runs as root. BENCH_RUNS, BENCH_MESSAGES, BENCH_PUSH_MESSAGES and
# BENCH_SERVERS adjust it.
bench:
	python3 bench/run.py
