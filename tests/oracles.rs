//! Independent oracles for the corpus expectations.
//!
//! Every `; run: <input> => <output>` line in `corpus/` is checked here against a plain Rust
//! function written from the program's *description* (../shared/ANCHORS.md, issue 2, the
//! `;;` prose of the file) -- never from its IR, and never from what `tfc` prints. So the
//! expectations are checked twice: by `tfc test` against the interpreter, and here against
//! an oracle that shares no code with tfc (this file does not use tfc's parser either: the
//! expectation lines are read with plain string handling).
//!
//! Each oracle also carries its own copy of the program's vocabulary, `max_len` and
//! `distinct_tokens`, so a `=> error E0601` line (bad input) is checked too.
//!
//! Rules enforced:
//! - every corpus file carries at least one expectation (`; run:`, `; error:`, `; warning:`);
//! - every file with `; run:` lines has an oracle, unless it is listed in [`HAND_DERIVED`];
//! - every oracle names an existing file;
//! - every file under `corpus/errors/` expects exactly one error and has no `; run:` lines;
//! - expected outputs are printed canonically (`5/2`, `-1/3`, `3`, bare symbols), so they
//!   compare as strings with the oracle's printed output.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Positive programs whose run lines are checked by hand only (no oracle). Each entry must
/// say why. Empty: every positive program has an oracle.
const HAND_DERIVED: &[&str] = &[];

// ---------------------------------------------------------------------------------------
// Values

#[derive(Clone, Debug, PartialEq, Eq)]
enum V {
    N(BigRational),
    S(String),
}

impl fmt::Display for V {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V::N(r) if r.is_integer() => write!(f, "{}", r.numer()),
            V::N(r) => write!(f, "{}/{}", r.numer(), r.denom()),
            V::S(s) => write!(f, "{s}"),
        }
    }
}

fn int(i: i64) -> V {
    V::N(BigRational::from_integer(BigInt::from(i)))
}

fn rat(p: i64, q: i64) -> V {
    V::N(BigRational::new(BigInt::from(p), BigInt::from(q)))
}

fn sym(s: &str) -> V {
    V::S(s.to_string())
}

fn boolv(b: bool) -> V {
    int(b as i64)
}

fn num(v: &V) -> BigRational {
    match v {
        V::N(r) => r.clone(),
        V::S(s) => panic!("oracle needs a number, got symbol {s}"),
    }
}

fn num_i64(v: &V) -> i64 {
    let r = num(v);
    assert!(r.is_integer(), "oracle needs an integer, got {r}");
    r.to_integer().to_i64().expect("small integer")
}

fn is_sym(v: &V, s: &str) -> bool {
    matches!(v, V::S(x) if x == s)
}

/// Parse one token as `--input` takes it: an integer, a rational `p/q`, a decimal `0.25`,
/// else a symbol (surrounding quotes removed).
fn parse_tok(t: &str) -> V {
    if let Some(r) = parse_number(t) {
        return V::N(r);
    }
    let s = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t);
    V::S(s.to_string())
}

fn parse_number(t: &str) -> Option<BigRational> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let r = if let Some((p, q)) = body.split_once('/') {
        if !digits(p) || !digits(q) {
            return None;
        }
        let q: BigInt = q.parse().ok()?;
        if q.is_zero() {
            return None;
        }
        BigRational::new(p.parse().ok()?, q)
    } else if let Some((w, d)) = body.split_once('.') {
        if !digits(w) || !digits(d) {
            return None;
        }
        let den = BigInt::from(10u32).pow(d.len() as u32);
        let n: BigInt = format!("{w}{d}").parse().ok()?;
        BigRational::new(n, den)
    } else {
        if !digits(body) {
            return None;
        }
        BigRational::from_integer(body.parse().ok()?)
    };
    Some(if neg { -r } else { r })
}

// ---------------------------------------------------------------------------------------
// Oracles, one per positive program, from the description.

type Out = Result<Vec<V>, String>;

struct Oracle {
    /// Path under `corpus/`.
    path: &'static str,
    vocab: Vec<V>,
    max_len: usize,
    distinct: bool,
    f: fn(&[V]) -> Out,
}

fn ints(lo: i64, hi: i64) -> Vec<V> {
    (lo..=hi).map(int).collect()
}

fn syms(s: &[&str]) -> Vec<V> {
    s.iter().map(|x| sym(x)).collect()
}

