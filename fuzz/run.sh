#!/usr/bin/env bash
# Runs fuzz targets with cargo-fuzz (libFuzzer) for N minutes each, on stable Rust.
#
#   fuzz/run.sh <feedback_decode|http_body|settings_yaml|all> <minutes>
#
# New inputs go to fuzz/work/<target>/ (ignored by git); crashes to fuzz/artifacts/<target>/.
# MERGE=1 then folds the new inputs that reach new edges into the committed
# fuzz/corpus/<target>/ (libFuzzer -merge=1 -use_counters=0: edges only, so it stays small).
# KEEP_GOING=1 runs libFuzzer in fork mode and carries on after a crash, to collect several
# crashes in one run. SANITIZER=address builds with AddressSanitizer (default: none).
# See docs/fuzzing.md.
set -euo pipefail

targets=(feedback_decode http_body settings_yaml)
usage() { echo "usage: $0 <feedback_decode|http_body|settings_yaml|all> <minutes>" >&2; exit 2; }
[[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage
case $1 in
  all) selected=("${targets[@]}") ;;
  feedback_decode | http_body | settings_yaml) selected=("$1") ;;
  *) usage ;;
esac
seconds=$(($2 * 60))

cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# No sanitizer by default: backflow forbids unsafe code, so what the fuzzer hunts is panics
# (failed properties, overflow with debug assertions on, `-a`), and with `-s none` cargo-fuzz
# passes only stable flags. SANITIZER=address needs -Zsanitizer, so RUSTC_BOOTSTRAP=1.
sanitizer=${SANITIZER:-none}
[[ $sanitizer == none ]] || export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-fuzz/target}
flags=(-s "$sanitizer" -a --target-dir "$CARGO_TARGET_DIR")

for target in "${selected[@]}"; do
  work=fuzz/work/$target
  mkdir -p "$work" "fuzz/artifacts/$target"
  more=()
  [[ ${KEEP_GOING:-0} == 1 ]] && more=(-fork=1 -ignore_crashes=1)
  dict=()
  [[ -f fuzz/dict/$target.dict ]] && dict=(-dict="fuzz/dict/$target.dict")
  echo "== $target for $2 min" >&2
  cargo fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" "${more[@]}"
  if [[ ${MERGE:-0} == 1 ]]; then
    cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "$work" -- -merge=1 -use_counters=0
  fi
done
