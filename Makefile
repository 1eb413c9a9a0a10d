# tutti: make build | make run | make test | make bench
GO      ?= go
BIN     := bin/tutti
BENCH   := bin/tutti-bench
GOFLAGS ?=
# TAGS every build and test takes: sqlite_fts5 compiles SQLite with FTS5, the
# library search's index (the controller refuses to start without it).
TAGS    := sqlite_fts5
export CGO_ENABLED := 1

.PHONY: all build run test bench deps clean image image-test

all: build

# deps checks (and, as root, installs) the Debian packages tutti builds and tests with.
deps:
	@scripts/deps.sh

# build makes the product binary, bin/tutti (stripped, as the Pi image and
# the package carry it), and bin/tutti-bench: the same program with the
# benchmarks and what only they need (plotting, the Wi-Fi proxy).
build: deps
	$(GO) build -tags $(TAGS) -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/tutti
	$(GO) build -tags bench,$(TAGS) -o $(BENCH) ./cmd/tutti

# run starts a hub and three virtual speakers playing generated songs, with live status.
run: build
	$(BIN) demo

# test runs every test, including the end-to-end tests over real processes,
# the real mosquitto broker and the mosquitto_pub/mosquitto_sub clients, and
# the patched mochi copy's own tests (scripts/test.sh: one package at a time,
# a summary of failures at the end).
test: build
	GO=$(GO) scripts/test.sh

# bench runs every benchmark; each prints its figures and, last, one JSON line.
# The speakers and controllers they start run bin/tutti, the product binary.
# Through Wi-Fi jitter the clock estimate needs tens of seconds of probes to
# settle: that sync bench measures a minute of the settled state.
bench: build
	$(BENCH) bench sync --json --plot bin/skew.png
	$(BENCH) bench sync --json --jitter wifi --settle 30s --seconds 60 --plot bin/skew-wifi.png
	$(BENCH) bench latency --json
	$(BENCH) bench start --json
	$(BENCH) bench cost --json
	$(BENCH) bench scale --json
	$(BENCH) bench failover --json
	$(BENCH) bench library --json

# image builds the Raspberry Pi SD-card image (as root; ~10 min cold, the
# .debs are cached in firmware-image/cache/) into firmware-image/out/.
image:
	$(MAKE) -C firmware-image image

# image-test boots the image under QEMU and checks it.
image-test: image
	TUTTI_IMAGE_TEST=1 $(GO) test -tags $(TAGS) -count=1 -run TestImage -v ./firmware-image/

clean:
	rm -rf bin
