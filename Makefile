# Portcullis build and test entry points.

.PHONY: build test bench fuzz demo

build:
	go build -o bin/portcullis ./cmd/portcullis

# All checks and tests; installs the Debian peers the tests need.
test:
	./scripts/test.sh

bench:
	go test -run='^$$' -bench=. -benchmem ./...

# Short run of every fuzz target (FUZZTIME per target, default 20s).
FUZZTIME ?= 20s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)