fn oracles() -> Vec<Oracle> {
    let o = |path, vocab, max_len, distinct, f| Oracle { path, vocab, max_len, distinct, f };
    let abc = || syms(&["a", "b", "c"]);
    vec![
        // Tracr's library (ANCHORS.md).
        o("tracr/length.ir", ints(1, 3), 5, false, length),
        o("tracr/reverse.ir", ints(1, 3), 5, false, reverse),
        o("tracr/hist.ir", ints(1, 3), 5, false, hist),
        o("tracr/sort_unique.ir", ints(1, 5), 5, true, sort),
        o("tracr/sort_unique_n10.ir", ints(1, 10), 10, true, sort),
        o("tracr/sort.ir", ints(1, 3), 5, false, sort),
        o("tracr/sort_freq.ir", ints(1, 3), 5, false, sort_freq),
        o("tracr/sort_freq_n10.ir", ints(1, 3), 10, false, sort_freq),
        o("tracr/frac_prevs.ir", abc(), 5, false, frac_prevs),
        o("tracr/pair_balance.ir", syms(&["(", ")"]), 5, false, pair_balance),
        o("tracr/shuffle_dyck.ir", syms(&["(", ")"]), 5, false, shuffle_dyck),
        o("tracr/shuffle_dyck2.ir", syms(&["(", ")", "{", "}"]), 5, false, shuffle_dyck2),
        o("tracr/shuffle_dyck2_n10.ir", syms(&["(", ")", "{", "}"]), 10, false, shuffle_dyck2),
        o("tracr/shift_by.ir", abc(), 5, false, shift_by_1),
        o("tracr/detect_pattern.ir", abc(), 5, false, detect_abc),
        o("tracr/detect_pattern_n6.ir", abc(), 6, false, detect_abc),
        o("tracr/count_less_freq.ir", abc(), 5, false, count_less_freq_2),
        o("tracr/count_less_freq_n6.ir", abc(), 6, false, count_less_freq_2),
        o("tracr/count.ir", abc(), 5, false, count_a),
        o("tracr/nary_sequencemap.ir", ints(1, 3), 5, false, nary_x_plus_y_minus_z),
        // Programs and cases from the field (issue 2).
        o("programs/seen_before.ir", ints(1, 4), 6, false, seen_before),
        o("programs/seen_before_width.ir", ints(1, 4), 6, false, seen_before),
        o("programs/earlier_position.ir", ints(1, 3), 5, false, seen_before),
        o("programs/running_mean_num.ir", ints(1, 3), 5, false, running_mean),
        o("programs/running_mean_times_index.ir", ints(1, 3), 5, false, running_sum),
        o("programs/select_idx_tok.ir", ints(1, 4), 4, false, select_idx_tok),
        o("programs/select_idx_tok_twice.ir", ints(1, 4), 4, false, select_idx_tok_twice),
        o("programs/width2_num.ir", vec![rat(1, 2), int(1), rat(3, 2)], 3, false, mean_first_two),
        o("programs/reverse_causal.ir", ints(1, 3), 5, false, reverse_prefix),
        o("programs/reverse_noncausal.ir", ints(1, 3), 5, false, reverse),
        o("programs/map_minus_one.ir", ints(0, 2), 3, false, minus_one),
        o("programs/indices_only.ir", abc(), 5, false, index_times_prev),
        o("programs/causal_length_map.ir", syms(&["a", "b"]), 4, false, twice_prefix_length),
        // Loops.
        o("loops/parity.ir", ints(0, 1), 8, false, parity),
        o("loops/addition.ir", ints(0, 99), 8, false, addition),
        o("loops/prefix_sum_doubling.ir", ints(0, 3), 8, false, prefix_sum),
        o("loops/prefix_sum_serial.ir", ints(0, 3), 8, false, prefix_sum),
        o("loops/subleq.ir", ints(-16, 16), 16, false, subleq),
        o("loops/chained_loops.ir", ints(0, 1), 3, false, complement),
        o("loops/dead_iterations.ir", ints(0, 1), 3, false, complement),
        o("loops/dead_until.ir", ints(0, 1), 3, false, complement_unless_all_zero),
    ]
}

fn everywhere(m: usize, v: V) -> Out {
    Ok(vec![v; m])
}

/// m at every position.
fn length(t: &[V]) -> Out {
    everywhere(t.len(), int(t.len() as i64))
}

/// The input backwards.
fn reverse(t: &[V]) -> Out {
    Ok(t.iter().rev().cloned().collect())
}

/// Under prefix (causal) semantics position i sees t_0..t_i and takes element i of that
/// prefix reversed.
fn reverse_prefix(t: &[V]) -> Out {
    Ok((0..t.len())
        .map(|i| {
            let prefix: Vec<&V> = t[..=i].iter().rev().collect();
            prefix[i].clone()
        })
        .collect())
}

