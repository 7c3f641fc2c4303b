# tinymta: build, run and test.
CARGO ?= cargo
CONFIG ?= etc/tinymta.conf
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: build run test lint release install clean

build:
	$(CARGO) build

# tinymta in the foreground with the example config: 127.0.0.1:2525, ./var/.
run: build
	mkdir -p var
	./target/debug/tinymta -c $(CONFIG)

# What CI runs: formatting, lints, then every unit and integration test.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test

release:
	$(CARGO) build --release
	@ls -l target/release/tinymta

install: release
	install -D -m 0755 target/release/tinymta $(DESTDIR)$(PREFIX)/sbin/tinymta
	install -D -m 0644 etc/tinymta.conf $(DESTDIR)/etc/tinymta.conf.example

clean:
	$(CARGO) clean
	rm -rf var
