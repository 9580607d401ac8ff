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

# The executor's trusted base: what an auditor reads. Fails over 1,500
# non-blank, non-comment lines, or if the executor binary links the
# listener or any module beyond x/sys and msgpack.
TCB_DIRS := cmd/spawnd executor ipc policy maillog
tcb:
	@total=0; for d in $(TCB_DIRS); do \
		n=$$(cat $$(ls $$d/*.go | grep -v '_test\.go$$') | grep -cvE '^\s*(//.*)?$$'); \
		printf '%-12s %5d\n' $$d $$n; total=$$((total + n)); done; \
	printf '%-12s %5d (limit 1500)\n' total $$total; \
	deps=$$($(GO) list -deps ./cmd/spawnd | grep -E '/listener(/|$$)'); \
	if [ -n "$$deps" ]; then echo "tcb: cmd/spawnd links $$deps"; exit 1; fi; \
	mods=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/spawnd | \
		grep -vE '^(spawnd(/|$$)|golang.org/x/sys/|github.com/vmihailenco/(msgpack/v5|tagparser/v2))'); \
	if [ -n "$$mods" ]; then echo "tcb: cmd/spawnd links $$mods"; exit 1; fi; \
	[ $$total -le 1500 ] || { echo "tcb: over budget"; exit 1; }

# Fuzz the listener-facing decoder and both configuration parsers.
fuzz:
	$(GO) test -run XXX -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./ipc
	$(GO) test -run XXX -fuzz FuzzMainCF -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run XXX -fuzz FuzzMasterCF -fuzztime $(FUZZTIME) ./policy

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt: not formatted: $$out"; exit 1; fi
	$(GO) vet ./...

verify-deps:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf $(BIN)
