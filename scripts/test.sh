#!/usr/bin/env bash
# Runs every test (make test). The whole output goes to bin/test.log too; when
# something fails, a summary at the end names the failed tests and, after a
# timeout, the test that hung and the stacks of the test code that waited, so
# the last lines of a CI log say what went wrong.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
log=bin/test.log
# Packages run one at a time (-p 1): the end-to-end tests and the benchmark
# smoke tests measure timing, and on a 2-core machine they disturb each other.
# -count=1: they run the tutti binary they build, which the test cache cannot see.
# -tags bench: the benchmarks' smoke tests are built with them (tutti-bench);
# sqlite_fts5: SQLite with FTS5, which the library search needs.
"${GO:-go}" test -race -tags bench,sqlite_fts5 -p 1 -count=1 -timeout 30m ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The patched copies under third_party are modules of their own, which ./...
# leaves out: their upstream tests, adapted to tutti's changes (each TUTTI.md).
for mod in third_party/mochi-mqtt-server third_party/go-mp3 third_party/flac; do
	"${GO:-go}" test -C "$mod" -race -count=1 -timeout 10m ./... 2>&1 | tee -a "$log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
[ "$status" -eq 0 ] && exit 0
echo
echo "=== what failed (the whole output is in $log)"
grep -E '^(--- FAIL|FAIL|panic:)|^\s+\S+_test\.go:[0-9]+: ' "$log" | head -n 60
if grep -q '^panic: test timed out' "$log"; then
	echo "=== the tests running when time ran out"
	grep -A 10 '^panic: test timed out' "$log" | sed -n '/running tests:/,/^$/p'
	echo "=== goroutines waiting in test code"
	# A goroutine's stack is a paragraph; print those that pass through a
	# _test.go file.
	awk 'BEGIN { RS = "" } /^goroutine / && /_test\.go:/ { print; print "" }' "$log" | head -n 150
fi
exit "$status"
