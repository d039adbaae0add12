//! Mutation testing of the verifier (issue 4, item 7).
//!
//! For every positive corpus program (`corpus/tracr`, `corpus/programs`,
//! `corpus/loops`; files that do not check, or that expect
//! `; verify: refuted`, are skipped) the compiled model is mutated a few
//! dozen times with a fixed-seed generator, one mutation per mutant:
//!
//! * `weight`   — one nonzero entry of a head's or an MLP's matrix or bias
//!   gets ±1/2, is set to 0 or is doubled;
//! * `swap-k`   — two rows of a head's `w_k` are swapped (its score rows);
//! * `del-head` — a head is removed from its layer;
//! * `del-unit` — an MLP hidden unit is removed (its `w_in` column, `b_in`
//!   entry and `w_out` row, the others re-indexed);
//! * `move`     — one entry of a `w_o` / `w_out` writes another dimension
//!   (half the time a dimension of the same value, e.g. `%x:1` → `%x:2`);
//! * `bos`      — the `bos` row of a head's `w_k` (or `w_q`) is negated or
//!   tripled, or given an entry where it had none;
//! * `embed`    — one token or position embedding entry is changed;
//!
//! and, one each per program: `dup-head` / `dup-mlp` (a block added twice
//! to its sublayer, which sums its blocks), `relabel` (two basis labels of
//! one group swapped, weights untouched) and `structure` (the attention
//! mask flipped, a loop's iteration count or bound moved by one).
//!
//! Every mutant stays a valid [`Model`] (rebuilt with `from_triplets`).
//!
//! Each mutant is first classified by a differential run of our own (the
//! exact forward pass under hard attention against the interpreter, on
//! every input when there are at most 2,000, else on a fixed sample): it
//! is *wrong* when some output differs or the model errors, else
//! *equivalent on the tested inputs*. Then it is verified. Asserted:
//!
//! 1. a wrong mutant is `Refuted` (or refused with a `VerifyError`, which
//!    is not a proof): `Unknown` is a verifier weakness and fails;
//! 2. no wrong mutant is `Proved`;
//! 3. stronger than 2, independent of the verifier's own evidence run: no
//!    wrong mutant passes every *local* block check (all blocks proved,
//!    refuted only by the verifier's end-to-end differential fallback),
//!    since then the proofs alone would have called it proved;
//! 4. the verifier never panics on a mutant.
//!
//! Equivalent mutants may get any verdict; their counts are reported.
//!
//! For speed the verifier's own evidence run gets our sample size (and
//! the slow loops a small one); a wrong mutant it leaves `unknown` is
//! verified again with the default options, and only an `unknown` there is
//! a finding. A second test covers what no corpus model has: two width
//! heads of one layer sharing a scratch dimension.
//!
//! Run with `cargo test --release --test mutation -- --nocapture` to see
//! the per-program table and every finding.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tfc_ir::check::{all_inputs, random_input, Checked, SplitMix};
use tfc_ir::forward::{Attention, ForwardOptions, PreparedModel};
use tfc_ir::interp::{self, RunOptions};
use tfc_ir::model::{Matrix, Model, SparseVec};
use tfc_ir::{Program, Rat, Value};
use tfc_verifier::{Options, Verdict};

/// Mutants per program: four of each kind of [`KINDS`], one of each of [`EXTRA`].
const MUTANTS: usize = 24;
/// Mutants for the slow loop programs.
const MUTANTS_SLOW: usize = 6;
/// Exhaustive differential run up to this many inputs.
const EXHAUSTIVE: usize = 2_000;
/// Otherwise this many sampled inputs.
const SAMPLED: usize = 300;
/// Sampled inputs for the slow loop programs.
const SAMPLED_SLOW: usize = 24;
/// The slow loop programs (many iterations of a wide body, exact arithmetic).
const SLOW: [&str; 4] = ["loops/subleq.ir", "loops/addition.ir", "loops/prefix_sum_doubling.ir", "loops/prefix_sum_serial.ir"];

fn r(n: i64, d: i64) -> Rat {
    Rat::new(n.into(), d.into())
}

// ---------------------------------------------------------------- corpus

struct Subject {
    name: String,
    checked: Checked,
    model: Model,
    mutants: usize,
    /// Inputs with the interpreter's output (inputs it rejects left out).
    cases: Vec<(Vec<Value>, Vec<Value>)>,
    exhaustive: bool,
    opts: Options,
}

fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0x6d75_7461_6e74u64, |h, b| h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b)))
}

/// The differential inputs: all of them when there are at most
/// [`EXHAUSTIVE`], else every input of length ≤ 2 (when few) and random
/// ones of every length.
fn inputs(prog: &Program, sampled: usize, seed: u64) -> (Vec<Vec<Value>>, bool) {
    if let Some(all) = all_inputs(prog, EXHAUSTIVE) {
        return (all, true);
    }
    let mut v = all_inputs(&Program { max_len: 2.min(prog.max_len), ..prog.clone() }, sampled / 4).unwrap_or_default();
    let mut rng = SplitMix(seed);
    while v.len() < sampled {
        let len = 1 + rng.below(prog.max_len);
        v.push(random_input(prog, len, &mut rng));
    }
    (v, false)
}