fn occurrences(t: &[V], v: &V) -> usize {
    t.iter().filter(|x| *x == v).count()
}

/// How often t_i occurs in the whole input.
fn hist(t: &[V]) -> Out {
    Ok(t.iter().map(|v| int(occurrences(t, v) as i64)).collect())
}

/// Ascending order.
fn sort(t: &[V]) -> Out {
    let mut s = t.to_vec();
    s.sort_by_key(num);
    Ok(s)
}

/// Descending frequency, ties in input order (a stable sort).
fn sort_freq(t: &[V]) -> Out {
    let mut s = t.to_vec();
    s.sort_by_key(|v| std::cmp::Reverse(occurrences(t, v)));
    Ok(s)
}

fn prefix_fraction(t: &[V], pred: impl Fn(&V) -> bool) -> Vec<BigRational> {
    let mut hits = 0i64;
    (0..t.len())
        .map(|i| {
            if pred(&t[i]) {
                hits += 1;
            }
            BigRational::new(BigInt::from(hits), BigInt::from(i as i64 + 1))
        })
        .collect()
}

/// Fraction of positions <= i holding `a`.
fn frac_prevs(t: &[V]) -> Out {
    Ok(prefix_fraction(t, |v| is_sym(v, "a")).into_iter().map(V::N).collect())
}

/// frac_prevs of `(` minus frac_prevs of `)`.
fn pair_balance(t: &[V]) -> Out {
    let o = prefix_fraction(t, |v| is_sym(v, "("));
    let c = prefix_fraction(t, |v| is_sym(v, ")"));
    Ok(o.into_iter().zip(c).map(|(a, b)| V::N(a - b)).collect())
}

/// 1 everywhere when every pair type is balanced on its own, else 0 everywhere.
fn balanced(t: &[V], pairs: &[(&str, &str)]) -> Out {
    let ok = pairs.iter().all(|(open, close)| {
        let mut depth = 0i64;
        for v in t {
            if is_sym(v, open) {
                depth += 1;
            } else if is_sym(v, close) {
                depth -= 1;
            }
            if depth < 0 {
                return false;
            }
        }
        depth == 0
    });
    everywhere(t.len(), boolv(ok))
}

fn shuffle_dyck(t: &[V]) -> Out {
    balanced(t, &[("(", ")")])
}

fn shuffle_dyck2(t: &[V]) -> Out {
    balanced(t, &[("(", ")"), ("{", "}")])
}

/// t_{i-1}, `_` at position 0.
fn shift_by_1(t: &[V]) -> Out {
    let mut out = vec![sym("_")];
    out.extend(t[..t.len() - 1].iter().cloned());
    Ok(out)
}

/// 1 where t_{i-2} t_{i-1} t_i = a b c, 0 elsewhere, `_` at positions 0 and 1.
fn detect_abc(t: &[V]) -> Out {
    let pat = syms(&["a", "b", "c"]);
    Ok((0..t.len())
        .map(|i| if i < 2 { sym("_") } else { boolv(t[i - 2..=i] == pat[..]) })
        .collect())
}

/// How many positions hold a token occurring at most 2 times.
fn count_less_freq_2(t: &[V]) -> Out {
    let n = t.iter().filter(|v| occurrences(t, v) <= 2).count();
    everywhere(t.len(), int(n as i64))
}

/// The number of `a` tokens.
fn count_a(t: &[V]) -> Out {
    everywhere(t.len(), int(occurrences(t, &sym("a")) as i64))
}

/// f(t_i, t_i, i) with f(x, y, z) = x + y - z.
fn nary_x_plus_y_minus_z(t: &[V]) -> Out {
    Ok(t.iter().enumerate().map(|(i, v)| int(2 * num_i64(v) - i as i64)).collect())
}

/// 1 where t_i occurs at an earlier position.
fn seen_before(t: &[V]) -> Out {
    Ok((0..t.len()).map(|i| boolv(t[..i].contains(&t[i]))).collect())
}

fn prefix_sums(t: &[V]) -> Vec<BigRational> {
    let mut acc = BigRational::zero();
    t.iter()
        .map(|v| {
            acc += num(v);
            acc.clone()
        })
        .collect()
}

/// Mean of t_0..t_i.
fn running_mean(t: &[V]) -> Out {
    Ok(prefix_sums(t)
        .into_iter()
        .enumerate()
        .map(|(i, s)| V::N(s / BigInt::from(i as i64 + 1)))
        .collect())
}

/// t_0 + .. + t_i.
fn running_sum(t: &[V]) -> Out {
    Ok(prefix_sums(t).into_iter().map(V::N).collect())
}

