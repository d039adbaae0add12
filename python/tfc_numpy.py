#!/usr/bin/env python3
"""Run a model exported by `tfc export prog.ir --safetensors OUT_DIR`, with NumPy only.

This is the float forward pass of docs/MODEL.md ("Meaning: the forward
pass"), in float32 throughout, with softmax attention:

    x[p]  = token_embed[row(t_p)] + pos_embed[p]      BOS: row 0, position 0
    per layer:
        x += sum over heads of softmax(beta * (x W_q)(x W_k)^T, causal mask) (x W_v) W_o
        x += sum over blocks of relu(x W_in + b_in) W_out + b_out
    loops: the body's layers run again (fixed count, or until x[:, halt_dim] > 0.5
           at every non-BOS position, checked before each run)
    readout at every non-BOS position: argmax (cat) or nearest value (num)

The safetensors file is parsed by hand: an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}}, then raw
little-endian data.

    python3 python/tfc_numpy.py OUT_DIR 3 1 2        # prints the output tokens

API: `model = load(dir)`; `run(model, ["3", "1", "2"]) -> ["1", "2", "3"]`.
Tokens and outputs are the display strings the config lists (`5/2`, `a`,
`"("`); `canonical` turns any way of writing a value the CLI accepts
(`2.5`, `10/4`, `(`) into its display string.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from fractions import Fraction

if __name__ == "__main__":
    # The matrices are small (a few dozen positions): BLAS threads only
    # spin, and on a busy or CPU-limited machine they make each product
    # ~50x slower. Must be set before NumPy is imported.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np

__all__ = [
    "TfcError", "BadInput", "LoopDidNotHalt", "NonFinite", "BadModel",
    "Model", "load", "run", "canonical",
]


class TfcError(Exception):
    """Any failure of the loader or of a run."""


class BadModel(TfcError):
    """The export directory is missing, malformed, or inconsistent."""


class BadInput(TfcError):
    """The input is empty, too long, has a token outside the vocabulary, or repeats a
    token when the config says `distinct_tokens` (tfc's E0601)."""


class LoopDidNotHalt(TfcError):
    """An `until` loop ran `max` times without halting (tfc's E0604)."""


class NonFinite(TfcError):
    """A readout dimension is NaN or infinite."""


# ---------------------------------------------------------------------------
# Values as text: the same rules as ir/src/value.rs (parse_value, Display).

# ir/src/value.rs RESERVED_WORDS: never bare symbols.
RESERVED_WORDS = {
    "table", "default", "in", "true", "false", "x", "y", "k", "q", "min", "max", "abs", "div",
    "mod", "if", "cat", "num",
}


def _is_bare_symbol(s: str) -> bool:
    if not s or not (s[0].isascii() and (s[0].isalpha() or s[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c == "_") for c in s) and s not in RESERVED_WORDS


def _parse_rat(t: str) -> Fraction | None:
    neg = t.startswith("-")
    body = t[1:] if neg else t
    if not body:
        return None
    digits = lambda s: s != "" and s.isascii() and s.isdigit()  # noqa: E731
    if "/" in body:
        n, d = body.split("/", 1)
        if not (digits(n) and digits(d)) or int(d) == 0:
            return None
        r = Fraction(int(n), int(d))
    elif "." in body:
        i, f = body.split(".", 1)
        if not (digits(i) and digits(f)):
            return None
        r = Fraction(int(i + f), 10 ** len(f))
    elif digits(body):
        r = Fraction(int(body))
    else:
        return None
    return -r if neg else r


def _unquote(body: str) -> str | None:
    out, it = [], iter(body)
    for c in it:
        if c == "\\":
            e = next(it, None)
            m = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}.get(e)
            if m is None:
                return None
            out.append(m)
        elif c == '"':
            return None
        else:
            out.append(c)
    return "".join(out)


def _show_rat(r: Fraction) -> str:
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


def _show_sym(s: str) -> str:
    if _is_bare_symbol(s):
        return s
    esc = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}
    return '"' + "".join(esc.get(c, c) for c in s) + '"'


def canonical(word: str) -> str | None:
    """The display string of a value written as `word` (None if unreadable).

    `10/4` and `2.5` give `5/2`; `(` and `"("` give `"("`; `a` gives `a`.
    """
    t = word.strip()
    if not t:
        return None
    r = _parse_rat(t)
    if r is not None:
        return _show_rat(r)
    if len(t) >= 2 and t.startswith('"') and t.endswith('"'):
        s = _unquote(t[1:-1])
        return None if s is None else _show_sym(s)
    if _is_bare_symbol(t) or all(not c.isspace() and c not in ',"' for c in t):
        return _show_sym(t)
    return None


