//! Differential test: every positive corpus program, compiled, run exactly
//! (rational arithmetic, hard attention), against the reference interpreter
//! (issue 3, "Checks").
//!
//! For each program under `corpus/` that checks and carries `; run:` lines
//! (so not `corpus/errors/`): every input up to `max_len` when there are at
//! most [`EXHAUSTIVE_BUDGET`] of them, otherwise at least [`SAMPLES`]
//! inputs covering every length (lengths with few inputs in full, the rest
//! drawn with a fixed seed). Inputs the interpreter refuses (E0602 at run
//! time, E0604, ...) have no meaning to compare with: they are counted per
//! program and skipped, and a program where more than half the inputs are
//! skipped fails, since then the test checks nothing.
//!
//! On the first disagreement of a program the test fails with the program,
//! the input, the first differing position with both outputs, and
//! `tfc_compiler::diff::first_mismatch`'s report: the first step (layer,
//! attention or MLP, loop run), position and labelled residual dimension
//! where the model stops holding what its layout promises.
//!
//! The bulk comparison runs the model in [`Small`], an exact rational
//! scalar that keeps numbers as `i64` fractions and falls back to big
//! rationals whenever a result does not fit: the same numbers as the `Rat`
//! forward pass (every operation is exact either way), several times
//! faster. `first_mismatch` and [`small_scalar_equals_rat`] use `Rat`.
//!
//! Run with `cargo test --release --test differential -- --nocapture` to
//! see the per-program table (inputs, exhaustive or sampled, time).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tfc_compiler::diff::{first_mismatch, DiffError};
use tfc_compiler::Compiled;
use tfc_ir::check::{all_inputs, random_input, Checked, SplitMix};
use num_bigint::BigInt;
use num_traits::{ToPrimitive, Zero};
use std::cmp::Ordering as Cmp;
use tfc_ir::forward::{Attention, ForwardOptions, PreparedModel, Scalar};
use tfc_ir::interp::{self, RunOptions};
use tfc_ir::{Program, Rat, Value};

// ---------------------------------------------------------------------------
// An exact scalar for speed

/// An exact rational: `S(n, d)` with `d > 0` and `gcd(n, d) = 1` whenever
/// both fit in `i64` (so equal numbers have equal representations), the
/// big rational otherwise. Every operation is computed exactly (products
/// of two `i64`s in `i128`), then normalised.
#[derive(Clone, Debug, PartialEq)]
enum Small {
    S(i64, i64),
    B(Box<Rat>),
}

