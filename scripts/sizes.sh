#!/bin/sh
# Regenerates the side-by-side size table in docs/SIZES.md: tfc's compiled
# sizes (`tfc compile FILE --stats --json`) next to Tracr's.
#
# Tracr's figures are read from the table in tests/sizes.rs (hard-coded
# there from ../shared/ANCHORS.md, and asserted against tfc by
# `cargo test --test sizes`), so there is one copy of them in the repo.
# Only the text between the BEGIN/END markers of docs/SIZES.md is
# rewritten; the prose around it is kept.
#
#   scripts/sizes.sh           rewrite docs/SIZES.md
#   scripts/sizes.sh --check   exit 1 if docs/SIZES.md is out of date
#   TFC=path/to/tfc scripts/sizes.sh   use that binary instead of building
#
# Needs cargo and python3. The growth row compiles sort at vocab 30, n 40
# (benches/programs/sort_v30_n40.ir), which takes seconds.
set -eu
cd "$(dirname "$0")/.."
if [ -z "${TFC:-}" ]; then
    cargo build --release --quiet --bin tfc
    TFC=target/release/tfc
fi
export TFC
exec python3 - "$@" <<'PY'
import json, os, re, subprocess, sys

TFC = os.environ["TFC"]
DOC = "docs/SIZES.md"
BEGIN, END = "<!-- BEGIN scripts/sizes.sh -->", "<!-- END scripts/sizes.sh -->"
check = sys.argv[1:] == ["--check"]
if sys.argv[1:] and not check:
    sys.exit("usage: scripts/sizes.sh [--check]")

src = open("tests/sizes.rs", encoding="utf-8").read()
vocabs = {
    name: re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    for name, body in re.findall(r"const (\w+): &\[&str\] = &\[(.*?)\];", src)
}
field = lambda key, text: re.search(r"\b" + key + r':\s*("(?:[^"\\]|\\.)*"|[\w]+)', text).group(1)
rows = []
for text in re.findall(r"Tracr \{ (file: .*?) \},", src):
    rows.append({
        "file": json.loads(field("file", text)),
        "anchor": json.loads(field("anchor", text)),
        "vocab": vocabs[field("vocab", text)],
        "n": int(field("n", text)),
        **{k: int(field(k, text).replace("_", "")) for k in ("layers", "heads", "mlps", "d_model", "params")},
    })
if len(rows) != 18:
    sys.exit(f"expected the 18 rows of ANCHORS' table in tests/sizes.rs, found {len(rows)}")

def stats(path, *flags):
    out = subprocess.run([TFC, "compile", path, "--stats", "--json", *flags], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)

def stats_o0(path):
    """The unoptimized figures (what the corpus `; stats:` lines and
    tests/sizes.rs measure), or None if this tfc has no -O0."""
    try:
        return stats(path, "-O0")
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return None

def show_vocab(v):
    if len(v) > 3 and all(x.isdigit() for x in v) and [int(x) for x in v] == list(range(int(v[0]), int(v[0]) + len(v))):
        return "{%s..%s}" % (v[0], v[-1])
    return "{" + ",".join(v) + "}"

num = lambda x: f"{x:,}"
ratio = lambda t, f: f"{t / f:.1f}×"

lines = [
    "| program | vocab | n | Tracr layers | heads | MLPs | d_model | params | tfc layers | heads | MLPs | d_model | params | params Tracr/tfc |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
]
tot = {"t_d": 0, "t_p": 0, "f_d": 0, "f_p": 0, "t_l": 0, "f_l": 0}
unoptimized = []
for r in rows:
    s = stats(f"corpus/tracr/{r['file']}.ir")
    s0 = stats_o0(f"corpus/tracr/{r['file']}.ir")
    keys = ("layers", "heads", "mlps", "d_model", "params")
    if s0 is not None and any(s0[k] != s[k] for k in keys):
        unoptimized.append(
            f"{r['anchor']} (n = {r['n']}): layers {s0['layers']}, heads {s0['heads']}, MLPs {s0['mlps']}, "
            f"d_model {s0['d_model']}, params {num(s0['params'])}"
        )
    tot["t_d"] += r["d_model"]; tot["t_p"] += r["params"]; tot["t_l"] += r["layers"]
    tot["f_d"] += s["d_model"]; tot["f_p"] += s["params"]; tot["f_l"] += s["layers"]
    lines.append(
        f"| {r['anchor']} | {show_vocab(r['vocab'])} | {r['n']} "
        f"| {r['layers']} | {r['heads']} | {r['mlps']} | {r['d_model']} | {num(r['params'])} "
        f"| {s['layers']} | {s['heads']} | {s['mlps']} | {s['d_model']} | {num(s['params'])} "
        f"| {ratio(r['params'], s['params'])} |"
    )
lines.append(
    f"| **total (18 programs)** | | | {tot['t_l']} | | | {tot['t_d']} | {num(tot['t_p'])} "
    f"| {tot['f_l']} | | | {tot['f_d']} | {num(tot['f_p'])} | {ratio(tot['t_p'], tot['f_p'])} |"
)
if unoptimized:
    lines += [
        "",
        "tfc's columns are `tfc compile` at its default optimization. Without the optimizer "
        "(`-O0`, which is what the corpus `; stats:` lines and `tests/sizes.rs` measure) these rows differ: "
        + "; ".join(unoptimized) + ".",
    ]
g = stats("benches/programs/sort_v30_n40.ir")
growth = [
    "",
    "Growth point (ANCHORS gives only Tracr's d_model and params here):",
    "",
    "| program | vocab | n | Tracr d_model | params | tfc layers | heads | MLPs | d_model | params | params Tracr/tfc |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    f"| sort | {{1..30}} | 40 | 1,345 | 29.2 M | {g['layers']} | {g['heads']} | {g['mlps']} | {num(g['d_model'])} "
    f"| {num(g['params'])} | {ratio(29.2e6, g['params'])} |",
]
block = "\n".join([BEGIN, "", *lines, *growth, "", END])

try:
    doc = open(DOC, encoding="utf-8").read()
except FileNotFoundError:
    doc = f"# Compiled sizes: tfc and Tracr\n\n{BEGIN}\n{END}\n"
if BEGIN not in doc or END not in doc:
    sys.exit(f"{DOC}: the markers {BEGIN} / {END} are missing")
head, rest = doc.split(BEGIN, 1)
_, tail = rest.split(END, 1)
new = head + block + tail
if check:
    if new != doc:
        sys.exit(f"{DOC} is out of date: run scripts/sizes.sh")
    print(f"{DOC} is up to date")
else:
    open(DOC, "w", encoding="utf-8").write(new)
    print(f"wrote {DOC}")
PY
