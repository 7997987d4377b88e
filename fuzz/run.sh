#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and reports what each found. Not part of
# .ci/run: cargo fuzz needs the nightly toolchain (`rustup toolchain list`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Crashes are saved under fuzz/artifacts/TARGET/; reproduce one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and turn it into a regression test in the crate it came from.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filename metadata archive python)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
python3 seeds.py corpus
mkdir -p logs
for t in "${targets[@]}"; do
  echo "==> $t for ${secs}s" >&2
  status=0
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 \
    -max_len=262144 -print_final_stats=1 > "logs/$t.log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 || true)
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  echo "$t: ${runs} executions, ${cov:-cov: ?}, exit ${status}, ${crashes} artifact(s) in fuzz/artifacts/$t"
done
