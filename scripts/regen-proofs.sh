#!/usr/bin/env bash
# Regenerates proofs/corpus/: every solver query `tfc verify` asks for the
# positive corpus programs, one SMT-LIB2 file per query (proofs/README.md).
#
#   scripts/regen-proofs.sh            all of corpus/{tracr,programs,loops}
#   scripts/regen-proofs.sh FILE.ir..  only these programs
#
# Builds the release binary first. Files that fail `tfc check` are skipped;
# a program whose verify runs longer than $REGEN_TIMEOUT seconds (default
# 300) is skipped and gets nothing. A program whose blocks are all proved
# by enumeration asks no solver query and gets no directory.
# Exit status: 0, or 1 when a build fails, a verify is refuted or errors, or
# the number of files written disagrees with what verify reports.
set -euo pipefail
cd "$(dirname "$0")/.."

timeout_s=${REGEN_TIMEOUT:-300}
out_root=proofs/corpus

cargo build --release --quiet
tfc=target/release/tfc

if [ $# -gt 0 ]; then
  files=("$@")
else
  files=()
  for d in corpus/tracr corpus/programs corpus/loops; do
    for f in "$d"/*.ir; do [ -e "$f" ] && files+=("$f"); done
  done
  # A full run rebuilds the tree from nothing, so nothing stale survives.
  rm -rf "$out_root"
fi

# Stems name the directories: two programs with one stem would share one.
dups=$(for f in "${files[@]}"; do basename "$f" .ir; done | sort | uniq -d)
if [ -n "$dups" ]; then
  echo "error: programs share a file stem: $dups" >&2
  exit 1
fi

mkdir -p "$out_root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bad=0 total=0 with=0 skipped=()
printf '%-28s %-9s %6s %9s\n' program verify files time
for f in "${files[@]}"; do
  stem=$(basename "$f" .ir)
  dest=$out_root/$stem
  rm -rf "$dest"
  if ! "$tfc" check "$f" >/dev/null 2>&1; then
    printf '%-28s %-9s %6s %9s\n' "$stem" "no-check" - -
    continue
  fi
  work=$tmp/$stem
  mkdir -p "$work"
  start=$(date +%s.%N)
  set +e
  timeout "$timeout_s" "$tfc" verify "$f" --emit-smt "$work/smt" >"$work/log" 2>&1
  rc=$?
  set -e
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) verdict=proved ;;
    1) verdict=REFUTED; bad=1 ;;
    3) verdict=unknown ;;
    124)
      printf '%-28s %-9s %6s %8ss\n' "$stem" "timeout" - "$secs"
      skipped+=("$stem")
      continue ;;
    *) verdict="error($rc)"; bad=1; sed 's/^/    /' "$work/log" | tail -n 20 >&2 ;;
  esac
  n=0
  [ -d "$work/smt" ] && n=$(find "$work/smt" -name '*.smt2' | wc -l)
  # verify says how many queries it wrote; a difference means two queries
  # shared a file name and one overwrote the other.
  said=$(sed -n 's/^smt: \([0-9]*\) queries written$/\1/p' "$work/log" | tail -n 1)
  if [ "${said:-0}" != "$n" ]; then
    echo "error: $stem: verify reports ${said:-0} queries, $n files were written" >&2
    bad=1
  fi
  if [ "$n" -gt 0 ]; then
    mv "$work/smt" "$dest"
    with=$((with + 1))
  fi
  total=$((total + n))
  printf '%-28s %-9s %6s %8ss\n' "$stem" "$verdict" "$n" "$secs"
done

echo "wrote $total files for $with of ${#files[@]} programs under $out_root/"
if [ ${#skipped[@]} -gt 0 ]; then
  echo "skipped (verify over ${timeout_s} s, nothing written): ${skipped[*]}"
fi
if [ $bad -ne 0 ]; then
  echo "error: a verify was refuted or failed (above); its queries will not check" >&2
  exit 1
fi
