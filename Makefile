# Parley - the two commands of the README, and a few more.
#   make run      install missing Debian packages, build, create a development
#                 certificate and configuration under var/, start parleyd
#   make test     build with sanitizers and run the whole suite (unit, fuzz, integration)
#   make install PREFIX=DIR
#   make bench    the benchmarks under bench/ (installs Prosody, ejabberd and the
#                 profilers first: scripts/deps.sh bench)
#   make bench-compare   Parley, Prosody and ejabberd side by side (bench/compare)
#   make bench-nodes     chat on one Parley node, three nodes and Prosody (bench/nodes)
#   make bench-tls-floor what a bare TLS handshake costs each server and nginx (bench/tls-floor)

PREFIX ?= /usr/local
BUILD := build
TEST_BUILD := build-test
VAR := var
JOBS := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run test install bench bench-build bench-compare clean bench-nodes \
	bench-tls-floor

all: build

deps:
	@sh scripts/deps.sh build

build: deps
	@cmake -S . -B $(BUILD) -DPARLEY_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

$(VAR)/parleyd.conf:
	@$(BUILD)/parleyctl init --dir $(VAR) --domain localhost

run: build $(VAR)/parleyd.conf
	@echo "Starting parleyd with $(VAR)/parleyd.conf (it logs the addresses it listens on)."
	@echo "Add a user:  $(BUILD)/parleyctl -c $(VAR)/parleyd.conf user add alice@localhost"
	@echo "Clients trust $(VAR)/ca.crt. Stop with Ctrl-C."
	@exec $(BUILD)/parleyd -c $(VAR)/parleyd.conf

test:
	@sh scripts/deps.sh test
	@sh tests/run.sh $(TEST_BUILD)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

BENCH_BUILD := build-bench

# Release build without sanitizers or tests: what the benchmarks measure.
bench-build:
	@sh scripts/deps.sh bench
	@cmake -S . -B $(BENCH_BUILD) -DPARLEY_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j $(JOBS)

bench: bench-build
	@sh bench/run.sh $(BENCH_BUILD)

bench-compare: bench-build
	@/usr/bin/python3 bench/compare --build $(BENCH_BUILD)

bench-nodes: bench-build
	@/usr/bin/python3 bench/nodes --build $(BENCH_BUILD)

bench-tls-floor: bench-build
	@/usr/bin/python3 bench/tls-floor --build $(BENCH_BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
