#!/usr/bin/env bash
# Builds the libFuzzer harness of fuzz/ (swiftc -sanitize=fuzzer,address over the HulyNetCore
# sources) and runs each target for SECONDS (default 20), starting from its committed seed
# corpus fuzz/corpus/<target>/. Fails on any crash, property violation, sanitizer or leak report,
# slow input (-timeout) or memory blow-up (-rss_limit_mb), printing where the input was written.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: json-parse json-scan client-frames server-frames
#
# New inputs the fuzzer finds go to .build/fuzz/corpus/<target>/ (not committed); to keep one as a
# seed, copy it into fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json-parse json-scan client-frames server-frames)

out=.build/fuzz
bin=$out/hulynet-fuzz
mkdir -p "$out/artifacts"

# Rebuild when any source is newer than the binary.
mapfile -t sources < <(find "$PWD/Sources/HulyNetCore" "$PWD/fuzz" -name '*.swift' | sort)
# HulyNetCore records metrics through swift-metrics' CoreMetrics: built here as a module of its
# own, from the package's checkout (SwiftPM resolves it), not instrumented.
metrics_src=.build/checkouts/swift-metrics/Sources/CoreMetrics
[ -d "$metrics_src" ] || swift package resolve >/dev/null
metrics_out=$PWD/$out/coremetrics
if [ ! -f "$metrics_out/libCoreMetrics.a" ]; then
  mkdir -p "$metrics_out"
  (cd "$metrics_out" && swiftc -parse-as-library -module-name CoreMetrics -package-name swift_metrics -O -wmo \
      -emit-module -emit-library -static "$OLDPWD/$metrics_src"/*.swift -o libCoreMetrics.a) \
    || { echo "fuzz: building CoreMetrics failed" >&2; exit 1; }
fi
if [ ! -x "$bin" ] || [ -n "$(find Sources/HulyNetCore fuzz -name '*.swift' -newer "$bin")" ]; then
  echo "fuzz: building $bin"
  # In $out: with -g, swiftc leaves module files in its working directory.
  if ! (cd "$out" && swiftc -parse-as-library -module-name HulyNetFuzz -O -wmo -g -sanitize=fuzzer,address \
      -use-ld=lld -I "$metrics_out" -L "$metrics_out" -lCoreMetrics "${sources[@]}" -o hulynet-fuzz) >"$out/build.log" 2>&1; then
    cat "$out/build.log"
    echo "fuzz: build failed" >&2
    exit 1
  fi
fi

# The Swift runtime's crash backtracer hangs under libFuzzer's and ASan's signal handlers.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=()
total_start=$SECONDS
for target in "${targets[@]}"; do
  [ -d "fuzz/corpus/$target" ] || { echo "fuzz: unknown target $target" >&2; exit 2; }
  work=$out/corpus/$target
  log=$out/$target.log
  mkdir -p "$work"
  rm -f "$out/artifacts/$target-"*
  set +e
  # timeout: a backstop should libFuzzer itself hang (each input is bounded by -timeout).
  HULYNET_FUZZ_TARGET=$target timeout $((seconds + 120)) "$bin" "$work" "fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=8192 \
    -dict=fuzz/hulynet.dict -print_final_stats=1 -artifact_prefix="$out/artifacts/$target-" \
    >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  if [ $rc -eq 0 ] && ! grep -qE '^(==[0-9]+==)?ERROR: ' "$log"; then
    printf 'fuzz: %-14s ok    %9s runs in %ss, %6s exec/s\n' "$target" "${runs:-?}" "$seconds" "${rate:-?}"
    continue
  fi
  failed+=("$target")
  printf 'fuzz: %-14s FAILED (exit %s); log %s\n' "$target" "$rc" "$log"
  grep -E 'property violated|Fatal error|ERROR: |SUMMARY: ' "$log" | head -n 5 | sed 's/^/  /'
  for input in "$out/artifacts/$target-"*; do
    [ -e "$input" ] || { echo "  (no input written: see the log)"; continue; }
    echo "  input written to $input ($(wc -c <"$input") bytes); base64:"
    head -c 3072 "$input" | base64 | sed 's/^/    /'
    echo "  reproduce: SWIFT_BACKTRACE=enable=no HULYNET_FUZZ_TARGET=$target $bin $input"
  done
done
echo "fuzz: ${#targets[@]} targets in $((SECONDS - total_start))s (build excluded)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
