#!/usr/bin/env python3
"""Export every corpus program with `; run:` lines and run its samples with the NumPy loader.

    python3 python/check_corpus.py [--tfc BIN] [PATH...]     (default PATH: corpus/)

For each `.ir` file with at least one `; run: IN => OUT` line, runs
`tfc export FILE --safetensors TMPDIR` (BIN: `--tfc`, else $TFC_BIN, else
target/release/tfc), loads the export with python/tfc_numpy.py, runs every
sample at the config's default inverse temperature, and compares the output
with OUT token by token after writing both as display strings (`10/4` and
`5/2` are both `5/2`; `(` is `"("`).

`; run: IN => error CODE` lines are checked too, for the codes a loader can
reproduce: E0601 (bad input: the loader must refuse it) and E0604 (the loop
does not halt: the run must fail with LoopDidNotHalt). Any other code counts
as a failure, not a skip.

Prints one line per failure, then `N passed, M failed` (over sample runs),
and exits 1 on any failure, 2 on bad usage. A program that fails to export
or load fails every one of its samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# Small matrices: single-threaded BLAS is far faster (threads spin). Before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:
    import numpy  # noqa: F401
except ImportError:
    print("error: NumPy is not installed; install it with `python3 -m pip install numpy`", file=sys.stderr)
    sys.exit(2)

import tfc_numpy  # noqa: E402

# Expected error codes the exported model can reproduce, and the exception that shows each.
ERRORS = {"E0601": tfc_numpy.BadInput, "E0604": tfc_numpy.LoopDidNotHalt}


def expectations(text: str) -> list[tuple[int, str, str, bool]]:
    """(line, input, output-or-code, is_error) for every `; run:` line, as src/corpus.rs reads them."""
    out = []
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if line.startswith(";;") or not line.startswith(";"):
            continue
        rest = line[1:].strip()
        if not rest.startswith("run:"):
            continue
        body = rest[len("run:"):]
        if "=>" not in body:
            continue
        inp, outp = body.split("=>", 1)
        outp = outp.strip()
        if outp.startswith("error "):
            out.append((i + 1, inp.strip(), outp[len("error "):].strip(), True))
        else:
            out.append((i + 1, inp.strip(), outp, False))
    return out


def collect(paths: list[str]) -> list[str]:
    files = []
    for p in paths:
        if os.path.isdir(p):
            for d, _, names in os.walk(p):
                files += [os.path.join(d, n) for n in names if n.endswith(".ir")]
        elif p.endswith(".ir"):
            files.append(p)
    return sorted(files)


def main(argv: list[str]) -> int:
    args = argv[1:]
    tfc = os.environ.get("TFC_BIN") or os.path.join(ROOT, "target", "release", "tfc")
    if "--tfc" in args:
        i = args.index("--tfc")
        if i + 1 >= len(args):
            print("error: --tfc needs a path", file=sys.stderr)
            return 2
        tfc = args[i + 1]
        del args[i:i + 2]
    paths = args or [os.path.join(ROOT, "corpus")]
    for p in paths:
        if not os.path.exists(p):
            print(f"error: {p} does not exist", file=sys.stderr)
            return 2
    if not os.path.isfile(tfc):
        print(f"error: no tfc binary at {tfc} (build with `cargo build --release`, or pass --tfc / TFC_BIN)",
              file=sys.stderr)
        return 2

    started = time.monotonic()
    passed = failed = programs = 0
    for f in collect(paths):
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                runs = expectations(fh.read())
        except OSError as e:
            print(f"FAIL {f}: cannot read: {e}")
            failed += 1
            continue
        if not runs:
            continue  # a negative program (`; error:` only): nothing to run
        programs += 1
        rel = os.path.relpath(f, ROOT) if f.startswith(ROOT) else f
        with tempfile.TemporaryDirectory(prefix="tfc-export-") as out:
            proc = subprocess.run([tfc, "export", f, "--safetensors", out], capture_output=True, text=True)
            model = None
            if proc.returncode != 0:
                why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                print(f"FAIL {rel}: tfc export failed ({why}); its {len(runs)} sample run(s) count as failed")
            else:
                try:
                    model = tfc_numpy.load(out)
                except tfc_numpy.TfcError as e:
                    print(f"FAIL {rel}: the loader refuses the export: {e}; its {len(runs)} sample run(s) count as failed")
            if model is None:
                failed += len(runs)
                continue
            for line, inp, want, is_error in runs:
                where = f"{rel}:{line}: run `{inp}`"
                tokens = inp.split()
                if is_error:
                    exc = ERRORS.get(want)
                    if exc is None:
                        print(f"FAIL {where}: expected error {want}, which an exported model cannot report")
                        failed += 1
                        continue
                    try:
                        got = tfc_numpy.run(model, tokens)
                    except exc:
                        passed += 1
                        continue
                    except tfc_numpy.TfcError as e:
                        print(f"FAIL {where}: expected error {want}, the loader fails with {type(e).__name__}: {e}")
                        failed += 1
                        continue
                    print(f"FAIL {where}: expected error {want}, the loader gives `{' '.join(got)}`")
                    failed += 1
                    continue
                expected = [tfc_numpy.canonical(w) for w in want.split()]
                if None in expected:
                    print(f"FAIL {where}: cannot read the expected output `{want}`")
                    failed += 1
                    continue
                try:
                    got = tfc_numpy.run(model, tokens)
                except tfc_numpy.TfcError as e:
                    print(f"FAIL {where}: expected `{want}`, the loader fails with {type(e).__name__}: {e}")
                    failed += 1
                    continue
                if got == expected:
                    passed += 1
                else:
                    print(f"FAIL {where}: expected `{' '.join(expected)}`, the loader gives `{' '.join(got)}`")
                    failed += 1
    print(f"{programs} programs with sample runs, exported and run with NumPy {numpy.__version__} in {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