# ---------------------------------------------------------------------------
# Loading.

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file, as float32 arrays."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise BadModel(f"cannot read {path}: {e}") from None
    if len(blob) < 8:
        raise BadModel(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise BadModel(f"{path}: header length {n} is past the end of the file")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadModel(f"{path}: bad header: {e}") from None
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            start, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise BadModel(f"{path}: tensor {name}: bad header entry ({e!r})") from None
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= start <= end <= len(data)) or end - start != count * np.dtype(dtype).itemsize:
            raise BadModel(f"{path}: tensor {name}: offsets {start}..{end} do not fit shape {list(shape)}")
        arr = np.frombuffer(data[start:end], dtype=dtype, count=count).reshape(shape)
        out[name] = arr.astype(np.float32)
    return out


class Model:
    """An exported model: the config plus its tensors as float32 arrays."""

    def __init__(self, config: dict, tensors: dict[str, np.ndarray]):
        self.config = config
        self.tensors = tensors
        try:
            self._build()
        except KeyError as e:
            raise BadModel(f"config.json: missing field {e}") from None
        except (TypeError, ValueError, IndexError, ZeroDivisionError) as e:
            raise BadModel(f"config.json: a field has the wrong type or value: {e}") from None

    def _tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        t = self.tensors.get(name)
        if t is None:
            raise BadModel(f"tensor {name} is missing from model.safetensors")
        if t.shape != shape:
            raise BadModel(f"tensor {name} has shape {list(t.shape)}, expected {list(shape)}")
        return t

    def _build(self) -> None:
        c = self.config
        if c.get("format") != "tfc-safetensors" or c.get("format_version") != 1:
            raise BadModel(f"not a tfc export of format version 1: format {c.get('format')!r}, "
                           f"version {c.get('format_version')!r}")
        d = int(c["d_model"])
        if len(c["basis"]) != d:
            raise BadModel(f"basis has {len(c['basis'])} labels, d_model is {d}")
        self.d = d
        self.max_len = int(c["max_len"])
        self.causal = bool(c["causal"])
        self.distinct_tokens = bool(c["distinct_tokens"])
        self.beta = float(c["beta"])
        self.vocab = list(c["vocab"])
        self.vocab_row = {v: k + 1 for k, v in enumerate(self.vocab)}
        self.token_embed = self._tensor(c["token_embed"]["name"], (len(self.vocab) + 1, d))
        self.pos_embed = self._tensor(c["pos_embed"]["name"], (self.max_len + 1, d))
        self.layers = []
        for layer in c["layers"]:
            heads = []
            for h in layer["attn"]:
                dh, dv = int(h["d_head"]), int(h["d_value"])
                heads.append((self._tensor(h["w_q"], (d, dh)), self._tensor(h["w_k"], (d, dh)),
                              self._tensor(h["w_v"], (d, dv)), self._tensor(h["w_o"], (dv, d))))
            mlps = []
            for m in layer["mlps"]:
                k = int(m["hidden"])
                mlps.append((self._tensor(m["w_in"], (d, k)), self._tensor(m["b_in"], (k,)),
                             self._tensor(m["w_out"], (k, d)), self._tensor(m["b_out"], (d,))))
            self.layers.append((heads, mlps))
        self.loops = {}
        last_end = 0
        for i, lp in enumerate(c["loops"]):
            start, end = int(lp["start"]), int(lp["end"])
            if not (last_end <= start < end <= len(self.layers)):
                raise BadModel(f"loops[{i}]: layer range {start}..{end} is empty, overlaps, or is out of range")
            if lp["stop"] == "fixed":
                stop = ("fixed", int(lp["times"]))
            elif lp["stop"] == "until":
                halt = int(lp["halt_dim"])
                if not 0 <= halt < d:
                    raise BadModel(f"loops[{i}]: halt_dim {halt} is outside 0..{d}")
                stop = ("until", halt, int(lp["max"]))
            else:
                raise BadModel(f"loops[{i}]: unknown stop rule {lp['stop']!r}")
            self.loops[start] = (i, end, stop)
            last_end = end
        r = c["readout"]
        self.encoding = r["encoding"]
        self.dims = [int(k) for k in r["dims"]]
        self.values = list(r["values"])
        if any(not 0 <= k < d for k in self.dims) or not self.values:
            raise BadModel("readout: a dimension is out of range, or there are no values")
        if self.encoding == "cat":
            if len(self.dims) != len(self.values):
                raise BadModel("readout: cat needs one dimension per value")
        elif self.encoding == "num":
            if len(self.dims) != 1:
                raise BadModel("readout: num needs exactly one dimension")
            # Exact values from the display strings (`5/2`), so that decoding
            # compares exactly, as tfc does; `num_values` are the same as floats.
            self.num_values = [Fraction(v) for v in self.values]
        else:
            raise BadModel(f"readout: unknown encoding {self.encoding!r}")


