# tinymta: build, run and test.
CARGO ?= cargo
CONFIG ?= etc/tinymta.conf
PREFIX ?= /usr/local
DESTDIR ?=
# Where cargo builds: CARGO_TARGET_DIR where it is set (cargo reads it
# too), else target/.
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))

.PHONY: build run test lint release install clean static size dist test-qemu test-smoke fuzz stress bench

build:
	$(CARGO) build

# tinymta in the foreground with the example config: 127.0.0.1:2525, ./var/.
run: build
	mkdir -p var
	$(TARGET_DIR)/debug/tinymta -c $(CONFIG)

# What CI runs: the test peers this machine lacks (tests/peers/install says
# what it installs), formatting, lints, every unit and integration test, then
# the integration tests again against the aarch64 musl binary under qemu,
# and the smoke run against each other static target's binary.
# A test that cannot run here (no root, no IPv6 loopback) skips through
# tests/support's skip(), which appends a line to TINYMTA_SKIP_LOG; the
# qemu pass adds the tests it does not run (QEMU_NOT_RUN). The run ends by
# counting and naming them all, so that no skip passes unseen. With
# TINYMTA_REQUIRE_ALL=1 (.ci/run) a skip fails its test instead.
SMOKE_TARGETS = $(filter-out aarch64-unknown-linux-musl,$(STATIC_TARGETS))
SKIP_LOG = $(TARGET_DIR)/skipped-tests
test:
	tests/peers/install
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	rm -f $(SKIP_LOG)
	TINYMTA_SKIP_LOG=$(SKIP_LOG) $(CARGO) test
	TINYMTA_SKIP_LOG=$(SKIP_LOG) $(MAKE) test-qemu
	for t in $(SMOKE_TARGETS); do TINYMTA_SKIP_LOG=$(SKIP_LOG) $(MAKE) test-smoke TARGET=$$t || exit 1; done
	@touch $(SKIP_LOG) && echo "skipped: $$(wc -l < $(SKIP_LOG))" && cat $(SKIP_LOG)

release:
	$(CARGO) build --release
	@ls -l $(TARGET_DIR)/release/tinymta

install: release
	install -D -m 0755 $(TARGET_DIR)/release/tinymta $(DESTDIR)$(PREFIX)/sbin/tinymta
	install -D -m 0644 etc/tinymta.conf $(DESTDIR)/etc/tinymta.conf.example

clean:
	$(CARGO) clean
	rm -rf var

# Static musl binaries for the routers' platforms, without a container
# engine (`cross` builds the same targets in containers: cross/Cross.toml).
# cross/toolchain installs, once, what they are built with: a pinned
# nightly with rust-src, zig and cargo-zigbuild. The standard library is
# built from source (-Z build-std) for every target: rustup serves none for
# armv7 musl here and none at all for the MIPS targets (tier 3), and it is
# then built for size like the rest (opt-level z, LTO) and without its
# "backtrace" feature (the symbolizer, 300 KB on MIPS; a panic still
# unwinds, ends its session and is logged, without a backtrace).
# zig is the C compiler and the linker: it brings musl's C runtime and
# libunwind for each target, in place of the self-contained copies that
# come with a rustup-served std (hence link-self-contained=no). The MIPS
# musl targets link dynamically by default in Rust; crt-static makes every
# target one static binary, and as that is not position-independent (no
# static PIE), its code need not be either: relocation-model=static calls
# and loads directly instead of through the GOT (on MIPS, 300 KB less).
#   x86_64  OpenWrt x86/64, NAS boxes      aarch64  filogic, RPi
#   armv7   ipq40xx, mvebu (hard float)    mipsel   ramips MT7621 (24Kc, soft float)
#   mips    ath79 (24Kc, soft float, big-endian)
TARGET ?= x86_64-unknown-linux-musl
STATIC_TARGETS = x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
  armv7-unknown-linux-musleabihf mipsel-unknown-linux-musl mips-unknown-linux-musl
BUILD_STD = -Z build-std=std,panic_unwind -Z build-std-features=panic-unwind,optimize_for_size
STATIC_RUSTFLAGS = -C link-self-contained=no -C target-feature=+crt-static -C relocation-model=static
# What the linker's --strip-all leaves and nothing reads at run time (the
# sections are not loaded): on MIPS, LLVM's .pdr (procedure descriptors for
# old debuggers, 175 KB) and .mdebug.abi32; the compilers' .comment.
STRIP_SECTIONS = --remove-section=.pdr --remove-section=.mdebug.abi32 --remove-section=.comment
# cargo-zigbuild with the pinned nightly, the flags and std above; a rule
# adds its own arguments. It leaves llvm-objcopy's path in $3 of the shell.
ZIGBUILD = set -- $$(cross/toolchain --print) && \
  RUSTUP_TOOLCHAIN=$$1 RUSTFLAGS="$(STATIC_RUSTFLAGS)" $$2 zigbuild $(BUILD_STD)

static:
	@case " $(STATIC_TARGETS) " in *" $(TARGET) "*) ;; \
	  *) echo "make static: $(TARGET) is none of: $(STATIC_TARGETS)"; exit 1;; esac
	@cross/toolchain
	$(ZIGBUILD) --release --target $(TARGET) && $$3 $(STRIP_SECTIONS) $(TARGET_DIR)/$(TARGET)/release/tinymta
	@ls -l $(TARGET_DIR)/$(TARGET)/release/tinymta