fn subjects() -> (Vec<Subject>, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["tracr", "programs", "loops"] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("read corpus/{dir}: {e}"))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "ir"))
            .collect();
        fs.sort();
        files.extend(fs);
    }
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        let name = path.strip_prefix(&root).expect("under corpus/").to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        if text.lines().any(|l| l.trim() == "; verify: refuted") {
            skipped.push(format!("{name} (negative: verify refuted)"));
            continue;
        }
        let Ok((_, prog)) = tfc_ir::parse_bytes(&bytes) else {
            skipped.push(format!("{name} (does not parse)"));
            continue;
        };
        let Ok(checked) = tfc_ir::check(&prog) else {
            skipped.push(format!("{name} (does not check)"));
            continue;
        };
        let compiled = tfc_compiler::compile(&checked).unwrap_or_else(|e| panic!("{name} checks but does not compile: {e}"));
        let slow = SLOW.contains(&name.as_str());
        let seed = seed_of(&name);
        let (ins, exhaustive) = inputs(&checked.program, if slow { SAMPLED_SLOW } else { SAMPLED }, seed);
        let cases: Vec<(Vec<Value>, Vec<Value>)> = ins
            .into_iter()
            .filter_map(|i| interp::run(&checked.program, &i, &RunOptions::default()).ok().map(|run| (i, run.output)))
            .collect();
        assert!(!cases.is_empty(), "{name}: the interpreter accepts none of the inputs");
        // The verifier's own evidence run, which runs every input it is
        // given (ours stops at the first mismatch), is cut to our sample
        // size and has no time cut, so that verdicts do not depend on the
        // load. A wrong mutant it leaves `unknown` is verified again with
        // the default options before it counts as a finding.
        let opts = Options { evidence_inputs: if slow { SAMPLED_SLOW } else { SAMPLED }, evidence_seconds: 600.0, ..Options::default() };
        out.push(Subject { name, checked, model: compiled.model, mutants: if slow { MUTANTS_SLOW } else { MUTANTS }, cases, exhaustive, opts });
    }
    (out, skipped)
}

// ---------------------------------------------------------------- mutations

/// `f` maps each entry to its replacement (or drops it); rebuilt valid.
fn remap(m: &Matrix, rows: usize, cols: usize, f: impl Fn(usize, usize, &Rat) -> Option<(usize, usize, Rat)>) -> Matrix {
    Matrix::from_triplets(rows, cols, m.entries.iter().filter_map(|(i, j, v)| f(*i, *j, v))).expect("indices in range")
}

fn set_entry(m: &Matrix, at: (usize, usize), v: Rat) -> Matrix {
    let mut t: Vec<(usize, usize, Rat)> = m.entries.iter().filter(|e| (e.0, e.1) != at).cloned().collect();
    t.push((at.0, at.1, v));
    Matrix::from_triplets(m.rows, m.cols, t).expect("in range")
}

fn set_vec(v: &SparseVec, at: usize, x: Rat) -> SparseVec {
    let mut p: Vec<(usize, Rat)> = v.entries.iter().filter(|e| e.0 != at).cloned().collect();
    p.push((at, x));
    SparseVec::from_pairs(v.len, p).expect("in range")
}

/// A changed weight: ±1/2, 0 or doubled.
fn tweak(v: &Rat, rng: &mut SplitMix) -> (Rat, &'static str) {
    match rng.below(4) {
        0 => (v + r(1, 2), "+1/2"),
        1 => (v - r(1, 2), "-1/2"),
        2 => (Rat::from_integer(0.into()), "set 0"),
        _ => (v * Rat::from_integer(2.into()), "doubled"),
    }
}

fn rs(x: &Rat) -> String {
    tfc_ir::model::rat_to_string(x)
}

/// Which weight tensor of which block.
#[derive(Clone, Copy)]
enum Site {
    Head(usize, usize, usize), // layer, head, 0..4 = w_q w_k w_v w_o
    Mlp(usize, usize, usize),  // layer, mlp, 0..4 = w_in b_in w_out b_out
}

const HEAD_MATS: [&str; 4] = ["w_q", "w_k", "w_v", "w_o"];
const MLP_MATS: [&str; 4] = ["w_in", "b_in", "w_out", "b_out"];

fn heads(m: &Model) -> Vec<(usize, usize)> {
    m.layers.iter().enumerate().flat_map(|(l, layer)| (0..layer.attn.len()).map(move |h| (l, h))).collect()
}

fn mlps(m: &Model) -> Vec<(usize, usize)> {
    m.layers.iter().enumerate().flat_map(|(l, layer)| (0..layer.mlps.len()).map(move |k| (l, k))).collect()
}

fn head_name(m: &Model, l: usize, h: usize) -> String {
    format!("L{l} head {h} ({})", m.layers[l].attn[h].instructions.join(","))
}

