#!/usr/bin/env bash
# Runs each libFuzzer target of a build made with EVMM_FUZZ=ON for a while (fuzz/README.md).
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]   (no TARGET: every one in fuzz/targets/)
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

failed=()
for t in "${targets[@]}"; do
  bin=$build/fuzz/evmm_fuzz_$t
  work=$build/fuzz/work/$t
  artifacts=$build/fuzz/artifacts/$t
  log=$build/fuzz/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  seeds=(fuzz/corpus/"$t")
  [[ -d fuzz/regressions/$t ]] && seeds+=(fuzz/regressions/"$t")
  echo "fuzz: $t for ${seconds}s (log $log)"
  # -timeout: one input running that long is a hang (the slowest legitimate one seen, an rtc input
  # that lets a day pass before each of 1000 register C reads, takes 3 s under the sanitizers);
  # -rss_limit_mb: a load must not eat the host.
  "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  # The last status line: executions, coverage (cov: edges, ft: features), corpus, exec/s.
  grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 | sed 's/^/fuzz:   /'
  grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" | sed 's/^/fuzz:   /'
  if [[ $rc -ne 0 ]]; then
    reproducer=$(grep -oE '(Test unit|artifact) written to [^ ]+' "$log" | tail -1 | awk '{print $NF}')
    echo "fuzz: $t FAILED (exit $rc); reproducer: ${reproducer:-none written}; see $log" >&2
    grep -E '^==[0-9]+==ERROR|fuzz invariant broken|runtime error|^SUMMARY' "$log" | head -5 | sed 's/^/fuzz:   /' >&2
    failed+=("$t: ${reproducer:-$log}")
  fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzz: ${#failed[@]} target(s) failed:" >&2
  printf 'fuzz:   %s\n' "${failed[@]}" >&2
  echo "fuzz: to keep a reproducer as a regression test: cp it to fuzz/regressions/<target>/ (fuzz/README.md)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