# For each static target: the stripped binary's size, the same xz -9e
# compressed (routers' squashfs compresses with xz), and whether it is
# within the budget of 2.0 MB (2,000,000 bytes) stripped. Then what the
# HTTP client costs: the code that stayed src/http.rs's own after LTO
# inlined the rest into its callers, from the symbols of an unstripped
# x86_64 build (its TLS and DNS are delivery's, there anyway).
SIZE_BUDGET = 2000000
SYMBOLS_DIR = target/symbols
size:
	@for t in $(STATIC_TARGETS); do $(MAKE) -s static TARGET=$$t >/dev/null 2>&1 || echo "$$t: build failed"; done
	@printf '%-32s %10s %10s  %-8s %s\n' target stripped xz budget linkage
	@for t in $(STATIC_TARGETS); do f=$(TARGET_DIR)/$$t/release/tinymta; \
	  if [ -f $$f ]; then bytes=$$(stat -c %s $$f); \
	  printf '%-32s %10s %10s  %-8s %s\n' $$t $$bytes $$(xz -9e -c $$f | wc -c) \
	  $$([ $$bytes -le $(SIZE_BUDGET) ] && echo within || echo OVER) \
	  "$$(file -b $$f | grep -o 'static-pie linked\|statically linked\|dynamically linked')"; fi; done
	@export CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$(SYMBOLS_DIR); \
	  { $(ZIGBUILD) -q --release --target x86_64-unknown-linux-musl; } >/dev/null 2>&1 \
	  || echo "symbols build failed"
	@f=$(SYMBOLS_DIR)/x86_64-unknown-linux-musl/release/tinymta; if [ -f $$f ]; then \
	  printf '%-32s %10s  %s\n' "  of which the HTTP client" $$(nm -C --size-sort --radix=d $$f \
	  | awk '/[ <]tinymta::http::/ { sum += $$1 } END { print sum + 0 }') \
	  "x86_64 musl: src/http.rs's own functions"; fi

# Release archives in target/dist/: one per target of STATIC_TARGETS, a
# target added there is archived too (cross/dist/archive says what an
# archive holds), and SHA256SUMS of the archives.
DIST_DIR = target/dist
dist:
	rm -rf $(DIST_DIR)
	@for t in $(STATIC_TARGETS); do \
	  $(MAKE) static TARGET=$$t && cross/dist/archive $$t $(TARGET_DIR)/$$t/release/tinymta $(DIST_DIR) || exit 1; \
	done
	cd $(DIST_DIR) && sha256sum *.tar.gz > SHA256SUMS
	@cat $(DIST_DIR)/SHA256SUMS

# The whole integration suite against the aarch64 musl binary, run by
# qemu-aarch64-static (no binfmt needed: the tests start it through the
# runner, and where a program execs it itself, an init script or an alert
# tool, through a script that runs it so: support::runner_script).
# But for the tests below, each not run for a reason no runner changes. The
# pass names them, with the reason, among the skips (TINYMTA_SKIP_LOG, else
# on standard output); the tests themselves skip under a runner as well.
# The set-group-id install: the kernel gives a program the group of its
# set-group-id bit when it execs that file, and qemu-user reads the guest
# binary, it never execs it (tests/security.rs, tests/alert_tools.rs).
QEMU_NOT_RUN_SETGID = an_ordinary_user_queues_through_the_maildrop_and_reads_no_one_elses_mail \
  the_setgid_binary_only_submits_and_reads_no_file_of_the_users_choice \
  root_only_files_stop_neither_an_ordinary_users_sendmail_nor_a_reload \
  busybox_crond_mails_a_jobs_output_from_root_and_from_a_user \
  s_nail_under_umask_077_as_root_and_as_an_ordinary_user
# libfaketime is preloaded by the dynamic loader, and neither the static
# binary nor qemu-user (static too) has one (tests/router_warnings.rs).
QEMU_NOT_RUN_FAKETIME = a_clock_before_the_build_is_said_and_tls_delivery_defers_until_it_is_set
QEMU_NOT_RUN = $(QEMU_NOT_RUN_SETGID) $(QEMU_NOT_RUN_FAKETIME)
test-qemu:
	$(MAKE) static TARGET=aarch64-unknown-linux-musl
	TINYMTA_BIN=$(TARGET_DIR)/aarch64-unknown-linux-musl/release/tinymta \
	TINYMTA_RUNNER=qemu-aarch64-static $(CARGO) test --test '*' -- --exact $(addprefix --skip ,$(QEMU_NOT_RUN))
	@{ for t in $(QEMU_NOT_RUN_SETGID); do \
	  echo "[qemu-aarch64-static] $$t: not run (Makefile QEMU_NOT_RUN_SETGID): the set-group-id install needs a native binary"; done; \
	  for t in $(QEMU_NOT_RUN_FAKETIME); do \
	  echo "[qemu-aarch64-static] $$t: not run (Makefile QEMU_NOT_RUN_FAKETIME): libfaketime cannot be preloaded into a static binary"; done; \
	} >> $${TINYMTA_SKIP_LOG:-/dev/stdout}

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
	TINYMTA_BIN=$(TARGET_DIR)/$(TARGET)/release/tinymta \
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

# Long fault tests: kill -9 under load (STRESS_ROUNDS kills, default 20;
# STRESS_SEED replays the kill moments of a run, which prints its seed), the
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