fn mlp_name(m: &Model, l: usize, k: usize) -> String {
    format!("L{l} mlp {k} ({})", m.layers[l].mlps[k].instructions.join(","))
}

fn pick<T: Clone>(v: &[T], rng: &mut SplitMix) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        Some(v[rng.below(v.len())].clone())
    }
}

fn mutate_weight(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    // Every nonempty tensor of every head and MLP, uniformly.
    let mut sites = Vec::new();
    for (l, h) in heads(m) {
        let hd = &m.layers[l].attn[h];
        for (k, mat) in [&hd.w_q, &hd.w_k, &hd.w_v, &hd.w_o].into_iter().enumerate() {
            if !mat.entries.is_empty() {
                sites.push(Site::Head(l, h, k));
            }
        }
    }
    for (l, k) in mlps(m) {
        let b = &m.layers[l].mlps[k];
        let sizes = [b.w_in.entries.len(), b.b_in.entries.len(), b.w_out.entries.len(), b.b_out.entries.len()];
        for (t, n) in sizes.into_iter().enumerate() {
            if n > 0 {
                sites.push(Site::Mlp(l, k, t));
            }
        }
    }
    match pick(&sites, rng)? {
        Site::Head(l, h, k) => {
            let name = head_name(m, l, h);
            let hd = &mut m.layers[l].attn[h];
            let mat = [&mut hd.w_q, &mut hd.w_k, &mut hd.w_v, &mut hd.w_o].into_iter().nth(k).expect("4");
            let (i, j, v) = mat.entries[rng.below(mat.entries.len())].clone();
            let (nv, how) = tweak(&v, rng);
            *mat = set_entry(mat, (i, j), nv.clone());
            Some(format!("{name} {}[{i},{j}] {} {how} -> {}", HEAD_MATS[k], rs(&v), rs(&nv)))
        }
        Site::Mlp(l, k, t) => {
            let name = mlp_name(m, l, k);
            let b = &mut m.layers[l].mlps[k];
            let (at, v, nv, how) = match t {
                0 | 2 => {
                    let mat = if t == 0 { &mut b.w_in } else { &mut b.w_out };
                    let (i, j, v) = mat.entries[rng.below(mat.entries.len())].clone();
                    let (nv, how) = tweak(&v, rng);
                    *mat = set_entry(mat, (i, j), nv.clone());
                    (format!("[{i},{j}]"), v, nv, how)
                }
                _ => {
                    let vec = if t == 1 { &mut b.b_in } else { &mut b.b_out };
                    let (j, v) = vec.entries[rng.below(vec.entries.len())].clone();
                    let (nv, how) = tweak(&v, rng);
                    *vec = set_vec(vec, j, nv.clone());
                    (format!("[{j}]"), v, nv, how)
                }
            };
            Some(format!("{name} {}{at} {} {how} -> {}", MLP_MATS[t], rs(&v), rs(&nv)))
        }
    }
}

/// The label's group: `%x:1` → `%x`, `tokens:a` → `tokens`.
fn group_of(label: &str) -> &str {
    label.rsplit_once(':').map_or(label, |(g, _)| g)
}

fn mutate_swap_k(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let cands: Vec<(usize, usize)> = heads(m).into_iter().filter(|&(l, h)| !m.layers[l].attn[h].w_k.entries.is_empty()).collect();
    let (l, h) = pick(&cands, rng)?;
    let name = head_name(m, l, h);
    let w_k = &m.layers[l].attn[h].w_k;
    let mut support: Vec<usize> = w_k.entries.iter().map(|e| e.0).collect();
    support.dedup();
    let a = pick(&support, rng)?;
    // The other row: another read row, or a dimension of the same group, or any.
    let same: Vec<usize> = (0..m.basis.len()).filter(|&d| d != a && group_of(&m.basis[d]) == group_of(&m.basis[a])).collect();
    let others: Vec<usize> = support.iter().copied().filter(|&d| d != a).collect();
    let b = match rng.below(2) {
        0 if !others.is_empty() => pick(&others, rng)?,
        _ if !same.is_empty() => pick(&same, rng)?,
        _ => (a + 1 + rng.below(m.basis.len() - 1)) % m.basis.len(),
    };
    let swapped = remap(w_k, w_k.rows, w_k.cols, |i, j, v| Some((if i == a { b } else if i == b { a } else { i }, j, v.clone())));
    m.layers[l].attn[h].w_k = swapped;
    Some(format!("{name} w_k rows {} <-> {} swapped", m.basis[a], m.basis[b]))
}

fn mutate_del_head(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let (l, h) = pick(&heads(m), rng)?;
    let name = head_name(m, l, h);
    m.layers[l].attn.remove(h);
    Some(format!("{name} deleted"))
}