fn gcd_u128(mut a: u128, mut b: u128) -> u128 {
    if a <= u128::from(u64::MAX) && b <= u128::from(u64::MAX) {
        let (mut x, mut y) = (a as u64, b as u64);
        while y != 0 {
            (x, y) = (y, x % y);
        }
        return u128::from(x);
    }
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Small {
    /// `n / d` for `d != 0`, normalised.
    fn frac(n: i128, d: i128) -> Small {
        assert!(d != 0, "division by zero");
        let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
        let g = gcd_u128(n.unsigned_abs(), d.unsigned_abs()).max(1) as i128;
        let (n, d) = (n / g, d / g);
        match (i64::try_from(n), i64::try_from(d)) {
            (Ok(n), Ok(d)) => Small::S(n, d),
            _ => Small::B(Box::new(Rat::new_raw(BigInt::from(n), BigInt::from(d)))),
        }
    }
    fn big(r: Rat) -> Small {
        match (r.numer().to_i64(), r.denom().to_i64()) {
            (Some(n), Some(d)) => Small::S(n, d),
            _ => Small::B(Box::new(r)),
        }
    }
    fn rat(&self) -> Rat {
        match self {
            Small::S(n, d) => Rat::new_raw(BigInt::from(*n), BigInt::from(*d)),
            Small::B(r) => (**r).clone(),
        }
    }
}

impl PartialOrd for Small {
    fn partial_cmp(&self, other: &Small) -> Option<Cmp> {
        match (self, other) {
            (Small::S(a, b), Small::S(c, d)) if b == d => a.partial_cmp(c),
            (Small::S(a, b), Small::S(c, d)) => (i128::from(*a) * i128::from(*d)).partial_cmp(&(i128::from(*c) * i128::from(*b))),
            _ => self.rat().partial_cmp(&other.rat()),
        }
    }
}

impl Scalar for Small {
    const NAME: &'static str = "exact (i64 fractions)";
    const EXACT: bool = true;
    fn zero() -> Small {
        Small::S(0, 1)
    }
    fn one() -> Small {
        Small::S(1, 1)
    }
    fn from_rat(r: &Rat) -> Small {
        Small::big(r.clone())
    }
    fn add(&self, o: &Small) -> Small {
        match (self, o) {
            (Small::S(a, 1), Small::S(c, 1)) => a.checked_add(*c).map_or_else(|| Small::frac(i128::from(*a) + i128::from(*c), 1), |s| Small::S(s, 1)),
            (Small::S(a, b), Small::S(c, d)) if b == d => Small::frac(i128::from(*a) + i128::from(*c), i128::from(*b)),
            (Small::S(a, b), Small::S(c, d)) => {
                let (a, b, c, d) = (i128::from(*a), i128::from(*b), i128::from(*c), i128::from(*d));
                Small::frac(a * d + c * b, b * d)
            }
            _ => Small::big(self.rat() + o.rat()),
        }
    }
    fn sub(&self, o: &Small) -> Small {
        self.add(&match o {
            Small::S(n, d) if *n != i64::MIN => Small::S(-n, *d),
            _ => Small::big(-o.rat()),
        })
    }
    fn mul(&self, o: &Small) -> Small {
        match (self, o) {
            (Small::S(0, _), _) | (_, Small::S(0, _)) => Small::S(0, 1),
            (Small::S(a, 1), Small::S(c, 1)) => a.checked_mul(*c).map_or_else(|| Small::frac(i128::from(*a) * i128::from(*c), 1), |p| Small::S(p, 1)),
            (Small::S(a, b), Small::S(c, d)) => Small::frac(i128::from(*a) * i128::from(*c), i128::from(*b) * i128::from(*d)),
            _ => Small::big(self.rat() * o.rat()),
        }
    }
    fn div(&self, o: &Small) -> Small {
        match (self, o) {
            (Small::S(a, b), Small::S(c, d)) => Small::frac(i128::from(*a) * i128::from(*d), i128::from(*b) * i128::from(*c)),
            _ => Small::big(self.rat() / o.rat()),
        }
    }
    fn relu(&self) -> Small {
        match self {
            Small::S(n, _) if *n < 0 => Small::S(0, 1),
            Small::S(..) => self.clone(),
            Small::B(r) => Small::big((**r).clone().max(<Rat as Zero>::zero())),
        }
    }
    fn exp(&self) -> Option<Small> {
        None
    }
    fn is_zero(&self) -> bool {
        matches!(self, Small::S(0, _))
    }
    fn is_finite(&self) -> bool {
        true
    }
    fn to_f64(&self) -> f64 {
        ToPrimitive::to_f64(&self.rat()).unwrap_or(f64::NAN)
    }
    fn to_rat(&self) -> Option<Rat> {
        Some(self.rat())
    }
}

// ---------------------------------------------------------------------------

/// Exhaustive when a program has at most this many inputs.
const EXHAUSTIVE_BUDGET: usize = 100_000;
/// Otherwise at least this many.
const SAMPLES: usize = 2_000;

struct Corpus {
    /// Path under `corpus/`.
    name: String,
    checked: Checked,
    compiled: Compiled,
    /// The inputs of the file's `; run:` lines that expect an output.
    run_inputs: Vec<Vec<Value>>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn ir_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
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

fn parse_input(text: &str) -> Vec<Value> {
    text.split_whitespace().map(|t| tfc_ir::value::parse_value(t).unwrap_or_else(|| panic!("bad token {t:?}"))).collect()
}

/// Every positive corpus program, compiled.
fn corpus() -> Vec<Corpus> {
    let root = corpus_dir();
    let mut files = Vec::new();
    ir_files(&root, &mut files);
    let mut out = Vec::new();
    for path in files {
        let name = path.strip_prefix(&root).expect("under corpus/").to_string_lossy().replace('\\', "/");
        if name.starts_with("errors/") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable");
        let text = String::from_utf8_lossy(&bytes);
        let runs: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("; run:")).collect();
        if runs.is_empty() {
            continue; // e.g. a program expected to fail the checker
        }
        let (_, prog) = tfc_ir::parse_bytes(&bytes).unwrap_or_else(|d| panic!("{name} has `; run:` lines but does not parse: {}", d.message));
        let checked = tfc_ir::check(&prog).unwrap_or_else(|ds| panic!("{name} has `; run:` lines but does not check: {}", ds[0].message));
        let compiled = tfc_compiler::compile(&checked).unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        let run_inputs = runs
            .iter()
            .filter_map(|r| r.split_once("=>"))
            .filter(|(_, out)| !out.trim_start().starts_with("error"))
            .map(|(input, _)| parse_input(input))
            .collect();
        out.push(Corpus { name, checked, compiled, run_inputs });
    }
    assert!(out.len() >= 30, "only {} positive corpus programs found", out.len());
    out
}

/// How many inputs of length `len` a program admits (saturating).
fn count_of_length(p: &Program, len: usize) -> usize {
    let v = p.vocab.len();
    (0..len).fold(1usize, |acc, i| acc.saturating_mul(if p.distinct { v.saturating_sub(i) } else { v }))
}

/// Every input of length `len` (the caller knows there are few).
fn all_of_length(p: &Program, len: usize) -> Vec<Vec<Value>> {
    let mut layer: Vec<Vec<Value>> = vec![vec![]];
    for _ in 0..len {
        let mut next = Vec::new();
        for seq in &layer {
            for t in &p.vocab {
                if !(p.distinct && seq.contains(t)) {
                    let mut s = seq.clone();
                    s.push(t.clone());
                    next.push(s);
                }
            }
        }
        layer = next;
    }
    layer
}

/// The inputs to run, and whether they are all of them.
fn inputs_for(c: &Corpus) -> (Vec<Vec<Value>>, bool) {
    let p = &c.checked.program;
    if let Some(all) = all_inputs(p, EXHAUSTIVE_BUDGET) {
        return (all, true);
    }
    // A fixed seed per program, so a failure reproduces.
    let seed = c.name.bytes().fold(0x7fc_d1ffu64, |h, b| h.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(b)));
    let mut rng = SplitMix(seed);
    let lengths: Vec<usize> = (1..=p.max_len).filter(|&l| count_of_length(p, l) > 0).collect();
    let mut remaining = SAMPLES;
    let mut out = Vec::new();
    for (k, &len) in lengths.iter().enumerate() {
        let share = remaining.div_ceil(lengths.len() - k);
        let total = count_of_length(p, len);
        if total <= share {
            out.extend(all_of_length(p, len));
            remaining = remaining.saturating_sub(total);
        } else {
            let mut seen = HashSet::new();
            let mut tries = 0;
            while seen.len() < share && tries < 100 * share {
                tries += 1;
                let input = random_input(p, len, &mut rng);
                if seen.insert(input.clone()) {
                    out.push(input);
                }
            }
            remaining = remaining.saturating_sub(seen.len());
        }
    }
    (out, false)
}