/// The query with token t picks index t: t_i where t_i < m, else the default `_`.
fn select_idx_tok(t: &[V]) -> Out {
    let m = t.len() as i64;
    Ok(t.iter()
        .map(|v| if num_i64(v) < m { v.clone() } else { sym("_") })
        .collect())
}

/// select_idx_tok's result read again through the same selection.
fn select_idx_tok_twice(t: &[V]) -> Out {
    let r1 = select_idx_tok(t)?;
    let m = t.len() as i64;
    Ok(t.iter()
        .map(|v| {
            let j = num_i64(v);
            if j < m {
                r1[j as usize].clone()
            } else {
                sym("_")
            }
        })
        .collect())
}

/// Mean of t_0 and t_1 (t_0 alone for a 1-token input), everywhere.
fn mean_first_two(t: &[V]) -> Out {
    let k = t.len().min(2);
    let s: BigRational = t[..k].iter().map(num).sum();
    everywhere(t.len(), V::N(s / BigInt::from(k as i64)))
}

fn minus_one(t: &[V]) -> Out {
    Ok(t.iter().map(|v| V::N(num(v) - BigRational::one())).collect())
}

/// i * (i - 1), whatever the tokens.
fn index_times_prev(t: &[V]) -> Out {
    Ok((0..t.len() as i64).map(|i| int(i * (i - 1))).collect())
}

/// 2 (i + 1) at position i: twice the length of the prefix a causal query sees.
fn twice_prefix_length(t: &[V]) -> Out {
    Ok((0..t.len() as i64).map(|i| int(2 * (i + 1))).collect())
}

/// 1 − t_i when some token is 1 (the loop halts), else it never halts: E0604.
fn complement_unless_all_zero(t: &[V]) -> Out {
    if t.iter().any(|v| num_i64(v) == 1) {
        complement(t)
    } else {
        Err("E0604".into())
    }
}

/// The number of 1 tokens mod 2, everywhere.
/// 1 − t_i at every position (two flips, then one).
fn complement(t: &[V]) -> Out {
    Ok(t.iter().map(|v| int(1 - num_i64(v))).collect())
}

fn parity(t: &[V]) -> Out {
    let ones = t.iter().filter(|v| num_i64(v) == 1).count();
    everywhere(t.len(), int((ones % 2) as i64))
}

/// Token 10a + b holds digit a of A and digit b of B at weight 10^i (position i); output
/// the digits of A + B, least significant first, as many as the input has (mod 10^m).
fn addition(t: &[V]) -> Out {
    let (mut a, mut b, mut w) = (0u128, 0u128, 1u128);
    for v in t {
        let code = num_i64(v) as u128;
        a += (code / 10) * w;
        b += (code % 10) * w;
        w *= 10;
    }
    let mut s = a + b;
    Ok((0..t.len())
        .map(|_| {
            let d = s % 10;
            s /= 10;
            int(d as i64)
        })
        .collect())
}

fn prefix_sum(t: &[V]) -> Out {
    running_sum(t)
}

/// A plain SUBLEQ stepper, as the machine is defined in loops/subleq.ir's prose:
/// 16-cell address space, cells saturating at -16..16, reads outside the input give 0,
/// writes there are dropped, halt when the next pc is outside 0..13, at most 64 steps.
fn subleq(t: &[V]) -> Out {
    const LAST_PC: i64 = 13;
    const MAX_STEPS: usize = 64;
    let mut mem: Vec<i64> = t.iter().map(num_i64).collect();
    let m = mem.len() as i64;
    let read = |mem: &Vec<i64>, addr: i64| if (0..m).contains(&addr) { mem[addr as usize] } else { 0 };
    let mut pc: i64 = 0;
    for _ in 0..MAX_STEPS {
        if pc < 0 {
            break;
        }
        let (a, b, c) = (read(&mem, pc), read(&mem, pc + 1), read(&mem, pc + 2));
        let nb = (read(&mem, b) - read(&mem, a)).clamp(-16, 16);
        if (0..m).contains(&b) {
            mem[b as usize] = nb;
        }
        let next = if nb <= 0 { c } else { pc + 3 };
        pc = if (0..=LAST_PC).contains(&next) { next } else { -1 };
    }
    if pc >= 0 {
        return Err("E0604".into());
    }
    Ok(mem.into_iter().map(int).collect())
}

// ---------------------------------------------------------------------------------------
// The corpus side: plain line parsing.

struct RunLine {
    line: usize,
    input: String,
    expected: String,
}