fn mutate_del_unit(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let cands: Vec<(usize, usize)> = mlps(m).into_iter().filter(|&(l, k)| m.layers[l].mlps[k].hidden() > 0).collect();
    let (l, k) = pick(&cands, rng)?;
    let name = mlp_name(m, l, k);
    let b = &mut m.layers[l].mlps[k];
    let n = b.hidden();
    let c = rng.below(n);
    let shift = |j: usize| if j > c { j - 1 } else { j };
    b.w_in = remap(&b.w_in, b.w_in.rows, n - 1, |i, j, v| (j != c).then(|| (i, shift(j), v.clone())));
    b.w_out = remap(&b.w_out, n - 1, b.w_out.cols, |i, j, v| (i != c).then(|| (shift(i), j, v.clone())));
    b.b_in = SparseVec::from_pairs(n - 1, b.b_in.entries.iter().filter(|e| e.0 != c).map(|(j, v)| (shift(*j), v.clone()))).expect("in range");
    Some(format!("{name} hidden unit {c} of {n} deleted"))
}

fn mutate_move(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let mut sites = Vec::new();
    for (l, h) in heads(m) {
        if !m.layers[l].attn[h].w_o.entries.is_empty() {
            sites.push(Site::Head(l, h, 3));
        }
    }
    for (l, k) in mlps(m) {
        if !m.layers[l].mlps[k].w_out.entries.is_empty() {
            sites.push(Site::Mlp(l, k, 2));
        }
    }
    let site = pick(&sites, rng)?;
    let d = m.basis.len();
    let basis = m.basis.clone();
    let (name, mat) = match site {
        Site::Head(l, h, _) => (head_name(m, l, h), &mut m.layers[l].attn[h].w_o),
        Site::Mlp(l, k, _) => (mlp_name(m, l, k), &mut m.layers[l].mlps[k].w_out),
    };
    let e = rng.below(mat.entries.len());
    let (i, j, v) = mat.entries[e].clone();
    let same: Vec<usize> = (0..d).filter(|&x| x != j && group_of(&basis[x]) == group_of(&basis[j])).collect();
    let to = match rng.below(2) {
        0 if !same.is_empty() => pick(&same, rng)?,
        _ => (j + 1 + rng.below(d - 1)) % d,
    };
    let mut t: Vec<(usize, usize, Rat)> = mat.entries.clone();
    t[e].1 = to;
    *mat = Matrix::from_triplets(mat.rows, mat.cols, t).expect("in range");
    let which = if matches!(site, Site::Head(..)) { "w_o" } else { "w_out" };
    Some(format!("{name} {which}[{i},·] = {} moved from {} to {}", rs(&v), basis[j], basis[to]))
}

fn mutate_bos(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let bos = m.basis_index("bos")?;
    let (l, h) = pick(&heads(m), rng)?;
    let name = head_name(m, l, h);
    let hd = &mut m.layers[l].attn[h];
    // Mostly the key side (the BOS key's score), sometimes the query side.
    let (which, mat, other) = if rng.below(4) == 0 { ("w_q", &mut hd.w_q, &hd.w_k) } else { ("w_k", &mut hd.w_k, &hd.w_q) };
    let row: Vec<(usize, usize, Rat)> = mat.row(bos).to_vec();
    if row.is_empty() {
        // Give BOS a score on a column the other side uses.
        let cols: Vec<usize> = other.entries.iter().map(|e| e.1).collect();
        let c = pick(&cols, rng).unwrap_or(0);
        if c >= mat.cols {
            return None;
        }
        let x = if rng.below(2) == 0 { r(1, 1) } else { r(-1, 1) };
        *mat = set_entry(mat, (bos, c), x.clone());
        return Some(format!("{name} {which}[bos,{c}] 0 -> {}", rs(&x)));
    }
    let negate = rng.below(2) == 0;
    let f = if negate { r(-1, 1) } else { r(3, 1) };
    *mat = remap(mat, mat.rows, mat.cols, |i, j, v| Some((i, j, if i == bos { v * &f } else { v.clone() })));
    Some(format!("{name} {which} bos row {}", if negate { "negated" } else { "tripled" }))
}

fn mutate_embed(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let tok = rng.below(2) == 0 || m.pos_embed.entries.is_empty();
    let basis = m.basis.clone();
    let (which, mat) = if tok { ("token_embed", &mut m.token_embed) } else { ("pos_embed", &mut m.pos_embed) };
    if mat.entries.is_empty() {
        return None;
    }
    let (i, j, v) = mat.entries[rng.below(mat.entries.len())].clone();
    if rng.below(3) == 0 {
        // Move the entry to another dimension.
        let to = (j + 1 + rng.below(basis.len() - 1)) % basis.len();
        *mat = remap(mat, mat.rows, mat.cols, |a, b, x| Some((a, if (a, b) == (i, j) { to } else { b }, x.clone())));
        return Some(format!("{which}[{i}] {} = {} moved to {}", basis[j], rs(&v), basis[to]));
    }
    let (nv, how) = tweak(&v, rng);
    *mat = set_entry(mat, (i, j), nv.clone());
    Some(format!("{which}[{i},{}] {} {how} -> {}", basis[j], rs(&v), rs(&nv)))
}

fn mutate_dup_head(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let (l, h) = pick(&heads(m), rng)?;
    let name = head_name(m, l, h);
    let copy = m.layers[l].attn[h].clone();
    m.layers[l].attn.push(copy);
    Some(format!("{name} duplicated in its layer"))
}

