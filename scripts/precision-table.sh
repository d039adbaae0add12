#!/bin/sh
# Regenerates the bf16 table in docs/PRECISION.md: for each Tracr-library
# program of corpus/tracr, the longest length proved (analytic) and the
# first length observed to fail, in bf16, with the default lowering at
# beta 100 and with `--target bf16`, at max_len 40 where the program's
# meaning does not depend on max_len (else at its corpus max_len).
# Only the text between the BEGIN/END markers is rewritten.
#
#   scripts/precision-table.sh           rewrite docs/PRECISION.md
#   scripts/precision-table.sh --check   exit 1 if it is out of date
set -eu
cd "$(dirname "$0")/.."
if [ -z "${TFC:-}" ]; then
    cargo build --release --quiet --bin tfc
    TFC=target/release/tfc
fi
export TFC
exec python3 - "$@" <<'PY'
import json, os, subprocess, sys

TFC = os.environ["TFC"]
DOC = "docs/PRECISION.md"
BEGIN, END = "<!-- BEGIN scripts/precision-table.sh -->", "<!-- END scripts/precision-table.sh -->"
check = sys.argv[1:] == ["--check"]
LONG = 40
PROGRAMS = ["length", "reverse", "hist", "sort_unique", "sort", "sort_freq", "frac_prevs", "pair_balance",
            "shuffle_dyck", "shuffle_dyck2", "shift_by", "detect_pattern", "count_less_freq", "count",
            "nary_sequencemap", "sort_unique_n10", "sort_freq_n10", "shuffle_dyck2_n10"]

def report(path, max_len, target):
    cmd = [TFC, "precision", path, "--formats", "bf16,f16,f32", "--random", "10", "--json"]
    if max_len:
        cmd += ["--max-len", str(max_len)]
    if target:
        cmd += ["--target", "bf16"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)

def cell(r, fmt):
    f = next(x for x in r["formats"] if x["format"] == fmt)
    obs = f["observed_first_failure"]
    return f"{f['analytic_max_len']} / {obs['len'] if obs else 'none'}"

rows = ["| program | max_len | default (β 100): bf16 | f16 | f32 | `--target bf16`: β | bf16 |",
        "|---|--:|--:|--:|--:|--:|--:|"]
for name in PROGRAMS:
    path = f"corpus/tracr/{name}.ir"
    d, n = report(path, LONG, False), LONG
    if d is None:
        d, n = report(path, None, False), None
    t = report(path, n, True)
    rows.append(f"| {name} | {d['max_len']} | {cell(d, 'bf16')} | {cell(d, 'f16')} | {cell(d, 'f32')} | {t['beta']:g} | {cell(t, 'bf16')} |")
table = "\n".join(rows)

doc = open(DOC).read()
a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
new = doc[:a] + "\n\n" + table + "\n\n" + doc[b:]
if check:
    sys.exit(0 if new == doc else 1)
open(DOC, "w").write(new)
PY