def load(directory: str) -> Model:
    """Loads `directory/config.json` and `directory/model.safetensors`."""
    cpath = os.path.join(directory, "config.json")
    try:
        with open(cpath, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise BadModel(f"cannot read {cpath}: {e}") from None
    except json.JSONDecodeError as e:
        raise BadModel(f"{cpath}: not JSON: {e}") from None
    return Model(config, read_safetensors(os.path.join(directory, "model.safetensors")))


# ---------------------------------------------------------------------------
# The forward pass, in float32.

def _attention(m: Model, x: np.ndarray, heads, beta: np.float32) -> np.ndarray:
    n = x.shape[0]
    delta = np.zeros_like(x)
    # Query i sees keys j <= i when causal, all keys otherwise; BOS (j = 0) always.
    visible = np.tril(np.ones((n, n), dtype=bool)) if m.causal else np.ones((n, n), dtype=bool)
    visible[:, 0] = True
    for w_q, w_k, w_v, w_o in heads:
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        t = (q @ k.T) * beta
        t = np.where(visible, t, np.float32(-np.inf))
        t = t - t.max(axis=1, keepdims=True)
        e = np.exp(t)
        a = e / e.sum(axis=1, keepdims=True)
        delta += (a @ v) @ w_o
    return delta


def _mlps(x: np.ndarray, mlps) -> np.ndarray:
    delta = np.zeros_like(x)
    for w_in, b_in, w_out, b_out in mlps:
        delta += np.maximum(x @ w_in + b_in, np.float32(0)) @ w_out + b_out
    return delta


def _layer(m: Model, x: np.ndarray, index: int, beta: np.float32) -> np.ndarray:
    heads, mlps = m.layers[index]
    if heads:
        x = x + _attention(m, x, heads, beta)
    if mlps:
        x = x + _mlps(x, mlps)
    return x


def residual(m: Model, tokens: list[str], beta: float | None = None) -> np.ndarray:
    """The final residual (positions × d, float32; row 0 is BOS)."""
    if not tokens:
        raise BadInput("the input is empty")
    if len(tokens) > m.max_len:
        raise BadInput(f"the input has {len(tokens)} tokens, more than max_len {m.max_len}")
    rows = [0]
    for i, tok in enumerate(tokens):
        row = m.vocab_row.get(tok)
        if row is None:
            c = canonical(tok)
            row = m.vocab_row.get(c) if c is not None else None
            if row is None:
                # As the CLI: `3` may mean the symbol "3" when the vocabulary has no number 3.
                row = m.vocab_row.get(_show_sym(tok.strip()))
        if row is None:
            raise BadInput(f"token {i} `{tok}` is not in the vocabulary {{{', '.join(m.vocab)}}}")
        if m.distinct_tokens and row in rows:
            raise BadInput(f"token {i} `{tok}` repeats an earlier token; the program requires distinct tokens")
        rows.append(row)
    b = np.float32(m.beta if beta is None else beta)
    if not (np.isfinite(b) and b > 0):
        raise TfcError(f"beta must be a positive finite number, got {beta}")
    x = m.token_embed[rows] + m.pos_embed[: len(rows)]
    layer = 0
    while layer < len(m.layers):
        if layer not in m.loops:
            x = _layer(m, x, layer, b)
            layer += 1
            continue
        index, end, stop = m.loops[layer]
        iteration = 0
        while True:
            if stop[0] == "fixed":
                if iteration == stop[1]:
                    break
            else:
                _, halt, most = stop
                if bool(np.all(x[1:, halt] > 0.5)):
                    break
                if iteration == most:
                    raise LoopDidNotHalt(f"loop {index} did not halt within {most} iterations")
            for l in range(layer, end):
                x = _layer(m, x, l, b)
            iteration += 1
        layer = end
    return x


def decode(m: Model, x: np.ndarray) -> list[str]:
    """The output at every non-BOS position of a final residual."""
    read = x[1:, m.dims]
    if not np.all(np.isfinite(read)):
        p = int(np.argwhere(~np.isfinite(read))[0][0])
        raise NonFinite(f"the readout is NaN or infinite at input index {p}")
    if m.encoding == "cat":
        return [m.values[int(k)] for k in np.argmax(read, axis=1)]  # first maximum wins
    out = []
    for y in read[:, 0]:
        y = Fraction(float(y))  # the float32 value, exactly
        # Nearest value, compared exactly; ties go to the smaller value.
        best = min(range(len(m.values)), key=lambda k: (abs(y - m.num_values[k]), m.num_values[k]))
        out.append(m.values[best])
    return out


def run(m: Model, tokens: list[str], beta: float | None = None) -> list[str]:
    """Runs the model on `tokens` (display strings, BOS not included) and decodes."""
    return decode(m, residual(m, tokens, beta))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print("usage: tfc_numpy.py OUT_DIR TOKEN... [--beta B]", file=sys.stderr)
        return 2
    args = argv[2:]
    beta = None
    if "--beta" in args:
        i = args.index("--beta")
        try:
            beta = float(args[i + 1])
        except (IndexError, ValueError):
            print("error: --beta needs a number", file=sys.stderr)
            return 2
        del args[i:i + 2]
    try:
        m = load(argv[1])
        print(" ".join(run(m, args, beta)))
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BadModel as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TfcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
