#!/usr/bin/env bash
# Regenerates the corpus's solver queries under proofs/ (proofs/README.md):
#
#   proofs/corpus/<stem>/  every query `tfc verify FILE` asks, as it asks it
#   proofs/forced/<stem>/  every query `tfc verify FILE --enum-limit 1` asks:
#                          the checks that have a solver encoding (loop
#                          commits) asked of the solver instead of enumerated
#
#   scripts/regen-proofs.sh            all of corpus/{tracr,programs,loops}
#   scripts/regen-proofs.sh FILE.ir..  only these programs
#
# Builds the release binary first. Files that fail `tfc check` are skipped.
# A verify that runs longer than $REGEN_TIMEOUT seconds (default 300) is
# skipped and writes nothing. A program that asks no query gets no
# directory. The differential run (evidence) asks no solver query, so it is
# turned off here to keep regeneration fast.
#
# Exit status: 0, or 1 when the build fails, two programs share a stem, a
# verify is refuted or fails, or the files written disagree in number with
# the queries verify reports.
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s=${REGEN_TIMEOUT:-300}

cargo build --release --quiet
tfc=target/release/tfc

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=()
  for d in corpus/tracr corpus/programs corpus/loops; do
    for f in "$d"/*.ir; do [ -e "$f" ] && files+=("$f"); done
  done
  # A full run rebuilds both trees from nothing, so nothing stale survives.
  rm -rf proofs/corpus proofs/forced
fi

# Stems name the directories: two programs with one stem would share one.
dups=$(for f in "${files[@]}"; do basename "$f" .ir; done | sort | uniq -d)
if [ -n "$dups" ]; then
  echo "error: programs share a file stem: $dups" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0
skipped=()
declare -A files_in=([corpus]=0 [forced]=0) programs_in=([corpus]=0 [forced]=0)

# run_pass TREE FILE STEM [VERIFY ARGS...]: verifies into proofs/TREE/STEM/
# and sets `cell` to "<files> <verdict> <seconds>s".
run_pass() {
  local tree=$1 f=$2 stem=$3
  shift 3
  local dest=proofs/$tree/$stem work=$tmp/$tree.$stem start rc secs verdict n said
  rm -rf "$dest"
  mkdir -p "$work"
  start=$(date +%s.%N)
  set +e
  timeout "$timeout_s" "$tfc" verify "$f" --evidence-inputs 0 --emit-smt "$work/smt" "$@" >"$work/log" 2>&1
  rc=$?
  set -e
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) verdict=proved ;;
    3) verdict=unknown ;;
    124)
      skipped+=("$tree/$stem")
      cell="- timeout ${secs}s"
      return ;;
    1) verdict=REFUTED; bad=1; sed 's/^/    /' "$work/log" >&2 ;;
    *) verdict="error($rc)"; bad=1; sed 's/^/    /' "$work/log" | tail -n 20 >&2 ;;
  esac
  n=0
  [ -d "$work/smt" ] && n=$(find "$work/smt" -name '*.smt2' | wc -l)
  # A difference means two queries shared a file name and one overwrote the other.
  said=$(sed -n 's/^smt: \([0-9]*\) queries written$/\1/p' "$work/log" | tail -n 1)
  if [ "${said:-0}" != "$n" ]; then
    echo "error: $tree/$stem: verify reports ${said:-0} queries, $n files were written" >&2
    bad=1
  fi
  if [ "$n" -gt 0 ]; then
    mkdir -p "proofs/$tree"
    mv "$work/smt" "$dest"
    files_in[$tree]=$((files_in[$tree] + n))
    programs_in[$tree]=$((programs_in[$tree] + 1))
  fi
  cell="$n $verdict ${secs}s"
}

row() { printf '%-26s %6s %-8s %8s   %6s %-8s %8s\n' "$@"; }
row program corpus verify time forced verify time
for f in "${files[@]}"; do
  stem=$(basename "$f" .ir)
  if ! "$tfc" check "$f" >/dev/null 2>&1; then
    rm -rf "proofs/corpus/$stem" "proofs/forced/$stem"
    row "$stem" - no-check - - no-check -
    continue
  fi
  run_pass corpus "$f" "$stem"
  a=$cell
  run_pass forced "$f" "$stem" --enum-limit 1
  # shellcheck disable=SC2086
  row "$stem" $a $cell
done

echo "proofs/corpus: ${files_in[corpus]} files from ${programs_in[corpus]} programs (of ${#files[@]})"
echo "proofs/forced: ${files_in[forced]} files from ${programs_in[forced]} programs (of ${#files[@]})"
if [ ${#skipped[@]} -gt 0 ]; then
  echo "skipped, verify over ${timeout_s} s, nothing written: ${skipped[*]}"
fi
if [ $bad -ne 0 ]; then
  echo "error: a verify was refuted or failed (above); its queries will not check" >&2
  exit 1
fi
