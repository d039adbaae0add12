#!/bin/sh
# Regenerates the side-by-side size table in docs/SIZES.md: tfc's compiled
# sizes without and with the optimizer (`tfc compile FILE --stats --json
# -O0`, and at the default -O1) next to Tracr's.
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

def show_vocab(v):
    if len(v) > 3 and all(x.isdigit() for x in v) and [int(x) for x in v] == list(range(int(v[0]), int(v[0]) + len(v))):
        return "{%s..%s}" % (v[0], v[-1])
    return "{" + ",".join(v) + "}"

num = lambda x: f"{x:,}"
ratio = lambda t, f: f"{t / f:.1f}×"
below = lambda t, f: f"{100 * (1 - f / t):.0f}% below"
KEYS = ("layers", "heads", "mlps", "d_model", "params")
group = lambda s: f"{s['layers']} | {s['heads']} | {s['mlps']} | {s['d_model']} | {num(s['params'])}"

lines = [
    "| program | vocab | n | Tracr layers | heads | MLPs | d_model | params "
    "| -O0 layers | heads | MLPs | d_model | params "
    "| -O1 layers | heads | MLPs | d_model | params | params Tracr/-O1 |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
]
tot = {k: {"t": 0, "o0": 0, "o1": 0} for k in ("layers", "d_model", "params")}
for r in rows:
    path = f"corpus/tracr/{r['file']}.ir"
    s0, s1 = stats(path, "-O0"), stats(path)
    for k in tot:
        tot[k]["t"] += r[k]; tot[k]["o0"] += s0[k]; tot[k]["o1"] += s1[k]
    lines.append(
        f"| {r['anchor']} | {show_vocab(r['vocab'])} | {r['n']} "
        f"| {group(r)} | {group(s0)} | {group(s1)} | {ratio(r['params'], s1['params'])} |"
    )
lines.append(
    f"| **total (18 programs)** | | | {tot['layers']['t']} | | | {tot['d_model']['t']} | {num(tot['params']['t'])} "
    f"| {tot['layers']['o0']} | | | {tot['d_model']['o0']} | {num(tot['params']['o0'])} "
    f"| {tot['layers']['o1']} | | | {tot['d_model']['o1']} | {num(tot['params']['o1'])} "
    f"| {ratio(tot['params']['t'], tot['params']['o1'])} |"
)
lines += [
    "",
    f"Summed over the 18 rows, against Tracr: residual width -O0 {below(tot['d_model']['t'], tot['d_model']['o0'])}, "
    f"-O1 {below(tot['d_model']['t'], tot['d_model']['o1'])}; parameters -O0 {below(tot['params']['t'], tot['params']['o0'])}, "
    f"-O1 {below(tot['params']['t'], tot['params']['o1'])}; layers {tot['layers']['t']} / {tot['layers']['o0']} / {tot['layers']['o1']}.",
]
g0, g1 = stats("benches/programs/sort_v30_n40.ir", "-O0"), stats("benches/programs/sort_v30_n40.ir")
growth = [
    "",
    "Growth point (ANCHORS gives only Tracr's d_model and params here):",
    "",
    "| program | vocab | n | Tracr d_model | params | -O0 layers | heads | MLPs | d_model | params "
    "| -O1 layers | heads | MLPs | d_model | params | params Tracr/-O1 |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    f"| sort | {{1..30}} | 40 | 1,345 | 29.2 M | {group(g0)} | {group(g1)} | {ratio(29.2e6, g1['params'])} |",
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