fn mutate_dup_mlp(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let (l, k) = pick(&mlps(m), rng)?;
    let name = mlp_name(m, l, k);
    let copy = m.layers[l].mlps[k].clone();
    m.layers[l].mlps.push(copy);
    Some(format!("{name} duplicated in its layer"))
}

/// Two labels of one one-hot group swapped (the weights left as they are).
fn mutate_relabel(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    let d = m.basis.len();
    let pairs: Vec<(usize, usize)> = (0..d)
        .flat_map(|a| (a + 1..d).map(move |b| (a, b)))
        .filter(|&(a, b)| m.basis[a].contains(':') && group_of(&m.basis[a]) == group_of(&m.basis[b]))
        .collect();
    let (a, b) = pick(&pairs, rng)?;
    m.basis.swap(a, b);
    Some(format!("basis labels {} <-> {} swapped", m.basis[b], m.basis[a]))
}

/// The attention mask, a loop's iteration count or its halting bound.
fn mutate_structure(m: &mut Model, rng: &mut SplitMix) -> Option<String> {
    use tfc_ir::model::LoopStop;
    if m.loops.is_empty() || rng.below(3) == 0 {
        m.causal = !m.causal;
        return Some(format!("attention made {}", if m.causal { "causal" } else { "non-causal" }));
    }
    let k = rng.below(m.loops.len());
    let up = rng.below(2) == 0;
    match &mut m.loops[k].stop {
        LoopStop::Fixed(n) => {
            let old = *n;
            *n = if up || old <= 1 { old + 1 } else { old - 1 };
            Some(format!("loop {k} runs {} times instead of {old}", *n))
        }
        LoopStop::Until { max, .. } => {
            let old = *max;
            *max = if up || old <= 1 { old + 1 } else { old - 1 };
            Some(format!("loop {k} may run {} times instead of {old}", *max))
        }
    }
}

type Mutator = fn(&mut Model, &mut SplitMix) -> Option<String>;
/// The kinds of the issue, in turn for the first mutants of a program.
const KINDS: [(&str, Mutator); 7] = [
    ("weight", mutate_weight),
    ("swap-k", mutate_swap_k),
    ("del-head", mutate_del_head),
    ("del-unit", mutate_del_unit),
    ("move", mutate_move),
    ("bos", mutate_bos),
    ("embed", mutate_embed),
];
/// Then these: a block added twice to its sublayer (the sublayer sums its
/// blocks), the basis labels, the model's structure.
const EXTRA: [(&str, Mutator); 4] =
    [("dup-head", mutate_dup_head), ("dup-mlp", mutate_dup_mlp), ("relabel", mutate_relabel), ("structure", mutate_structure)];

/// Mutant `k` of a program: kinds in turn, a changed model each time
/// (falling back to a weight change where a kind does not apply).
fn mutant(base: &Model, seed: u64, k: usize) -> (Model, &'static str, String) {
    let mut rng = SplitMix(seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let per_kind = (MUTANTS - EXTRA.len()) / KINDS.len();
    let (kind, f) = if k < per_kind * KINDS.len() { KINDS[k % KINDS.len()] } else { EXTRA[(k - per_kind * KINDS.len()) % EXTRA.len()] };
    for attempt in 0..20 {
        let mut m = base.clone();
        let (kind, f) = if attempt < 10 { (kind, f) } else { KINDS[0] };
        if let Some(desc) = f(&mut m, &mut rng) {
            if m != *base {
                m.validate().unwrap_or_else(|e| panic!("mutant `{desc}` is not a valid model: {e}"));
                return (m, kind, desc);
            }
        }
    }
    panic!("no mutant {k} could be made")
}

// ---------------------------------------------------------------- the run

/// Our differential run: the first input where the mutant is wrong.
fn wrong_on(s: &Subject, m: &Model) -> Option<String> {
    let pm = match PreparedModel::<Rat>::new(m) {
        Ok(pm) => pm,
        Err(e) => return Some(format!("the model does not run: {e}")),
    };
    let opts = ForwardOptions::default();
    for (input, want) in &s.cases {
        let shown = || input.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" ");
        match pm.run(input, Attention::Hard, &opts) {
            Err(e) => return Some(format!("on `{}`: error {e}", shown())),
            Ok(run) if run.outputs != *want => {
                let got: Vec<String> = run.outputs.iter().map(|v| v.to_string()).collect();
                let exp: Vec<String> = want.iter().map(|v| v.to_string()).collect();
                return Some(format!("on `{}`: {} instead of {}", shown(), got.join(" "), exp.join(" ")));
            }
            Ok(_) => {}
        }
    }
    None
}

#[derive(Clone, Debug)]
enum Got {
    Refused,
    /// The verdict; whether some local (non end-to-end) block is not proved; the first such block.
    Verdict(Verdict, bool, String),
    Panicked(String),
}

struct Row {
    prog: usize,
    kind: &'static str,
    desc: String,
    wrong: Option<String>,
    got: Got,
    /// For a wrong mutant left `Unknown` at the test's reduced evidence
    /// budget: the verdict under the verifier's default options.
    again: Option<Got>,
}

