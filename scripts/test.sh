#!/usr/bin/env bash
# The test command: installs redis-server, faketime (for servers with a
# shifted clock, see internal/redistest) and chromium (the dashboard's
# browser test, scheduler/statusapi) from Debian's packages when they are
# missing, then runs the whole suite with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "${missing[*]} not found; installing from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

go vet ./...
# The benchmarks are a module of their own (their peers stay out of ours):
# keep them compiling.
(cd bench && go vet ./...)
go test -race -count=1 -timeout 12m ./...
# Short fuzz runs of the config decoder and schedule parser (one target per
# invocation, as go test requires); the seed corpora are in jobs/testdata/fuzz and scheduler/schedule/testdata/fuzz.
# Budgets are counts of runs, not durations: with a duration, Go 1.26's
# coordinator can fail the target with a bare "context deadline exceeded"
# when the deadline meets a busy worker (golang/go#75804, fixed in 1.27),
# as it did in CI while a worker minimized a new input. Minimizing is
# bounded the same way so that a slow machine only takes longer.
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 50000x -fuzzminimizetime 200x ./jobs/
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 200000x -fuzzminimizetime 200x ./scheduler/schedule/
