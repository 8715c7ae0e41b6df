# MiniKu. `make` lists the targets.
GO        ?= go
BIN       ?= $(CURDIR)/.bin/miniku
DATA_DIR  ?= /var/lib/miniku
RUN_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help build run test lint tidy-check bench bench-large deps

help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the miniku binary into .bin/
	$(GO) build -o $(BIN) .

run: build ## run everything in one process (needs root): make run RUN_FLAGS="--nodes 3"
	$(BIN) up --data-dir $(DATA_DIR) $(RUN_FLAGS)

deps: ## install what the tests need (Debian, as root)
	@command -v busybox >/dev/null 2>&1 && test -x /bin/busybox || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static)

test: ## vet and run every test with the race detector (integration tests need root)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check: ## fail if go.mod/go.sum are not tidy
	$(GO) mod tidy -diff

bench: build ## run the benchmarks (needs root): bus, runtime vs crun/runc, then the scale table (docs/scale.md)
	$(GO) test -run '^$$' -bench . -benchtime 20x ./bus/
	bash bench/runtime.sh 30
	$(GO) run ./bench/scale -bin $(BIN) -plot docs/scale-throughput.png

bench-large: build ## scale benchmark 2: 5,000 hollow nodes and 150,000 pods in one up (up to ~25 min)
	$(GO) run ./bench/scale -bin $(BIN) -only large