fn verify_mutant(s: &Subject, m: &Model, opts: &Options) -> Got {
    match catch_unwind(AssertUnwindSafe(|| tfc_verifier::verify(&s.checked, m, opts))) {
        Err(p) => Got::Panicked(p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|x| x.to_string())).unwrap_or_default()),
        Ok(Err(_)) => Got::Refused,
        Ok(Ok(rep)) => {
            let local: Vec<String> = rep
                .blocks
                .iter()
                .filter(|b| b.kind != "end-to-end" && b.verdict != Verdict::Proved)
                .map(|b| format!("{} {} {}: {} ({})", b.layer.map_or("-".into(), |l| l.to_string()), b.kind, b.instructions.join(","), b.verdict, b.detail))
                .collect();
            Got::Verdict(rep.verdict, !local.is_empty(), local.first().cloned().unwrap_or_default())
        }
    }
}

#[test]
fn mutants_of_the_corpus_are_refuted_never_proved() {
    let t0 = Instant::now();
    let (mut subjects, skipped) = subjects();
    assert!(subjects.len() >= 30, "only {} corpus programs to mutate", subjects.len());
    // `TFC_MUTATION_ONLY=sort` narrows the run to programs whose path contains it.
    if let Ok(only) = std::env::var("TFC_MUTATION_ONLY") {
        subjects.retain(|s| s.name.contains(&only));
    }
    for s in &skipped {
        println!("skipped {s}");
    }

    // Jobs (the unmutated model as mutant `None`, for the table's baseline),
    // slow programs first, over two workers (the verifier itself uses rayon).
    let mut jobs: Vec<(usize, Option<usize>)> = Vec::new();
    for (p, s) in subjects.iter().enumerate() {
        jobs.push((p, None));
        for k in 0..s.mutants {
            jobs.push((p, Some(k)));
        }
    }
    jobs.sort_by_key(|&(p, _)| !SLOW.contains(&subjects[p].name.as_str()));
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    let baseline: Mutex<BTreeMap<usize, String>> = Mutex::new(BTreeMap::new());
    let times: Mutex<BTreeMap<usize, (f64, f64)>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(p, k)) = jobs.get(n) else { break };
                let s = &subjects[p];
                let t = Instant::now();
                let Some(k) = k else {
                    // Local checks only: the evidence run is what the mutants add.
                    let v = match tfc_verifier::verify(&s.checked, &s.model, &Options { evidence_inputs: 0, ..s.opts.clone() }) {
                        Ok(r) => r.verdict.to_string(),
                        Err(e) => format!("refused: {e}"),
                    };
                    baseline.lock().unwrap().insert(p, v);
                    times.lock().unwrap().entry(p).or_default().1 += t.elapsed().as_secs_f64();
                    continue;
                };
                let (m, kind, desc) = mutant(&s.model, seed_of(&s.name), k);
                let wrong = match catch_unwind(AssertUnwindSafe(|| wrong_on(s, &m))) {
                    Ok(w) => w,
                    Err(_) => Some("the forward pass panicked".into()),
                };
                let t_diff = t.elapsed().as_secs_f64();
                let got = verify_mutant(s, &m, &s.opts);
                let again = match (&wrong, &got) {
                    (Some(_), Got::Verdict(Verdict::Unknown, ..)) => {
                        // The default input budget (bounded in time for the slow loops).
                        Some(verify_mutant(s, &m, &Options { evidence_seconds: 60.0, ..Options::default() }))
                    }
                    _ => None,
                };
                {
                    let mut tm = times.lock().unwrap();
                    let e = tm.entry(p).or_default();
                    e.0 += t_diff;
                    e.1 += t.elapsed().as_secs_f64() - t_diff;
                }
                rows.lock().unwrap().push(Row { prog: p, kind, desc, wrong, got, again });
            });
        }
    });
    let baseline = baseline.into_inner().unwrap();
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by_key(|r| r.prog);
    let times = times.into_inner().unwrap();

    // The table.
    #[derive(Default, Clone, Copy)]
    struct C {
        n: usize,
        wrong: usize,
        refuted: usize,
        refused: usize,
        unknown: usize,
        proved: usize,
        local: usize,
        rescued: usize,
        eq_proved: usize,
        eq_unknown: usize,
        eq_other: usize,
    }
    let mut per: Vec<C> = vec![C::default(); subjects.len()];
    // Per kind: mutants, wrong, wrong killed, equivalent proved, equivalent unknown.
    let mut kinds: BTreeMap<&str, (usize, usize, usize, usize, usize)> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for row in &rows {
        let c = &mut per[row.prog];
        let s = &subjects[row.prog];
        c.n += 1;
        let kk = kinds.entry(row.kind).or_default();
        kk.0 += 1;
        let what = format!("{}: [{}] {}", s.name, row.kind, row.desc);
        if let Got::Panicked(msg) = &row.got {
            failures.push(format!("{what}: the verifier panicked: {msg}"));
        }
        match &row.wrong {
            Some(why) => {
                c.wrong += 1;
                kk.1 += 1;
                match &row.got {
                    Got::Refused => {
                        c.refused += 1;
                        c.local += 1;
                        kk.2 += 1;
                    }
                    Got::Verdict(v, local, first) => {
                        if *local {
                            c.local += 1;
                        }
                        match v {
                            Verdict::Refuted => {
                                c.refuted += 1;
                                kk.2 += 1;
                                if !local {
                                    failures.push(format!(
                                        "{what}: wrong ({why}) and every local block check proved; refuted only by the end-to-end differential run"
                                    ));
                                }
                            }
                            Verdict::Unknown => match &row.again {
                                // The test's evidence budget is reduced for speed; the
                                // verifier as shipped (default options) must refute.
                                Some(Got::Verdict(Verdict::Refuted, ..)) | Some(Got::Refused) => {
                                    c.refuted += 1;
                                    c.rescued += 1;
                                    kk.2 += 1;
                                }
                                again => {
                                    c.unknown += 1;
                                    failures.push(format!(
                                        "{what}: wrong ({why}) but only unknown: {first}; with the default options: {again:?}"
                                    ));
                                }
                            },
                            Verdict::Proved => {
                                c.proved += 1;
                                failures.push(format!("{what}: wrong ({why}) but PROVED"));
                            }
                        }
                    }
                    Got::Panicked(_) => {}
                }
            }
            None => match &row.got {
                Got::Verdict(Verdict::Proved, ..) => {
                    c.eq_proved += 1;
                    kk.3 += 1;
                }
                Got::Verdict(Verdict::Unknown, ..) => {
                    c.eq_unknown += 1;
                    kk.4 += 1;
                }
                _ => c.eq_other += 1,
            },
        }
    }
    // `TFC_MUTATION_VERBOSE=1` lists every mutant with its classification and verdict.
    if std::env::var_os("TFC_MUTATION_VERBOSE").is_some() {
        for row in &rows {
            let verdict = match &row.got {
                Got::Refused => "refused".to_string(),
                Got::Verdict(v, local, first) => format!("{v}{}", if *local { format!(" [{first}]") } else { String::new() }),
                Got::Panicked(m) => format!("PANIC {m}"),
            };
            let class = row.wrong.as_ref().map_or("equivalent".to_string(), |w| format!("wrong {w}"));
            println!("{}: [{}] {}: {class}: {verdict}", subjects[row.prog].name, row.kind, row.desc);
        }
    }
    println!();
    println!(
        "{:<32} {:>4} {:>5} | {:>5} {:>5} {:>5} {:>5} {:>5} | {:>5} {:>5} {:>5} | {:>6} {:>6} | {:>8} {:>6} {:>7}",
        "program", "mut", "wrong", "refut", "refus", "unkn", "prov", "local", "eq.pr", "eq.un", "eq.rf", "kill%", "local%", "baseline", "diff s", "verif s"
    );
    let mut tot = C::default();
    for (p, s) in subjects.iter().enumerate() {
        let c = per[p];
        let pct = |a: usize, b: usize| if b == 0 { "-".to_string() } else { format!("{:.0}", 100.0 * a as f64 / b as f64) };
        println!(
            "{:<32} {:>4} {:>5} | {:>5} {:>5} {:>5} {:>5} {:>5} | {:>5} {:>5} {:>5} | {:>6} {:>6} | {:>8} {:>6.1} {:>7.1}{}",
            s.name,
            c.n,
            c.wrong,
            c.refuted,
            c.refused,
            c.unknown,
            c.proved,
            c.local,
            c.eq_proved,
            c.eq_unknown,
            c.eq_other,
            pct(c.refuted + c.refused, c.wrong),
            pct(c.local, c.wrong),
            baseline.get(&p).map_or("-", |b| b.as_str()),
            times.get(&p).map_or(0.0, |t| t.0),
            times.get(&p).map_or(0.0, |t| t.1),
            if s.exhaustive { "" } else { " (sampled)" }
        );
        tot.n += c.n;
        tot.wrong += c.wrong;
        tot.refuted += c.refuted;
        tot.refused += c.refused;
        tot.unknown += c.unknown;
        tot.proved += c.proved;
        tot.local += c.local;
        tot.rescued += c.rescued;
        tot.eq_proved += c.eq_proved;
        tot.eq_unknown += c.eq_unknown;
        tot.eq_other += c.eq_other;
    }
    println!(
        "{:<32} {:>4} {:>5} | {:>5} {:>5} {:>5} {:>5} {:>5} | {:>5} {:>5} {:>5} | {:>6.1} {:>6.1} |",
        "total",
        tot.n,
        tot.wrong,
        tot.refuted,
        tot.refused,
        tot.unknown,
        tot.proved,
        tot.local,
        tot.eq_proved,
        tot.eq_unknown,
        tot.eq_other,
        100.0 * (tot.refuted + tot.refused) as f64 / tot.wrong.max(1) as f64,
        100.0 * tot.local as f64 / tot.wrong.max(1) as f64
    );
    println!();
    println!("{:<10} {:>5} {:>5} {:>6} {:>5} {:>5}", "kind", "mut", "wrong", "killed", "eq.pr", "eq.un");
    for (k, (n, w, killed, ep, eu)) in &kinds {
        println!("{k:<10} {n:>5} {w:>5} {killed:>6} {ep:>5} {eu:>5}");
    }
    println!(
        "\n{} mutants in {:.1} s; {} wrong mutant(s) left unknown at the reduced evidence budget were refuted with the default options",
        rows.len(),
        t0.elapsed().as_secs_f64(),
        tot.rescued
    );
    for f in &failures {
        println!("FINDING {f}");
    }
    assert!(failures.is_empty(), "{} verifier finding(s):\n{}", failures.len(), failures.join("\n"));
    assert!(tot.wrong > 0 || subjects.is_empty(), "no mutant was wrong: the mutations do nothing");
}

