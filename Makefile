# tutti: make build | make run | make test | make bench
GO      ?= go
BIN     := bin/tutti
GOFLAGS ?=
export CGO_ENABLED := 1

.PHONY: all build run test bench deps clean image image-test

all: build

# deps checks (and, as root, installs) the Debian packages tutti builds and tests with.
deps:
	@scripts/deps.sh

build: deps
	$(GO) build -o $(BIN) ./cmd/tutti

# run starts a hub and three virtual speakers playing generated songs, with live status.
run: build
	$(BIN) demo

# test runs every test, including the end-to-end tests over real processes,
# the real mosquitto broker and the mosquitto_pub/mosquitto_sub clients
# (scripts/test.sh: one package at a time, a summary of failures at the end).
test: build
	GO=$(GO) scripts/test.sh

# bench runs every benchmark; each prints its figures and, last, one JSON line.
bench: build
	$(BIN) bench sync --json --plot bin/skew.png
	$(BIN) bench sync --json --jitter wifi --plot bin/skew-wifi.png
	$(BIN) bench latency --json
	$(BIN) bench start --json
	$(BIN) bench cost --json
	$(BIN) bench scale --json
	$(BIN) bench failover --json

# image builds the Raspberry Pi SD-card image (as root; ~10 min cold, the
# .debs are cached in firmware-image/cache/) into firmware-image/out/.
image:
	$(MAKE) -C firmware-image image

# image-test boots the image under QEMU and checks it.
image-test: image
	TUTTI_IMAGE_TEST=1 $(GO) test -count=1 -run TestImage -v ./firmware-image/

clean:
	rm -rf bin