/// What one program's run found.
struct Report {
    inputs: usize,
    exhaustive: bool,
    compared: usize,
    /// Inputs the interpreter refused, by diagnostic code.
    skipped: BTreeMap<&'static str, usize>,
    time: Duration,
    /// The first disagreement, fully described.
    failure: Option<String>,
}

impl Report {
    fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }
}

fn show(v: &[Value]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
}

/// Describes a disagreement on `input`, with the residual diagnosis.
fn describe(c: &Corpus, input: &[Value], expected: &[Value], actual: Result<&[Value], String>) -> String {
    let mut s = format!("{}: the compiled model disagrees with the interpreter on input `{}`\n", c.name, show(input));
    match actual {
        Ok(actual) => {
            let p = expected.iter().zip(actual).position(|(a, b)| a != b).unwrap_or(expected.len().min(actual.len()));
            s += &format!(
                "  first differing position {p}: interpreter {}, model {}\n  interpreter: {}\n  model:       {}\n",
                expected.get(p).map_or("(none)".into(), |v| v.to_string()),
                actual.get(p).map_or("(none)".into(), |v| v.to_string()),
                show(expected),
                show(actual)
            );
        }
        Err(e) => s += &format!("  interpreter: {}\n  model fails: {e}\n", show(expected)),
    }
    s += &match first_mismatch(&c.compiled, &c.checked, input) {
        Ok(Some(m)) => format!("  first_mismatch: {m}\n"),
        Ok(None) => "  first_mismatch: no residual mismatch found (?)\n".to_string(),
        Err(e) => format!("  first_mismatch: {e}\n"),
    };
    s
}

