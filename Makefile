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
# non-blank, non-comment lines of Go and C, or if the executor binary links the
# listener or any module beyond x/sys and msgpack.
TCB_DIRS := cmd/spawnd executor ipc policy maillog
tcb:
	@total=0; for d in $(TCB_DIRS); do \
		n=$$(cat $$(ls $$d/*.go $$d/*.c 2>/dev/null | grep -v '_test\.go$$') | grep -cvE '^\s*(//.*)?$$'); \
		printf '%-12s %5d\n' $$d $$n; total=$$((total + n)); done; \
	printf '%-12s %5d (limit 1500)\n' total $$total; \
	deps=$$($(GO) list -deps ./cmd/spawnd | grep -E '/listener(/|$$)'); \
	if [ -n "$$deps" ]; then echo "tcb: cmd/spawnd links $$deps"; exit 1; fi; \
	mods=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/spawnd | \
		grep -vE '^(spawnd(/|$$)|golang.org/x/sys/|github.com/vmihailenco/(msgpack/v5|tagparser/v2))'); \
	if [ -n "$$mods" ]; then echo "tcb: cmd/spawnd links $$mods"; exit 1; fi; \
	[ $$total -le 1500 ] || { echo "tcb: over budget"; exit 1; }

# Fuzz the listener-facing decoder, both configuration parsers and the
# client_access pattern parser.
fuzz:
	$(GO) test -run XXX -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./ipc
	$(GO) test -run XXX -fuzz FuzzMainCF -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run XXX -fuzz FuzzMasterCF -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run XXX -fuzz FuzzAccess -fuzztime $(FUZZTIME) ./policy

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt: not formatted: $$out"; exit 1; fi
	$(GO) vet ./...

verify-deps:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf $(BIN)

# Installation. DESTDIR stages (packaging); the other directories are
# where the files live and are written into the systemd units.
.PHONY: man install uninstall
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/spawnd
CONFDIR    ?= /etc/spawnd
UNITDIR    ?= /lib/systemd/system
# master(8) runs $daemon_directory/spawnd: Postfix's own value when
# Postfix is installed, else Debian's.
DAEMON_DIR ?= $(shell postconf -h daemon_directory 2>/dev/null || postconf -dh daemon_directory 2>/dev/null || echo /usr/lib/postfix/sbin)
INSTALL_BINS  := spawnd spawnd-listener
INSTALL_PAGES := spawnd.8 spawnd-listener.8
INSTALL_CONF  := main.cf master.cf
INSTALL_UNITS := spawnd.service spawnd.socket

# The manual pages from their source, the package comments of
# cmd/spawnd/doc.go and cmd/spawnd-listener/doc.go.
man:
	$(GO) run ./doc/mkman -d doc

# Binaries into SBINDIR and DAEMON_DIR, manual pages, the example
# configuration (into CONFDIR only where no file is there yet), units.
install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DAEMON_DIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR)
	for f in $(INSTALL_BINS); do \
		install -m 0755 $(BIN)/$$f $(DESTDIR)$(SBINDIR)/$$f && \
		install -m 0755 $(BIN)/$$f $(DESTDIR)$(DAEMON_DIR)/$$f || exit 1; done
	for f in $(INSTALL_PAGES); do install -m 0644 doc/$$f $(DESTDIR)$(MANDIR)/man8/$$f || exit 1; done
	for f in $(INSTALL_CONF); do install -m 0644 examples/$$f $(DESTDIR)$(DOCDIR)/examples/$$f || exit 1; done
	@for f in $(INSTALL_CONF); do \
		if [ -e $(DESTDIR)$(CONFDIR)/$$f ]; then echo "keeping $(DESTDIR)$(CONFDIR)/$$f"; \
		else echo "install -m 0644 examples/$$f $(DESTDIR)$(CONFDIR)/$$f"; \
			install -m 0644 examples/$$f $(DESTDIR)$(CONFDIR)/$$f || exit 1; fi; done
	for f in $(INSTALL_UNITS); do \
		sed -e 's|/usr/local/sbin/|$(SBINDIR)/|g' -e 's|/etc/spawnd\b|$(CONFDIR)|g' init/$$f \
			> $(DESTDIR)$(UNITDIR)/$$f && chmod 0644 $(DESTDIR)$(UNITDIR)/$$f || exit 1; done
	@echo
	@echo "Under Postfix, change the command column of a spawn service in"
	@echo "master.cf from spawn to spawnd, then run postfix reload:"
	@echo "    policy  unix  -  n  n  -  0  spawnd"
	@echo "        user=nobody argv=/usr/local/bin/policy-server"
	@echo "Standalone: edit $(CONFDIR)/master.cf, then"
	@echo "    systemctl daemon-reload && systemctl enable --now spawnd.service"

# Removes what install put; a configuration file in CONFDIR only while it
# is still the unchanged example.
uninstall:
	for f in $(INSTALL_BINS); do rm -f $(DESTDIR)$(SBINDIR)/$$f $(DESTDIR)$(DAEMON_DIR)/$$f; done
	for f in $(INSTALL_PAGES); do rm -f $(DESTDIR)$(MANDIR)/man8/$$f; done
	for f in $(INSTALL_CONF); do rm -f $(DESTDIR)$(DOCDIR)/examples/$$f; done
	for f in $(INSTALL_UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$f; done
	@for f in $(INSTALL_CONF); do \
		if cmp -s examples/$$f $(DESTDIR)$(CONFDIR)/$$f; then echo "rm -f $(DESTDIR)$(CONFDIR)/$$f"; rm -f $(DESTDIR)$(CONFDIR)/$$f; \
		elif [ -e $(DESTDIR)$(CONFDIR)/$$f ]; then echo "keeping $(DESTDIR)$(CONFDIR)/$$f: changed since install"; fi; done
	rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR) 2>/dev/null || true
