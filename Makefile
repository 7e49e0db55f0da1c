# qonnect — make build | test | demo | bench | lint
SHELL := /usr/bin/env bash
GO    ?= go
BIN   := $(CURDIR)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w \
	-X qonnect.io/qonnect/internal/version.Version=$(VERSION) \
	-X qonnect.io/qonnect/internal/version.Commit=$(COMMIT) \
	-X qonnect.io/qonnect/plugin.Version=$(VERSION) \
	-X qonnect.io/qonnect/plugin.GitCommit=$(COMMIT) \
	-X qonnect.io/qonnect/agent.Version=$(VERSION) \
	-X qonnect.io/qonnect/internal/sandbox.SourceRoot=$(CURDIR)
# Tests run the binaries make build put in bin/ instead of building their own.
export QONNECT_BIN := $(BIN)
TEST_TIMEOUT ?= 40m

.PHONY: all build test test-short demo bench lint deps testbed clean

all: build

## build: every binary into bin/
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## deps: what the tests need from Debian (nftables for partitions)
deps:
	@command -v nft >/dev/null 2>&1 || { echo "installing nftables"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables) >/dev/null; }

## testbed: the Kubernetes binaries of the sandbox, built once into the cache
testbed:
	@bash hack/testbed.sh >/dev/null

## test: every test — unit, integration against real API servers, end to end
test: deps build testbed
	QONNECT_TESTBED_BIN=$$(bash hack/testbed.sh --print-dir) \
		$(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...

## test-short: the quick tests only
test-short:
	$(GO) test -short -count=1 ./...

## demo: the main job on the sandbox
demo: deps build testbed
	QONNECT_TESTBED_BIN=$$(bash hack/testbed.sh --print-dir) bash hack/demo.sh

## bench: the benchmark tables
bench: build testbed
	QONNECT_TESTBED_BIN=$$(bash hack/testbed.sh --print-dir) \
		$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN) dist

# --- install artefacts: container images and the krew archives -------------

.PHONY: images dist

## images: container images of qonnect-lead and qonnect-agent, FROM scratch
##   around the static binary, built with docker (nothing is pulled).
##   Tagged [IMAGE_REGISTRY/]qonnect-lead:IMAGE_TAG (default tag: VERSION, which
##   is also what `kubectl qonnect install` asks for); push them yourself:
##   make images IMAGE_REGISTRY=registry.example/you && docker push ...
IMAGE_REGISTRY ?=
IMAGE_TAG      ?= $(VERSION)
IMAGE_ARCH     ?= $(shell $(GO) env GOARCH)
IMAGE_LDFLAGS  := -s -w \
	-X qonnect.io/qonnect/internal/version.Version=$(VERSION) \
	-X qonnect.io/qonnect/internal/version.Commit=$(COMMIT) \
	-X qonnect.io/qonnect/plugin.Version=$(VERSION) \
	-X qonnect.io/qonnect/plugin.GitCommit=$(COMMIT) \
	-X qonnect.io/qonnect/agent.Version=$(VERSION)
images:
	@set -e; for b in qonnect-lead qonnect-agent; do \
		ctx=$$(mktemp -d); trap 'rm -rf "$$ctx"' EXIT; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '$(IMAGE_LDFLAGS)' -o "$$ctx/$$b" ./cmd/$$b; \
		cp LICENSE images/$$b/Dockerfile "$$ctx/"; \
		ref=$(if $(IMAGE_REGISTRY),$(IMAGE_REGISTRY)/)$$b:$(IMAGE_TAG); \
		docker build --quiet --platform linux/$(IMAGE_ARCH) --build-arg VERSION=$(VERSION) -t "$$ref" "$$ctx" >/dev/null; \
		rm -rf "$$ctx"; trap - EXIT; \
		echo "$$ref"; \
	done

## dist: the plugin's krew archives (linux, darwin, windows x amd64, arm64)
##   into dist/, and krew/qonnect.yaml filled with their sha256.
##   DIST_VERSION is a semver tag (default: from git).
dist:
	bash hack/dist.sh $(if $(DIST_VERSION),--version $(DIST_VERSION))