/// Runs model and interpreter on every input (on all cores), stopping at
/// the first disagreement.
fn check_program(c: &Corpus, inputs: &[Vec<Value>], exhaustive: bool) -> Report {
    let start = Instant::now();
    let prepared = PreparedModel::<Small>::new(&c.compiled.model).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let prog = &c.checked.program;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let compared = AtomicUsize::new(0);
    let skipped: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
    let first_bad: Mutex<Option<usize>> = Mutex::new(None);
    const CHUNK: usize = 32;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut local_skips: BTreeMap<&'static str, usize> = BTreeMap::new();
                let mut local_compared = 0;
                'work: while !stop.load(Ordering::Relaxed) {
                    let from = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if from >= inputs.len() {
                        break;
                    }
                    for (i, input) in inputs.iter().enumerate().skip(from).take(CHUNK) {
                        let run = match interp::run(prog, input, &RunOptions::default()) {
                            Ok(r) => r,
                            Err(d) => {
                                *local_skips.entry(d.code).or_default() += 1;
                                continue;
                            }
                        };
                        let agrees = match prepared.run(input, Attention::Hard, &ForwardOptions::default()) {
                            Ok(r) => r.outputs == run.output,
                            Err(_) => false,
                        };
                        if !agrees {
                            let mut fb = first_bad.lock().expect("not poisoned");
                            if fb.is_none_or(|j| i < j) {
                                *fb = Some(i);
                            }
                            stop.store(true, Ordering::Relaxed);
                            break 'work;
                        }
                        local_compared += 1;
                    }
                }
                compared.fetch_add(local_compared, Ordering::Relaxed);
                let mut s = skipped.lock().expect("not poisoned");
                for (k, v) in local_skips {
                    *s.entry(k).or_default() += v;
                }
            });
        }
    });
    let failure = first_bad.into_inner().expect("not poisoned").map(|i| {
        let input = &inputs[i];
        let run = interp::run(prog, input, &RunOptions::default()).expect("the interpreter ran it before");
        // The report uses the verifier's scalar.
        let exact = PreparedModel::<Rat>::new(&c.compiled.model).expect("prepared once already");
        let model = exact.run(input, Attention::Hard, &ForwardOptions::default());
        describe(c, input, &run.output, model.as_ref().map(|r| r.outputs.as_slice()).map_err(|e| e.to_string()))
    });
    Report {
        inputs: inputs.len(),
        exhaustive,
        compared: compared.into_inner(),
        skipped: skipped.into_inner().expect("not poisoned"),
        time: start.elapsed(),
        failure,
    }
}

