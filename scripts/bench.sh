#!/usr/bin/env bash
# Runs every Go benchmark (both storage engines) and writes the results,
# headed by the machine and date, to bench/results/<date>-<host>.txt.
# Compare runs as ratios made in one go: the machine is small and shared.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/$(date -u +%Y-%m-%dT%H%MZ)-$(hostname -s).txt"
{
	echo "# SecretHub benchmarks"
	echo "# date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "# machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
	echo "# memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "# go:      $(go version)"
	echo "# postgres: ${SECRETHUB_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
	echo
	CGO_ENABLED=0 go test -run='^$' -bench=. -benchmem -benchtime="${BENCHTIME:-2s}" -count="${BENCHCOUNT:-1}" ./... 2>&1
} | tee "$out"
echo "results written to $out"
