# nox: run `make help` for the targets.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         ?= bin/nox
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
DATADIR     ?= $(PREFIX)/share

.DEFAULT_GOAL := help
.PHONY: help generate check-generate build install test lint bench run conformance

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

generate: ## Regenerate gen/ from api/openapi.yaml.
	$(GO) generate ./...

check-generate: generate ## Fail if gen/ is stale (fix: run `make generate` and commit).
	@git diff --exit-code --stat -- gen/ && test -z "$$(git status --porcelain -- gen/)" || { echo "gen/ is out of date: run 'make generate' and commit the result"; exit 1; }

build: ## Build the nox binary into bin/.
	$(GO) build -o $(BIN) ./cmd/nox

install: build ## Install nox and its shell completions under PREFIX (default /usr/local; e.g. PREFIX=~/.local).
	sh scripts/install.sh "$(BIN)" "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(DATADIR)"

test: ## Vet (on Linux, and on macOS and Windows for the client), check generated code, run every test with the race detector, then the conformance run.
	$(GO) vet ./... && GOOS=darwin $(GO) vet ./... && GOOS=windows $(GO) build ./sdk/... && $(MAKE) -s check-generate && $(GO) test -race -count=1 -timeout 15m ./... && $(MAKE) -s conformance

lint: ## gofmt and staticcheck (fetched through the module proxy).
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w on the files above"; exit 1; }
	$(GO) run $(STATICCHECK) ./...

BENCH_FLAGS ?= --iterations 50 --create-iterations 10 --sweep-execs 10 --tree-size 8Mi --transfer-runs 2

bench: build ## Run the Go benchmarks once each, then nox bench --local (the table on stdout, the chart in bench.svg; BENCH_FLAGS).
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./... && d=$$(mktemp -d) && { ./$(BIN) --local --data-dir "$$d" bench $(BENCH_FLAGS) --format svg --output bench.svg; s=$$?; rm -rf "$$d"; exit $$s; }

run: build ## Build nox and run the demo against the embedded local backend.
	sh scripts/demo.sh ./$(BIN)

CONFORMANCE_FLAGS ?= --certify --profile all

conformance: build ## Certify nox serve with nox conformance (every check; a skip fails) on a free loopback port.
	$(GO) build -o bin/noxworld ./internal/networld/cmd/noxworld
	NOXWORLD=./bin/noxworld sh scripts/conformance.sh ./$(BIN) $(CONFORMANCE_FLAGS)