struct Expectations {
    runs: Vec<RunLine>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

fn expectations(text: &str) -> Expectations {
    let mut e = Expectations { runs: vec![], errors: vec![], warnings: vec![] };
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with(";;") {
            continue;
        }
        let Some(rest) = l.strip_prefix(';') else { continue };
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("run:") {
            let (input, expected) = r
                .split_once("=>")
                .unwrap_or_else(|| panic!("line {}: `; run:` without `=>`", n + 1));
            e.runs.push(RunLine {
                line: n + 1,
                input: input.trim().to_string(),
                expected: expected.trim().to_string(),
            });
        } else if let Some(r) = rest.strip_prefix("error:") {
            e.errors.push(r.trim().to_string());
        } else if let Some(r) = rest.strip_prefix("warning:") {
            e.warnings.push(r.trim().to_string());
        }
    }
    e
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn ir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            ir_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ir") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(corpus_dir()).unwrap().to_string_lossy().replace('\\', "/")
}

/// Run the oracle on one input, with the input checks `tfc run` does (E0601).
fn run_oracle(o: &Oracle, input: &[V]) -> Out {
    if input.is_empty() || input.len() > o.max_len {
        return Err("E0601".into());
    }
    if input.iter().any(|v| !o.vocab.contains(v)) {
        return Err("E0601".into());
    }
    if o.distinct && (0..input.len()).any(|i| input[..i].contains(&input[i])) {
        return Err("E0601".into());
    }
    (o.f)(input)
}

fn show(out: &Out) -> String {
    match out {
        Ok(vs) => vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "),
        Err(code) => format!("error {code}"),
    }
}

#[test]
fn corpus_expectations_match_the_oracles() {
    let oracles: BTreeMap<&str, Oracle> = oracles().into_iter().map(|o| (o.path, o)).collect();
    let mut files = vec![];
    ir_files(&corpus_dir(), &mut files);
    assert!(!files.is_empty(), "no corpus files under {}", corpus_dir().display());

    let mut failures = vec![];
    let mut checked = 0usize;
    for f in &files {
        let name = rel(f);
        // Lossy: the non-UTF-8 regression file keeps its expectation in ASCII.
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let e = expectations(&text);
        if e.runs.is_empty() && e.errors.is_empty() && e.warnings.is_empty() {
            failures.push(format!("{name}: no expectation lines"));
        }
        if name.starts_with("errors/") {
            if e.errors.len() != 1 || !e.runs.is_empty() {
                failures.push(format!(
                    "{name}: a negative program expects exactly one error and no runs \
                     (has {} error lines, {} run lines)",
                    e.errors.len(),
                    e.runs.len()
                ));
            }
        }
        for code in e.errors.iter().chain(&e.warnings) {
            let ok = code.len() == 5
                && (code.starts_with('E') || code.starts_with('W'))
                && code[1..].bytes().all(|b| b.is_ascii_digit());
            if !ok {
                failures.push(format!("{name}: malformed code `{code}`"));
            }
        }
        if e.runs.is_empty() {
            continue;
        }
        let Some(o) = oracles.get(name.as_str()) else {
            if !HAND_DERIVED.contains(&name.as_str()) {
                failures.push(format!(
                    "{name}: has run lines but no oracle (add one, or list it in HAND_DERIVED)"
                ));
            }
            continue;
        };
        for r in &e.runs {
            let input: Vec<V> = r.input.split_whitespace().map(parse_tok).collect();
            let got = show(&run_oracle(o, &input));
            let want = r.expected.split_whitespace().collect::<Vec<_>>().join(" ");
            checked += 1;
            if got != want {
                failures.push(format!(
                    "{name}:{}: `{}` expects `{want}`, the oracle gives `{got}`",
                    r.line, r.input
                ));
            }
        }
    }
    for path in oracles.keys() {
        if !files.iter().any(|f| rel(f) == *path) {
            failures.push(format!("oracle for {path}, which does not exist"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) ({checked} run lines checked):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 100, "only {checked} run lines checked");
}

#[test]
fn oracle_helpers_print_canonically() {
    assert_eq!(rat(10, 4).to_string(), "5/2");
    assert_eq!(rat(-2, 6).to_string(), "-1/3");
    assert_eq!(int(-1).to_string(), "-1");
    assert_eq!(parse_tok("0.25"), rat(1, 4));
    assert_eq!(parse_tok("-3/6"), rat(-1, 2));
    assert_eq!(parse_tok("\"(\""), sym("("));
    assert_eq!(parse_tok("_"), sym("_"));
    assert!(rat(1, 2).to_string().parse::<String>().is_ok());
    assert!(num(&rat(-1, 2)).is_negative());
}
