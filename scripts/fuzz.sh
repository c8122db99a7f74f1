#!/usr/bin/env bash
# Runs each libFuzzer target of a build made with EVMM_FUZZ=ON for a while (fuzz/README.md).
# Usage: [FUZZ_JOBS=N] scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]   (no TARGET: every one in fuzz/targets/)
# New inputs collect in BUILD_DIR/fuzz/work/<target>/, which later runs start from; the seeds in
# fuzz/corpus/ and fuzz/regressions/ are read, never written. A crash, leak, timeout or broken
# invariant stops that target: its reproducer is written to BUILD_DIR/fuzz/artifacts/<target>/,
# the other targets still run, and the script exits 1 naming every reproducer.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/targets/*_fuzz.cpp; do t=${f##*/}; targets+=("${t%_fuzz.cpp}"); done
fi

# Runs one target; its summary lines go to BUILD_DIR/fuzz/logs/<target>.summary, printed in order
# once every target has ended.
run_target() {
  local t=$1 bin=$build/fuzz/evmm_fuzz_$1 work=$build/fuzz/work/$1 artifacts=$build/fuzz/artifacts/$1
  local log=$build/fuzz/logs/$1.log summary=$build/fuzz/logs/$1.summary
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  local seeds=(fuzz/corpus/"$t")
  [[ -d fuzz/regressions/$t ]] && seeds+=(fuzz/regressions/"$t")
  # -timeout: one input running that long is a hang (the slowest legitimate one seen, an rtc input
  # that lets a day pass before each of 1000 register C reads, takes 3 s under the sanitizers);
  # -rss_limit_mb: a load must not eat the host.
  "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" >"$log" 2>&1
  local rc=$?
  {
    echo "fuzz: $t ran ${seconds}s (log $log)"
    # The last status line: executions, coverage (cov: edges, ft: features), corpus, exec/s.
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 | sed 's/^/fuzz:   /'
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" | sed 's/^/fuzz:   /'
  } >"$summary"
  if [[ $rc -ne 0 ]]; then
    local reproducer
    reproducer=$(grep -oE '(Test unit|artifact) written to [^ ]+' "$log" | tail -1 | awk '{print $NF}')
    {
      echo "fuzz: $t FAILED (exit $rc); reproducer: ${reproducer:-none written}; see $log"
      grep -E '^==[0-9]+==ERROR|fuzz invariant broken|runtime error|^SUMMARY' "$log" | head -5 | sed 's/^/fuzz:   /'
    } >>"$summary"
    echo "$t: ${reproducer:-$log}" >"$build/fuzz/logs/$t.failed"
  fi
  return $rc
}

# FUZZ_JOBS targets at a time (default: one per core), so CI's fuzz stage takes its time divided by
# the cores; each target is a single libFuzzer process, as before.
jobs=${FUZZ_JOBS:-$(nproc)}
rm -f "$build"/fuzz/logs/*.failed "$build"/fuzz/logs/*.summary
running=0
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${seconds}s"
  run_target "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true
failed=()
for t in "${targets[@]}"; do
  cat "$build/fuzz/logs/$t.summary" 2>/dev/null || echo "fuzz: $t left no summary" >&2
  if [[ -f $build/fuzz/logs/$t.failed ]]; then failed+=("$(cat "$build/fuzz/logs/$t.failed")"); fi
  [[ -f $build/fuzz/logs/$t.summary ]] || failed+=("$t: no summary")
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzz: ${#failed[@]} target(s) failed:" >&2
  printf 'fuzz:   %s\n' "${failed[@]}" >&2
  echo "fuzz: to keep a reproducer as a regression test: cp it to fuzz/regressions/<target>/ (fuzz/README.md)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
