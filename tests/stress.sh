#!/usr/bin/env bash
# Repeats the integration and system tests under stress and prints how often
# each test failed: a test that depends on how fast the CPU is fails here.
#
# Modes:
#   hog     every CPU kept busy by a spinning process at normal priority while
#           the tests run (ctest -j <CPUs>);
#   pinned  the tests (and every server they start) pinned to CPU 0 with
#           taskset (ctest -j 2, so two tests share the one CPU).
#
# Usage: tests/stress.sh [-n N] [-m hog|pinned|both] [-L LABELS] [-E REGEX] [-d BUILD_DIR]
#   -n N       repetitions of each mode (default 5)
#   -m MODE    hog, pinned or both (default both)
#   -L LABELS  ctest label regex (default "integration|system")
#   -E REGEX   tests to leave out (default: none)
#   -d DIR     build directory made by tests/run.sh (default build)
# The environment passes through, e.g. ONEDNN_MAX_CPU_ISA=AVX2 tests/stress.sh.
# Exits 1 when any test failed in any run. Each run's ctest log is kept in
# $STRESS_LOG_DIR (default: a new directory under /tmp, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5
modes=(hog pinned)
labels="integration|system"
exclude=""
build=build
while getopts "n:m:L:E:d:h" opt; do
  case $opt in
    n) reps=$OPTARG ;;
    m) case $OPTARG in
         both) modes=(hog pinned) ;;
         hog | pinned) modes=("$OPTARG") ;;
         *) echo "tests/stress.sh: -m takes hog, pinned or both, not '$OPTARG'" >&2; exit 2 ;;
       esac ;;
    L) labels=$OPTARG ;;
    E) exclude=$OPTARG ;;
    d) build=$OPTARG ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; [ "$opt" = h ] && exit 0 || exit 2 ;;
  esac
done
if ! [[ $reps =~ ^[1-9][0-9]*$ ]]; then
  echo "tests/stress.sh: -n takes a positive whole number, not '$reps'" >&2
  exit 2
fi
if [ ! -f "$build/CTestTestfile.cmake" ]; then
  echo "tests/stress.sh: no tests in $build: run tests/run.sh first (it installs and builds)" >&2
  exit 2
fi
build_log=$(mktemp)
cmake --build "$build" -j "$(nproc)" >"$build_log" 2>&1 || { cat "$build_log" >&2; exit 1; }
rm -f "$build_log"
# Absolute: ctest writes its JUnit report relative to the build directory.
logs=$(realpath -m "${STRESS_LOG_DIR:-$(mktemp -d /tmp/sepconv_stress_XXXXXX)}")
mkdir -p "$logs"
rm -f "$logs"/hog-*.xml "$logs"/pinned-*.xml  # the table counts this invocation's runs only
cpus=$(nproc)

hogs=()
stop_hogs() {
  if [ ${#hogs[@]} -gt 0 ]; then
    kill "${hogs[@]}" 2>/dev/null || true
    wait "${hogs[@]}" 2>/dev/null || true
  fi
  hogs=()
}
trap stop_hogs EXIT

select_args=(-L "$labels")
[ -n "$exclude" ] && select_args+=(-E "$exclude")

# One ctest run; its JUnit report goes to $1.
run_once() {
  local mode=$1 junit=$2 log=$3
  local -a ctest_cmd=(ctest --test-dir "$build" "${select_args[@]}" --output-on-failure
    --no-tests=error --output-junit "$junit")
  case $mode in
    hog)
      for ((i = 0; i < cpus; ++i)); do
        bash -c 'while :; do :; done' &
        hogs+=($!)
      done
      "${ctest_cmd[@]}" -j "$cpus" >"$log" 2>&1 || true
      stop_hogs ;;
    pinned)
      taskset -c 0 "${ctest_cmd[@]}" -j 2 >"$log" 2>&1 || true ;;
  esac
}

# The ISA oneDNN dispatches (with ONEDNN_MAX_CPU_ISA as given): the engine
# benchmark's JSON context, from one short case.
isa=$("$build"/tests/bench/engine_bench --benchmark_filter='sepconv/1x32-64x112/nhwc/real_time' \
  --benchmark_min_time=0.001 --benchmark_format=json 2>/dev/null |
  grep -o '"onednn_isa": "[^"]*"' | head -1 | cut -d'"' -f4 || true)
echo "tests/stress.sh: $reps run(s) of each of: ${modes[*]}; labels '$labels'${exclude:+, without '$exclude'};" \
  "$cpus CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs));" \
  "oneDNN ISA ${isa:-not reported}; ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-unset}"
for mode in "${modes[@]}"; do
  for ((rep = 1; rep <= reps; ++rep)); do
    start=$(date +%s)
    run_once "$mode" "$logs/$mode-$rep.xml" "$logs/$mode-$rep.log"
    echo "  $mode run $rep/$reps: $(grep -E '^[0-9]+% tests passed' "$logs/$mode-$rep.log" || echo 'no summary')" \
      "($(($(date +%s) - start)) s)"
  done
done

# The table: per test, failures / runs in each mode.
status=0
/usr/bin/python3 - "$logs" "$reps" "${modes[@]}" <<'EOF' || status=$?
import glob, os, sys
import xml.etree.ElementTree as ET

logs, modes, reps = sys.argv[1], sys.argv[3:], int(sys.argv[2])
runs, fails = {}, {}
for mode in modes:
    reports = sorted(glob.glob(os.path.join(logs, f"{mode}-*.xml")))
    if len(reports) != reps:  # a ctest that crashed or selected nothing
        sys.exit(f"tests/stress.sh: {len(reports)} JUnit reports for {reps} {mode} runs in {logs}")
    for path in reports:
        for case in ET.parse(path).getroot().iter("testcase"):
            name = case.get("name").split("  #")[0]
            key = (name, mode)
            runs[key] = runs.get(key, 0) + 1
            bad = case.find("failure") is not None or case.find("error") is not None
            if case.get("status") in ("fail", "failed", "notrun"):
                bad = True
            fails[key] = fails.get(key, 0) + int(bad)
names = sorted({n for n, _ in runs})
if not names:
    sys.exit("tests/stress.sh: no test ran")
width = max([len(n) for n in names] + [4])
print(f"\n{'test':<{width}}  " + "  ".join(f"{m + ' failed/runs':>18}" for m in modes))
for n in names:
    cells = [f"{fails.get((n, m), 0)}/{runs.get((n, m), 0)}" for m in modes]
    print(f"{n:<{width}}  " + "  ".join(f"{c:>18}" for c in cells))
total = {m: sum(fails.get((n, m), 0) for n in names) for m in modes}
print(f"{'total':<{width}}  " + "  ".join(
    f"{str(total[m]) + '/' + str(sum(runs.get((n, m), 0) for n in names)):>18}" for m in modes))
sys.exit(1 if any(total.values()) else 0)
EOF
echo "tests/stress.sh: logs in $logs"
exit $status