/// No corpus program has two `width` heads in one layer, so the mutants
/// above never make two of them share a scratch dimension; this program
/// does. Each model below is wrong (or not step-equivalent) although each
/// of its blocks, checked alone, is right: the verifier must not prove it
/// from its local checks (evidence run off), and with its evidence run on
/// it must refute the wrong ones.
#[test]
fn blocks_that_interfere_within_a_sublayer_are_not_proved() {
    let src = "program two_widths {
  vocab {a, b}
  max_len 4
  %tok = tokens
  %idx = indices
  %s1  = select %tok, %tok, eq
  %w1  = width %s1
  %s2  = select %idx, %idx, le
  %w2  = width %s2
  %out = seqmap %w1, %w2 { x + 10 * y } : cat
  output %out
}";
    let checked = tfc_ir::check(&tfc_ir::parse(src).expect("parses")).expect("checks");
    let model = tfc_compiler::compile(&checked).expect("compiles").model;
    let local_only = Options { evidence_inputs: 0, ..Options::default() };
    let verdict = |m: &Model, o: &Options| tfc_verifier::verify(&checked, m, o).map(|r| r.verdict).map_err(|e| e.to_string());
    assert_eq!(verdict(&model, &Options::default()), Ok(Verdict::Proved), "the unmutated model");
    let dim = |l: &str| model.basis_index(l).unwrap_or_else(|| panic!("no `{l}` dimension"));
    let (w0, w1) = (dim("scratch.w0"), dim("scratch.w1"));
    let layer = model.layers.iter().position(|l| l.attn.len() == 2).expect("a layer with both width heads");
    let h2 = model.layers[layer].attn.iter().position(|h| h.instructions == ["%w2"]).expect("the head of %w2");
    let d2 = model.layers[layer].mlps.iter().position(|m| m.instructions == ["%w2"]).expect("the decoder of %w2");
    let to_w0 = |j: usize| if j == w1 { w0 } else { j };

    // %w2's head and decoder moved onto %w1's scratch dimension: both decoders read the sum.
    let mut shared = model.clone();
    {
        let l = &mut shared.layers[layer];
        let h = &mut l.attn[h2];
        h.w_o = remap(&h.w_o, h.w_o.rows, h.w_o.cols, |i, j, v| Some((i, to_w0(j), v.clone())));
        let m = &mut l.mlps[d2];
        m.w_in = remap(&m.w_in, m.w_in.rows, m.w_in.cols, |i, j, v| Some((to_w0(i), j, v.clone())));
        m.w_out = remap(&m.w_out, m.w_out.rows, m.w_out.cols, |i, j, v| Some((i, to_w0(j), v.clone())));
        m.b_out = SparseVec::from_pairs(m.b_out.len, m.b_out.entries.iter().map(|(j, v)| (to_w0(*j), v.clone()))).expect("in range");
    }
    // A width head (with its decoder) twice: twice the 1/(w+1), twice the width.
    let mut twice = model.clone();
    let (h, m) = (twice.layers[layer].attn[h2].clone(), twice.layers[layer].mlps[d2].clone());
    twice.layers[layer].attn.push(h);
    twice.layers[layer].mlps.push(m);
    // The final MLP twice: the readout's argmax still decodes it, but the
    // residual holds 2 in `%out`'s dimension, so the model is not
    // step-equivalent (not wrong on any input: not refuted either).
    let mut out_twice = model.clone();
    let last = out_twice.layers.len() - 1;
    let m = out_twice.layers[last].mlps[0].clone();
    out_twice.layers[last].mlps.push(m);

    for (what, m, wrong) in [("shared scratch", &shared, true), ("width twice", &twice, true), ("output MLP twice", &out_twice, false)] {
        m.validate().expect("valid");
        let local = verdict(m, &local_only);
        assert!(local != Ok(Verdict::Proved), "{what}: proved by the local checks alone");
        let full = verdict(m, &Options::default());
        if wrong {
            assert_eq!(full, Ok(Verdict::Refuted), "{what}: wrong, so refuted");
        } else {
            assert!(full != Ok(Verdict::Proved), "{what}: not step-equivalent, so not proved");
        }
    }
}
