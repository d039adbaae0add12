#!/usr/bin/env bash
# Re-checks every SMT-LIB2 file under proofs/ (or under the given files and
# directories) with the z3 and cvc5 command-line solvers, independently of
# the Z3 library tfc links. Each file states its answer in a
# `; expected: sat|unsat` comment line; the first line a solver prints must
# equal it.
#
#   scripts/check-proofs.sh [-v] [PATH...]
#
# Prints one line per mismatch (file, solver, what it said), with -v also
# one line per check with its time, then `N passed, M failed`, counted per
# file x solver. Exit status: 0 when every check passed; 1 on any mismatch
# or when there are no files; 2 when a solver is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

verbose=0
if [ "${1:-}" = -v ]; then verbose=1; shift; fi
[ $# -gt 0 ] || set -- proofs
limit=${PROOF_TIMEOUT:-60}

for s in z3 cvc5; do
  if ! command -v "$s" >/dev/null 2>&1; then
    echo "error: \`$s\` is not on PATH; install it: apt-get install z3 cvc5 (.ci/run does)" >&2
    exit 2
  fi
done

mapfile -t files < <(find "$@" -type f -name '*.smt2' | LC_ALL=C sort)

passed=0 failed=0
declare -A total=([z3]=0 [cvc5]=0)
for f in "${files[@]}"; do
  expected=$(sed -n 's/^; expected: *\([a-z]*\).*/\1/p' "$f" | head -n 1)
  for s in z3 cvc5; do
    if [ -z "$expected" ]; then
      echo "MISMATCH $f $s: no \`; expected:\` line"
      failed=$((failed + 1))
      continue
    fi
    case $s in
      z3) cmd=(z3 "-T:$limit" "$f") ;;
      cvc5) cmd=(cvc5 "--tlimit=$((limit * 1000))" "$f") ;;
    esac
    start=$(date +%s.%N)
    # The outer timeout guards against a solver that ignores its own limit.
    out=$(timeout $((limit + 30)) "${cmd[@]}" 2>&1)
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    total[$s]=$(awk -v a="${total[$s]}" -v b="$secs" 'BEGIN { printf "%.2f", a + b }')
    got=$(printf '%s\n' "$out" | head -n 1)
    if [ $rc -eq 124 ]; then got="killed after $((limit + 30)) s"; fi
    [ -n "$got" ] || got="(no output, exit $rc)"
    if [ "$got" = "$expected" ]; then
      passed=$((passed + 1))
      [ $verbose -eq 1 ] && echo "ok $f $s $got ${secs}s"
    else
      echo "MISMATCH $f $s: expected $expected, got: $got"
      failed=$((failed + 1))
    fi
  done
done

echo "checked ${#files[@]} files with z3 (${total[z3]} s) and cvc5 (${total[cvc5]} s)"
if [ ${#files[@]} -eq 0 ]; then
  echo "error: no .smt2 files under $*" >&2
fi
echo "$passed passed, $failed failed"
[ ${#files[@]} -gt 0 ] && [ $failed -eq 0 ]
