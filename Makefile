# spawnd: every target does one thing; see README.md.
GO      ?= go
BIN     ?= bin
PREFIX  ?= /usr/local
DESTDIR ?=
FUZZTIME ?= 1m
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test check run bench soak fuzz tcb lint verify-deps clean

all: build

build:
	CGO_ENABLED=1 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/spawnd ./cmd/spawnd-listener

# Unit and integration tests, with the race detector. The privileged tests
# run when root (CI is) and skip with a message saying so otherwise.
test: lint build
	$(GO) test -race -count=1 -timeout 40m ./...

# Validate the demo configuration the way an administrator would.
check: build
	$(BIN)/spawnd check -c examples

# The embedded demo, in the foreground, logging to stderr.
run: build
	$(BIN)/spawnd serve -c examples -v

# Side-by-side benchmark with the C ceiling server and the installed peers.
bench: build
	$(GO) run ./bench/runner -bin $(BIN)

# 100,000 connections at concurrency 64 across three services.
soak: build
	SPAWND_SOAK=1 $(GO) test -count=1 -timeout 60m -run Soak -v ./test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt: not formatted: $$out"; exit 1; fi
	$(GO) vet ./...

verify-deps:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf $(BIN)
