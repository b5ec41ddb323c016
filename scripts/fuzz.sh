#!/usr/bin/env bash
# Runs each fuzz target in the module for a short time (default 15s each).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-15s}"
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r file; do
	pkg="./$(dirname "${file#./}")"
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //' | while read -r target; do
		echo "== $pkg $target"
		CGO_ENABLED=0 go test -run="^$" -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg"
	done
done
