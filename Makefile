# MiniKu. `make` lists the targets.
# sudo's secure_path usually lacks Go's own directory.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN       ?= $(CURDIR)/.bin/miniku
DATA_DIR  ?= /var/lib/miniku
RUN_FLAGS ?=
FUZZTIME  ?= 10s
CHAOS_DURATION ?= 10m
# Helm for services/e2e/helm_test.go, built from source by `make helm`.
HELM_VERSION ?= v4.3.2
HELM_BIN  ?= /usr/local/bin
# Every fuzz test, as package:Name; `make fuzz` runs each for FUZZTIME.
FUZZ_TESTS = ./schemas:FuzzUnmarshal ./schemas:FuzzParseQuantity \
	./services/apiserver:FuzzParseSelector ./services/apiserver:FuzzPodBody \
	./services/apiserver:FuzzReplicaSetBody ./runtime/image:FuzzUnpack \
	./runtime:FuzzResolveUser

.DEFAULT_GOAL := help
.PHONY: help build install run test lint tidy-check bench bench-large deps helm fuzz chaos cross

help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the miniku binary into .bin/
	$(GO) build -o $(BIN) .

cross: ## the client half builds for macOS and Windows; Linux without cgo fails at build time
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null .
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null .
	@if CGO_ENABLED=0 GOOS=linux $(GO) build -o /dev/null . 2>/dev/null; then echo "CGO_ENABLED=0 linux build should fail"; exit 1; fi

install: build ## install the binary as /usr/local/bin/miniku (as root)
	install -m 0755 $(BIN) /usr/local/bin/miniku

run: build ## run everything in one process (needs root): make run RUN_FLAGS="--nodes 3"
	$(BIN) up --data-dir $(DATA_DIR) $(RUN_FLAGS)

deps: helm ## install what the tests need (Debian, as root)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		busybox-static gcc libc6-dev e2fsprogs mount curl chromium

helm: ## install Helm HELM_VERSION into HELM_BIN once (the Helm test's), from the Go module proxy
	@if $(GO) version -m $(HELM_BIN)/helm 2>/dev/null | grep -Eq '^\s+mod\s+helm.sh/helm/v4\s+$(HELM_VERSION)\s'; then echo "helm $(HELM_VERSION) is installed in $(HELM_BIN)"; \
	else GOBIN=$(HELM_BIN) GOFLAGS=-buildvcs=false $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION); fi

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

fuzz: ## run each fuzz test for FUZZTIME (10s): make fuzz FUZZTIME=5m
	@set -e; for t in $(FUZZ_TESTS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

chaos: ## the chaos test for CHAOS_DURATION (10m; make test runs 60s), as root: make chaos CHAOS_SEED=N replays
	MINIKU_CHAOS_DURATION=$(CHAOS_DURATION) MINIKU_CHAOS_SEED=$(CHAOS_SEED) \
		$(GO) test -count=1 -v -timeout 60m -run '^TestChaos$$' ./services/e2e/