#[test]
fn compiled_models_equal_the_interpreter() {
    let total = Instant::now();
    let programs = corpus();
    let mut failures = Vec::new();
    println!("{:<36} {:>8} {:>8} {:>8}  {:<10} {:>8}", "program", "inputs", "compared", "skipped", "mode", "time");
    for c in &programs {
        let (inputs, exhaustive) = inputs_for(c);
        let r = check_program(c, &inputs, exhaustive);
        let skips = if r.skipped.is_empty() {
            String::new()
        } else {
            format!("  ({})", r.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
        };
        println!(
            "{:<36} {:>8} {:>8} {:>8}  {:<10} {:>7.2}s{skips}",
            c.name,
            r.inputs,
            r.compared,
            r.skipped_total(),
            if r.exhaustive { "exhaustive" } else { "sampled" },
            r.time.as_secs_f64()
        );
        if let Some(f) = r.failure {
            failures.push(f);
        } else if !r.exhaustive && r.inputs < SAMPLES {
            failures.push(format!("{}: only {} inputs sampled, fewer than {SAMPLES}", c.name, r.inputs));
        } else if 2 * r.skipped_total() > r.inputs {
            failures.push(format!(
                "{}: the interpreter refused {} of {} inputs ({:?}); comparing the rest checks too little",
                c.name,
                r.skipped_total(),
                r.inputs,
                r.skipped
            ));
        }
    }
    println!("{} programs in {:.1}s", programs.len(), total.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{} program(s) disagree:\n{}", failures.len(), failures.join("\n"));
}

/// Beyond the outputs: on the `; run:` inputs and a few random ones, the
/// residual holds exactly what the layout promises after every step.
#[test]
fn residuals_keep_the_layout_promise() {
    let mut failures = Vec::new();
    for c in &corpus() {
        let p = &c.checked.program;
        let mut rng = SplitMix(0x5eed);
        let mut inputs = c.run_inputs.clone();
        for len in 1..=p.max_len {
            if count_of_length(p, len) > 0 {
                inputs.push(random_input(p, len, &mut rng));
            }
        }
        for input in &inputs {
            match first_mismatch(&c.compiled, &c.checked, input) {
                Ok(None) | Err(DiffError::Interpreter(_)) => {}
                Ok(Some(m)) => {
                    failures.push(format!("{} on `{}`: {m}", c.name, show(input)));
                    break;
                }
                Err(e) => {
                    failures.push(format!("{} on `{}`: {e}", c.name, show(input)));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The harness itself can fail: a planted error in a corpus model's head
/// is caught, and diagnosed at that head's layer.
#[test]
fn a_planted_error_is_caught_and_located() {
    let mut c = corpus().into_iter().find(|c| c.name == "tracr/sort.ir").expect("corpus/tracr/sort.ir");
    let out = c.compiled.plan.node_named("out").expect("%out");
    let layer = c.compiled.schedule.slot[out].expect("scheduled").layer();
    let tfc_compiler::layout::Dims::Cat(dims) = &c.compiled.layout.dims[out] else { panic!("categorical %out") };
    let (one, two) = (dims[&Value::int(1)], dims[&Value::int(2)]);
    let head = c.compiled.model.layers[layer].attn.iter_mut().find(|h| h.instructions == ["%out"]).expect("the %out head");
    // The value column that writes `%out:1` writes `%out:2` instead.
    let col = head.w_o.entries.iter().find(|e| e.1 == one).expect("writes %out:1").0;
    head.w_o.entries.retain(|e| !(e.0 == col && e.1 == one));
    head.w_o.entries.push((col, two, Rat::from_integer(1.into())));
    head.w_o.entries.sort_by_key(|e| (e.0, e.1));
    let (inputs, exhaustive) = inputs_for(&c);
    let r = check_program(&c, &inputs, exhaustive);
    let failure = r.failure.expect("the planted error is caught");
    println!("{failure}");
    let label = format!("layer {layer} attention [%out]");
    assert!(failure.contains(&label) && failure.contains("`%out:1`"), "diagnosis does not point at the %out head:\n{failure}");
}

/// The fast scalar gives the `Rat` forward pass's residuals, exactly.
#[test]
fn small_scalar_equals_rat() {
    for c in &corpus() {
        let p = &c.checked.program;
        let fast = PreparedModel::<Small>::new(&c.compiled.model).expect("valid");
        let exact = PreparedModel::<Rat>::new(&c.compiled.model).expect("valid");
        let mut rng = SplitMix(0xfa57);
        let mut inputs = c.run_inputs.clone();
        // The shortest and longest lengths (the `Rat` pass is slow).
        let longest = if p.distinct { p.max_len.min(p.vocab.len()) } else { p.max_len };
        for len in [1, longest] {
            inputs.push(random_input(p, len, &mut rng));
        }
        for input in &inputs {
            let a = fast.residuals(input, Attention::Hard, &ForwardOptions::default());
            let b = exact.residuals(input, Attention::Hard, &ForwardOptions::default());
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    let a: Vec<Vec<Rat>> = a.final_residual.iter().map(|row| row.iter().map(Small::rat).collect()).collect();
                    assert!(a == b.final_residual, "{} on `{}`: the scalars disagree", c.name, show(input));
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{} on `{}`", c.name, show(input)),
                (a, b) => panic!("{} on `{}`: {:?} vs {:?}", c.name, show(input), a.err(), b.err()),
            }
        }
    }
}

/// `Small`'s arithmetic is `Rat`'s, including past `i64`.
#[test]
fn small_scalar_arithmetic() {
    let mut rng = SplitMix(7);
    let pick = |rng: &mut SplitMix| -> Rat {
        let scale: i64 = [1, 7, 1 << 20, 1 << 40, i64::MAX][rng.below(5)];
        let n = (rng.next_u64() as i64) % scale;
        let d = 1 + (rng.next_u64() as i64 % scale).abs();
        let r = Rat::new(n.into(), d.into());
        if rng.below(10) == 0 { r * Rat::from_integer(BigInt::from(u64::MAX)) } else { r }
    };
    for _ in 0..20_000 {
        let (x, y) = (pick(&mut rng), pick(&mut rng));
        let (a, b) = (Small::from_rat(&x), Small::from_rat(&y));
        assert_eq!(a.add(&b).rat(), &x + &y);
        assert_eq!(a.sub(&b).rat(), &x - &y);
        assert_eq!(a.mul(&b).rat(), &x * &y);
        if !Zero::is_zero(&y) {
            assert_eq!(a.div(&b).rat(), &x / &y);
        }
        assert_eq!(a.partial_cmp(&b), x.partial_cmp(&y));
        assert_eq!(a.relu().rat(), x.clone().max(<Rat as Zero>::zero()));
        assert_eq!(a == b, x == y);
        assert_eq!(a.add(&b) == Small::from_rat(&(&x + &y)), true, "canonical form");
    }
}

