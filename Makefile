# SecretHub — one binary for the Core server, the agent and every admin workflow.
#
#   make run    build and serve on :4000 with the embedded SQLite store under ./data
#   make test   gofmt + go vet + every test (needs PostgreSQL on 127.0.0.1:5432)
#   make race   every test under the race detector (cgo)
#   make bench  benchmarks on both engines, results written to bench/results/
#   make build  bin/secrethub (static, CGO_ENABLED=0)

GO      ?= go
BIN     := bin/secrethub
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/secrethub/secrethub/server.Version=$(VERSION)

export CGO_ENABLED := 0

.PHONY: build run test race bench lint fuzz clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

run: build
	./$(BIN) server

test: lint
	$(GO) test -count=1 -timeout 15m ./...

# Every test under the race detector (needs cgo and a C compiler; not part of
# `make test`, which builds as the release does, without cgo).
race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

bench:
	./scripts/bench.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' ; git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Short fuzzing pass over every fuzz target (FUZZTIME per target).
FUZZTIME ?= 15s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
