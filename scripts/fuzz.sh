#!/usr/bin/env bash
# Run every libFuzzer target of a build for a bounded time, two at a time (one per core),
# from the committed seeds in fuzz/corpus/<name>/ (new inputs go to a scratch folder).
# Usage: scripts/fuzz.sh [build-dir (build/asan)] [seconds per target (30)]
# A crash or a failed invariant fails the run; the input is kept under build-dir/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
seconds=${2:-30}
crashes="$build/fuzz/crashes"
mkdir -p "$crashes"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:protect_shadow_gap=0:intercept_tls_get_addr=0:use_sigaltstack=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}"
export AXLE_CACHE_DIR="$scratch/kernel_cache"

run_one() {
  local name=$1 exe="$build/fuzz/fuzz_$1"
  mkdir -p "$scratch/$name"
  if "$exe" "$scratch/$name" "fuzz/corpus/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -max_len=4096 -print_final_stats=1 -artifact_prefix="$crashes/$name-" >"$scratch/$name.log" 2>&1; then
    echo "fuzz_$name: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name.log" | grep -o '[0-9]*$') runs)"
  else
    echo "fuzz_$name: FAILED" >&2
    tail -n 60 "$scratch/$name.log" >&2
    return 1
  fi
}

names=()
for exe in "$build"/fuzz/fuzz_*; do
  [ -x "$exe" ] && names+=("${exe##*/fuzz_}")
done
if [ ${#names[@]} -eq 0 ]; then
  echo "no fuzz targets in $build/fuzz (configure with -DAXLE_BUILD_FUZZERS=ON)" >&2
  exit 1
fi
status=0
for ((i = 0; i < ${#names[@]}; i += 2)); do
  pids=()
  for name in "${names[@]:i:2}"; do
    run_one "$name" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
done
exit $status
