//! Bad input never panics or hangs: the parser and the checker turn
//! anything into a program or a [`Diagnostic`].
//!
//! Three proptests feed `parse_bytes` + `check` (and, when the checker
//! accepts, the interpreter) with arbitrary bytes, with soups of the
//! language's tokens, and with mutations of the real corpus files. The
//! deterministic tests below them are the pathological inputs a fuzzer
//! finds slowly or never (huge, deep, long), and every problem these tests
//! found, kept as a named regression case.
//!
//! Every diagnostic's spans must lie inside the source, on character
//! boundaries: the CLI renders them, and a renderer given a span past the
//! end panics. And whatever parses must print to text that parses back to
//! the same program.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tfc_ir::check::SplitMix;
use tfc_ir::diag::codes;
use tfc_ir::interp::{self, RunOptions};
use tfc_ir::{check, parse, parse_bytes, print, Diagnostic, Program, Value};

/// What parsing and checking gave: the codes of every error, or `Ok`.
#[derive(Debug, PartialEq)]
enum Outcome {
    ParseError(&'static str),
    CheckErrors(Vec<&'static str>),
    Accepted,
}

/// Parses and checks `bytes`, validating every diagnostic's spans; when the
/// checker accepts, runs the interpreter on a few inputs derived from `seed`.
fn drive(bytes: &[u8], seed: u64) -> Outcome {
    let (src, prog) = match parse_bytes(bytes) {
        Ok(x) => x,
        Err(d) => {
            // A source that is not UTF-8 has no text to point into; its span
            // is a byte offset into the bytes.
            match std::str::from_utf8(bytes) {
                Ok(src) => spans_ok(src, &d),
                Err(_) => assert!(d.span.start <= d.span.end && d.span.end <= bytes.len(), "{d:?}"),
            }
            return Outcome::ParseError(d.code);
        }
    };
    // Whatever parses prints to text that parses back to it (unless the
    // canonical form outgrows the size limit: `0.1` prints as `1/10`).
    let printed = print(&prog);
    if printed.len() <= tfc_ir::parser::MAX_SOURCE_BYTES {
        assert_eq!(parse(&printed).as_ref(), Ok(&prog), "printed:\n{printed}");
    }
    match check(&prog) {
        Err(ds) => {
            assert!(ds.iter().any(|d| d.is_error()), "check failed without an error: {ds:?}");
            for d in &ds {
                spans_ok(&src, d);
            }
            Outcome::CheckErrors(ds.iter().filter(|d| d.is_error()).map(|d| d.code).collect())
        }
        Ok(c) => {
            for d in &c.warnings {
                assert!(!d.is_error(), "an accepted program carries an error: {d:?}");
                spans_ok(&src, d);
            }
            run_some(&prog, seed);
            Outcome::Accepted
        }
    }
}

/// Runs the interpreter on three short inputs; any result but a panic is fine.
fn run_some(prog: &Program, seed: u64) {
    let mut rng = SplitMix(seed);
    for _ in 0..3 {
        let len = 1 + rng.below(prog.max_len.clamp(1, 4));
        let input: Vec<Value> =
            (0..len).map(|_| prog.vocab[rng.below(prog.vocab.len())].clone()).collect();
        let opts = RunOptions { trace: rng.below(2) == 0 };
        if let Err(d) = interp::run(prog, &input, &opts) {
            assert!(d.is_error(), "{d:?}");
        }
    }
}

fn spans_ok(src: &str, d: &Diagnostic) {
    let all = std::iter::once(d.span).chain(d.labels.iter().map(|(s, _)| *s));
    for s in all {
        assert!(
            s.start <= s.end && s.end <= src.len() && src.is_char_boundary(s.start) && src.is_char_boundary(s.end),
            "diagnostic span {}..{} outside the {}-byte source: {d}",
            s.start,
            s.end,
            src.len()
        );
    }
}

fn outcome(src: &str) -> Outcome {
    drive(src.as_bytes(), 1)
}

/// Parses and checks `src` within `limit`, returning the first error code.
fn first_error_within(src: &str, limit: Duration) -> &'static str {
    let t = Instant::now();
    let o = drive(src.as_bytes(), 1);
    let took = t.elapsed();
    assert!(took < limit, "took {took:?} (limit {limit:?}) on a {}-byte source", src.len());
    match o {
        Outcome::ParseError(c) => c,
        Outcome::CheckErrors(cs) => cs[0],
        Outcome::Accepted => panic!("accepted"),
    }
}

fn has_error(src: &str, code: &str) -> bool {
    match outcome(src) {
        Outcome::ParseError(c) => c == code,
        Outcome::CheckErrors(cs) => cs.contains(&code),
        Outcome::Accepted => false,
    }
}

/// A program with `body` between a small header and `output %out`.
fn prog(header: &str, body: &str) -> String {
    format!("program p {{\n  {header}\n{body}\n  output %out\n}}\n")
}

/// "Quickly": these inputs take milliseconds; the margin is for a loaded machine.
const QUICK: Duration = Duration::from_secs(5);

// ---- corpus ----

fn corpus_files() -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "ir") {
                // The corpus is written concurrently: a file may vanish or be half-written.
                if let Ok(bytes) = std::fs::read(&p) {
                    out.push((p, bytes));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus"), &mut out);
    out
}

/// Every corpus file as it is: no panic, and spans in range.
#[test]
fn corpus_files_as_they_are() {
    for (path, bytes) in corpus_files() {
        let t = Instant::now();
        drive(&bytes, 7);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(30), "{} took {took:?}", path.display());
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, Vec<u8>),
    Duplicate(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    /// Replaces the byte range with a token of the language.
    Replace(prop::sample::Index, usize, &'static str),
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &prop::sample::Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match m {
        Mutation::Delete(i, n) => {
            let a = at(i, bytes.len());
            let b = (a + n).min(bytes.len());
            bytes.drain(a..b);
        }
        Mutation::Insert(i, ins) => {
            let a = at(i, bytes.len());
            bytes.splice(a..a, ins.iter().copied());
        }
        Mutation::Duplicate(i, n) => {
            let a = at(i, bytes.len());
            let b = (a + n).min(bytes.len());
            let dup: Vec<u8> = bytes[a..b].to_vec();
            bytes.splice(b..b, dup);
        }
        Mutation::Truncate(i) => {
            let a = at(i, bytes.len());
            bytes.truncate(a);
        }
        Mutation::Replace(i, n, tok) => {
            let a = at(i, bytes.len());
            let b = (a + n).min(bytes.len());
            bytes.splice(a..b, tok.bytes());
        }
    }
}

/// Tokens of the language, for token soups and replacements.
const TOKENS: &[&str] = &[
    "program", "vocab", "max_len", "causal", "distinct_tokens", "tokens", "indices", "length",
    "const", "map", "seqmap", "select", "and", "or", "not", "aggregate", "width", "default",
    "table", "loop", "state", "in", "iterations", "until", "max", "next", "output", "cat", "num",
    "eq", "lt", "le", "gt", "ge", "ne", "true", "false", "x", "y", "k", "q", "min", "abs", "div",
    "mod", "if", "a", "_", "BOS", "%t", "%x.1", "%0", "%out", "%s", "%", "0", "1", "2", "-1", "7/2",
    "0.25", "1/0", "1024", "1025", "100000", "100001", "99999999999999999999", "0..3", "-2..2",
    "0..100000000", "\"(\"", "\"a\\\"b\"", "\"\\n\"", "\"\\q\"", "\"", "{", "}", "(", ")", ",",
    ":", "=", "->", "..", "+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!",
    ";", "; run: 1 => 1\n", "\n", " ", "\t", "#", "\u{feff}", "é", "\0",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let idx = any::<prop::sample::Index>();
    let bytes = prop::collection::vec(any::<u8>(), 1..6);
    prop_oneof![
        3 => (idx.clone(), 1usize..12).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (idx.clone(), bytes).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (idx.clone(), 1usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => idx.clone().prop_map(Mutation::Truncate),
        4 => (idx, 0usize..4, prop::sample::select(TOKENS)).prop_map(|(i, n, t)| Mutation::Replace(i, n, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// (a) Arbitrary bytes.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), seed in any::<u64>()) {
        drive(&bytes, seed);
    }

    /// (a') Arbitrary printable text behind a valid program head, so that
    /// the parser gets past `program p {`.
    #[test]
    fn arbitrary_text_after_a_header(tail in "[ -~\n]{0,200}", seed in any::<u64>()) {
        let src = format!("program p {{ vocab {{0, 1, 2}} max_len 3 {tail}");
        drive(src.as_bytes(), seed);
    }

    /// (b) The language's tokens in random order.
    #[test]
    fn token_soup(
        toks in prop::collection::vec(prop::sample::select(TOKENS), 0..80),
        spaced in any::<bool>(),
        headed in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let sep = if spaced { " " } else { "" };
        let head = if headed { "program p { vocab {0, 1, 2} max_len 3 %t = tokens " } else { "" };
        let src = format!("{head}{}", toks.join(sep));
        drive(src.as_bytes(), seed);
    }
}

/// (c) Mutations of the real corpus files. The strategy is built at run
/// time, from whatever the corpus holds now.
#[test]
fn mutated_corpus_files() {
    let files = corpus_files();
    if files.is_empty() {
        eprintln!("no corpus files under ../corpus; nothing to mutate");
        return;
    }
    let n = files.len();
    let config = ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (0..n, prop::collection::vec(mutation(), 1..5), any::<u64>());
    runner
        .run(&strategy, |(f, muts, seed)| {
            let mut bytes = files[f].1.clone();
            for m in &muts {
                apply(&mut bytes, m);
            }
            let t = Instant::now();
            drive(&bytes, seed);
            let took = t.elapsed();
            prop_assert!(
                took < Duration::from_secs(20),
                "{} mutated by {muts:?} took {took:?}:\n{}",
                files[f].0.display(),
                String::from_utf8_lossy(&bytes)
            );
            Ok(())
        })
        .unwrap();
}

// ---- pathological inputs ----

#[test]
fn nested_parentheses_100k() {
    let src = prog(
        "vocab {1} max_len 2 %t = tokens",
        &format!("  %out = map %t {{ {}x{} }} : num", "(".repeat(100_000), ")".repeat(100_000)),
    );
    assert_eq!(first_error_within(&src, QUICK), codes::TOO_DEEP);
}

/// Regression: a left-associative chain is parsed by a loop, so the parser
/// itself never recursed deeply, but it built a tree 100,000 levels deep
/// that the checker, the printer, `Drop` and `Clone` then walked
/// recursively: a stack overflow (an abort, not even a panic). The parser
/// now bounds the depth of the tree it builds.
#[test]
fn chained_plus_100k() {
    let chain = vec!["x"; 100_001].join(" + ");
    let src = prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ {chain} }} : num"));
    assert_eq!(first_error_within(&src, QUICK), codes::TOO_DEEP);
    // Every left-associative level: `||`, `&&`, `*`, `-`, `/`.
    for op in ["||", "&&", "*", "-", "/"] {
        let chain = vec!["x"; 100].join(&format!(" {op} "));
        let src = prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ {chain} }} : num"));
        assert_eq!(first_error_within(&src, QUICK), codes::TOO_DEEP, "{op}");
    }
}

/// The tree-depth limit is exactly 64 levels, counted in nodes: 63 `+`
/// make 64 levels and are accepted; 64 `+` are not.
#[test]
fn expression_depth_limit_is_64() {
    let at = |ops: usize| {
        let chain = vec!["x"; ops + 1].join(" + ");
        prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ {chain} }} : num"))
    };
    assert_eq!(outcome(&at(63)), Outcome::Accepted);
    assert!(has_error(&at(64), codes::TOO_DEEP));
    // Unary operators count too; a negative literal is one node.
    let bangs = |n: usize| prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ {}x }} : num", "!".repeat(n)));
    assert_eq!(outcome(&bangs(63)), Outcome::Accepted);
    assert!(has_error(&bangs(64), codes::TOO_DEEP));
    // 64 redundant parentheses are 64 levels of nesting; 65 are too many.
    let parens = |n: usize| prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ {}x{} }} : num", "(".repeat(n), ")".repeat(n)));
    assert_eq!(outcome(&parens(64)), Outcome::Accepted);
    assert!(has_error(&parens(65), codes::TOO_DEEP));
}

#[test]
fn file_of_one_mebibyte_and_one_byte() {
    let mut src = prog("vocab {1} max_len 2", "  %out = tokens").into_bytes();
    src.resize((1 << 20) + 1, b' ');
    assert_eq!(drive(&src, 1), Outcome::ParseError(codes::TOO_LARGE));
    // Exactly 1 MiB is allowed.
    src.truncate(1 << 20);
    assert_eq!(drive(&src, 1), Outcome::Accepted);
}

#[test]
fn file_of_nuls() {
    assert_eq!(drive(&[0u8; 4096], 1), Outcome::ParseError(codes::BAD_CHAR));
    assert_eq!(drive(&[], 1), Outcome::ParseError(codes::EMPTY));
}

#[test]
fn byte_order_mark() {
    let src = format!("\u{feff}{}", prog("vocab {1} max_len 2", "  %out = tokens"));
    assert_eq!(outcome(&src), Outcome::ParseError(codes::BAD_CHAR));
}

#[test]
fn invalid_utf8_in_the_middle() {
    let mut src = prog("vocab {1} max_len 2", "  %out = tokens").into_bytes();
    src.insert(20, 0xc3);
    assert_eq!(drive(&src, 1), Outcome::ParseError(codes::NOT_UTF8));
}

#[test]
fn very_long_number_literals() {
    for digits in [1001, 100_000, 1_000_000] {
        let src = prog(&format!("vocab {{{}}} max_len 2", "9".repeat(digits)), "  %out = tokens");
        assert_eq!(first_error_within(&src, QUICK), codes::BAD_NUMBER, "{digits} digits");
    }
    // A long decimal and a long denominator.
    let src = prog(&format!("vocab {{0.{}}} max_len 2", "1".repeat(5000)), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_NUMBER);
    // 1000 characters is still a number, in an expression too.
    let big = "9".repeat(1000);
    let src = prog("vocab {1} max_len 2 %t = tokens", &format!("  %out = map %t {{ x * {big} * {big} }} : num"));
    assert_eq!(outcome(&src), Outcome::Accepted);
}

#[test]
fn huge_range_is_rejected_without_allocating() {
    let src = prog("vocab {0..100000000} max_len 2", "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::SET_TOO_LARGE);
    let src = prog(&format!("vocab {{0..{}}} max_len 2", "9".repeat(900)), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::SET_TOO_LARGE);
    let src = prog(&format!("vocab {{-{}..0}} max_len 2", "9".repeat(900)), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::SET_TOO_LARGE);
    // A backwards range is empty.
    let src = prog("vocab {5..1} max_len 2", "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_VOCAB);
}

/// Regression: each range was bounded, but not the set: 80,000 ranges of
/// 100,000 values (1 MiB of source) expanded to 8 * 10^9 values. The
/// parser now bounds the whole set.
#[test]
fn many_large_ranges_in_one_set() {
    let ranges = vec!["0..99999"; 80_000].join(",");
    let src = prog(&format!("vocab {{{ranges}}} max_len 2"), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::SET_TOO_LARGE);
    let ranges = vec!["0..49999"; 3].join(", ");
    let src = prog("vocab {1} max_len 2 %t = tokens", &format!("  loop {{ state %s : num in {{{ranges}}} = 0 iterations 1 next %s = %s }}\n  %out = map %s {{ x }} : num"));
    assert_eq!(first_error_within(&src, QUICK), codes::SET_TOO_LARGE);
    // 100,000 values in a set are fine for the parser (a `num` state may hold that many).
    let src = prog("vocab {1} max_len 2 %t = tokens", "  loop { state %s : num in {0..49999, 50000..99999} = 0 iterations 1 next %s = %s }\n  %out = map %s { x } : num");
    assert_eq!(outcome(&src), Outcome::Accepted);
}

#[test]
fn max_len_beyond_any_integer() {
    let src = prog("vocab {1} max_len 99999999999999999999", "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::UNEXPECTED);
}

/// Regression: a `max_len` that fits in `usize` but is over the limit was
/// reported (E0404), and then used: `indices` built a set of 10^12 values,
/// `width` and numerical aggregates looped up to it. The checker now goes
/// on with `max_len` clamped to the limit.
#[test]
fn max_len_over_the_limit_is_not_used() {
    let body = "  %t = tokens\n  %i = indices\n  %l = length\n  %s = select %t, %t, true\n  %w = width %s\n  %a = aggregate %s, %t : num\n  %out = map %w { x } : num";
    for max_len in ["1000000000000", "18446744073709551615", "1025"] {
        let src = prog(&format!("vocab {{1}} max_len {max_len}"), body);
        assert_eq!(first_error_within(&src, QUICK), codes::BAD_MAX_LEN, "max_len {max_len}");
    }
    let src = prog("vocab {1} max_len 0", body);
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_MAX_LEN);
}

#[test]
fn huge_vocabulary() {
    let src = prog("vocab {0..99999} max_len 2", "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_VOCAB);
    let syms: Vec<String> = (0..20_000).map(|i| format!("s{i}")).collect();
    let src = prog(&format!("vocab {{{}}} max_len 2", syms.join(", ")), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_VOCAB);
    // The same token 50,000 times.
    let src = prog(&format!("vocab {{{}}} max_len 2", vec!["a"; 50_000].join(",")), "  %out = tokens");
    assert_eq!(first_error_within(&src, QUICK), codes::BAD_VOCAB);
}

/// Regression: the checker's selector analyses (`width` of an always-true
/// selector, single-key and pinned-value arguments for categorical
/// aggregates, causal reach) recursed into both operands of `and` / `or`
/// without memory, so a chain of selectors that each combine the previous
/// one with itself took 2^n steps.
#[test]
fn selector_chain_shared_operands() {
    let mut body = String::from("  %t = tokens\n  %i = indices\n  %s0 = select %t, %t, true\n  %e0 = select %i, %i, eq\n");
    for k in 1..=60 {
        body += &format!("  %s{k} = and %s{p}, %s{p}\n  %e{k} = or %e{p}, %e{p}\n", p = k - 1);
    }
    body += "  %w = width %s60\n  %b = aggregate %s60, %t default 0 : cat\n  %c = aggregate %e60, %t default 0 : cat\n";
    body += "  %bc = seqmap %b, %c { x + y } : num\n  %out = seqmap %w, %bc { x + y } : num";
    let src = prog("vocab {0} max_len 3 causal", &body);
    let t = Instant::now();
    assert_eq!(outcome(&src), Outcome::Accepted);
    assert!(t.elapsed() < QUICK, "took {:?}", t.elapsed());
}

/// Regression: the same analyses recursed once per link of a chain of
/// selectors (and of maps, for injectivity), and looked each link up by a
/// scan of the whole program: a stack overflow on a long chain, and
/// quadratic time on a shorter one.
#[test]
fn long_selector_and_map_chains() {
    let n = 10_000;
    let mut body = String::from("  %t = tokens\n  %i = indices\n  %m0 = map %i { x } : cat\n  %s0 = select %m0, %m0, eq\n");
    for k in 1..=n {
        body += &format!("  %m{k} = map %m{p} {{ x }} : cat\n  %s{k} = and %s{p}, %s0\n", p = k - 1);
    }
    body += &format!("  %w = width %s{n}\n  %s = select %m{n}, %t, eq\n  %a = aggregate %s, %t default 0 : cat\n  %b = aggregate %s{n}, %t default 0 : cat\n  %out = seqmap %a, %b {{ x + y }} : num\n  %out2 = seqmap %w, %out {{ x + y }} : num");
    let src = prog("vocab {0, 1} max_len 3", &body).replace("output %out", "output %out2");
    let t = Instant::now();
    let o = outcome(&src);
    assert_eq!(o, Outcome::Accepted);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
}

/// Long flat programs: 20,000 instructions, and 20,000 loop state variables.
#[test]
fn long_programs() {
    let mut body = String::from("  %v0 = tokens\n");
    for k in 1..20_000 {
        body += &format!("  %v{k} = map %v{p} {{ x }} : cat\n", p = k - 1);
    }
    body += "  %out = map %v19999 { x } : cat";
    let t = Instant::now();
    assert_eq!(outcome(&prog("vocab {0, 1} max_len 3", &body)), Outcome::Accepted);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    let mut states = String::new();
    let mut nexts = String::new();
    for k in 0..5_000 {
        states += &format!("    state %s{k} : cat in {{0}} = 0\n");
        nexts += &format!("    next %s{k} = %s{k}\n");
    }
    let body = format!("  loop {{\n{states}    iterations 2\n{nexts}  }}\n  %out = map %s4999 {{ x }} : cat");
    let t = Instant::now();
    assert_eq!(outcome(&prog("vocab {0, 1} max_len 3", &body)), Outcome::Accepted);
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
}

#[test]
fn iteration_counts_beyond_any_integer() {
    let body = "  loop { state %s : cat in {0} = 0 iterations 99999999999999999999 next %s = %s }\n  %out = map %s { x } : cat";
    assert_eq!(first_error_within(&prog("vocab {1} max_len 2", body), QUICK), codes::UNEXPECTED);
    let body = "  loop { state %s : cat in {0} = 0 iterations 18446744073709551615 next %s = %s }\n  %out = map %s { x } : cat";
    assert_eq!(first_error_within(&prog("vocab {1} max_len 2", body), QUICK), codes::BAD_ITERATIONS);
}

/// Strings: every escape, unterminated at end of file and at end of line,
/// a bad escape at the very end, multi-byte characters.
#[test]
fn quoted_symbol_edge_cases() {
    let ok = prog(r#"vocab {"\"", "\\", "\n", "\t", "é", "", "a b", ";", "%x"} max_len 2"#, "  %out = tokens");
    assert_eq!(outcome(&ok), Outcome::Accepted);
    for bad in ["program p { vocab {\"", "program p { vocab {\"abc", "program p { vocab {\"\\", "program p { vocab {\"é\\é\"} }", "program p { vocab {\"a\nb\"} }"] {
        assert_eq!(outcome(bad), Outcome::ParseError(codes::BAD_STRING), "{bad:?}");
    }
}

/// Truncations of a real program at every byte: no panic, always an error.
#[test]
fn every_prefix_of_a_program() {
    let src = r#"program p {
  vocab {1, 2, "é", a}
  max_len 4
  causal
  %t = tokens
  %i = indices
  %m = map %t table {1 -> 0, 2 -> 1, "é" -> 0, a -> 1} : cat
  %s = select %i, %i { k <= q && !(k == 0) }
  %w = width %s
  loop {
    state %c : cat in {0..4} = %m
    state %h : cat in {0, 1} = 0
    until %h max 3
    %n = seqmap %c, %w { min(x + y, 4) - -1 * 0 } : cat
    %h1 = map %n { x >= 4 } : cat
    next %c = %n
    next %h = %h1
  }
  %out = aggregate %s, %m default 0 : num
  output %out
}
"#;
    assert_eq!(outcome(src), Outcome::Accepted);
    for end in 0..src.trim_end().len() {
        if src.is_char_boundary(end) {
            let o = outcome(&src[..end]);
            assert!(matches!(o, Outcome::ParseError(_)), "prefix of {end} bytes: {o:?}");
        }
    }
}



/// The deepest expressions the parser accepts (64 levels of written
/// nesting, and trees 64 deep) parse, check, print and run on a small
/// stack: the bounds leave a wide margin below the 2 MiB of a test thread
/// and the 8 MiB of a main thread.
#[test]
fn deepest_accepted_expressions_fit_a_small_stack() {
    let parens = format!("{}x{}", "(".repeat(64), ")".repeat(64));
    let bangs = format!("{}x", "!".repeat(63));
    let calls = format!("{}x{}", "abs(".repeat(63), ")".repeat(63));
    let right = format!("{}x{}", "x - (".repeat(31), ")".repeat(31));
    let chain = vec!["x"; 64].join(" * ");
    let mixed = format!("{}x{}", "-(x + if(1, ".repeat(21), ", 0))".repeat(21));
    let body: String = [parens, bangs, calls, right, chain, mixed]
        .iter()
        .enumerate()
        .map(|(k, e)| format!("  %m{k} = map %t {{ {e} }} : num\n"))
        .collect();
    let src = prog("vocab {0, 1} max_len 2 %t = tokens", &format!("{body}  %out = map %m0 {{ x }} : num"));
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || outcome(&src))
        .unwrap();
    assert_eq!(worker.join().expect("no stack overflow"), Outcome::Accepted);
}

/// Regression (found by cargo-fuzz, which timed out on the corpus file
/// `errors/num_aggregate_means_explode.ir` before mutating anything): the
/// set of means of a numerical aggregate was built in ordered sets of big
/// rationals, 100 s to reject `vocab {0..999} max_len 64`; a work cap then
/// made it quick but rejected programs under the limit, such as
/// `vocab {0..99} max_len 32` (32,077 means). Now integer sums as bitsets.
#[test]
fn means_of_numerical_aggregates() {
    let prefix_mean = |vocab: &str, max_len: usize| {
        prog(
            &format!("vocab {{{vocab}}} max_len {max_len}"),
            "  %tok = tokens\n  %idx = indices\n  %prev = select %idx, %idx, le\n  %out = aggregate %prev, %tok : num",
        )
    };
    assert_eq!(first_error_within(&prefix_mean("0..999", 64), QUICK), codes::SET_TOO_LARGE);
    assert_eq!(first_error_within(&prefix_mean("0..4095", 1024), QUICK), codes::SET_TOO_LARGE);
    for (vocab, max_len, count) in [("0..99", 32, 32_077), ("0..49", 64, 61_741), ("-3, 1/2, 7/3", 1024, 0)] {
        let src = prefix_mean(vocab, max_len);
        let t = Instant::now();
        let (_, p) = parse_bytes(src.as_bytes()).unwrap();
        let c = check(&p);
        assert!(t.elapsed() < QUICK, "{vocab}, {max_len}: took {:?}", t.elapsed());
        match c {
            Ok(c) => assert_eq!(c.get("out").unwrap().set().unwrap().len(), count, "{vocab}, {max_len}"),
            Err(ds) => assert!(count == 0 && ds[0].code == codes::SET_TOO_LARGE, "{vocab}, {max_len}: {ds:?}"),
        }
    }
}

fn means_by_brute_force(vals: &[tfc_ir::Rat], n: usize) -> std::collections::BTreeSet<Value> {
    use num_bigint::BigInt;
    let base: Vec<tfc_ir::Rat> = vals.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut out = std::collections::BTreeSet::new();
    // Multisets of size m as non-decreasing index sequences.
    fn go(base: &[tfc_ir::Rat], m: usize, from: usize, sum: tfc_ir::Rat, left: usize, out: &mut std::collections::BTreeSet<Value>) {
        if left == 0 {
            out.insert(Value::Num(sum / tfc_ir::Rat::from_integer(BigInt::from(m))));
            return;
        }
        for i in from..base.len() {
            go(base, m, i, &sum + &base[i], left - 1, out);
        }
    }
    for m in 1..=n.max(1) {
        go(&base, m, 0, tfc_ir::Rat::from_integer(BigInt::from(0)), m, &mut out);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// `means` is exactly the set of means, or `None` when that is over the limit.
    #[test]
    fn means_agree_with_brute_force(
        vals in prop::collection::vec(
            prop_oneof![
                4 => (-20i64..20).prop_map(|k| tfc_ir::Rat::from_integer(k.into())),
                2 => (-20i64..20, 1i64..9).prop_map(|(a, b)| tfc_ir::Rat::new(a.into(), b.into())),
                1 => (-3i64..3).prop_map(|k| tfc_ir::Rat::from_integer(num_bigint::BigInt::from(10).pow(20) * k)),
                1 => (1i64..4).prop_map(|k| tfc_ir::Rat::new(1.into(), num_bigint::BigInt::from(10).pow(19) * k)),
            ],
            0..6,
        ),
        n in 0usize..6,
        limit in 200usize..3000,
    ) {
        let want = means_by_brute_force(&vals, n);
        let got = tfc_ir::check::means(&vals, n, limit);
        if want.len() > limit {
            prop_assert_eq!(got, None);
        } else {
            prop_assert_eq!(got, Some(want));
        }
    }
}

/// Regression (cargo-fuzz timed out on the corpus file
/// `errors/cat_set_over_limit.ir`): a `cat` seqmap over 1000 × 1000 values
/// evaluated 100,000 pairs before giving up, where 4097 values already
/// settle it.
#[test]
fn cat_seqmap_over_the_limit_stops_early() {
    let src = prog("vocab {0..999} max_len 4", "  %tok = tokens\n  %out = seqmap %tok, %tok { x * 1000 + y } : cat");
    assert_eq!(first_error_within(&src, Duration::from_secs(1)), codes::SET_TOO_LARGE);
}

/// Regression: the checker's search for an ambiguous categorical aggregate
/// ran the interpreter on up to 20,000 inputs, whole programs each time:
/// with a loop of 100,000 iterations that was 2 * 10^9 loop steps (hours)
/// for a 7-line valid program, and inputs of 1024 tokens cost 10^6 per
/// selector each. The search now also has a deterministic work budget;
/// past it the aggregate is undecided (W0003) and `tfc verify` decides.
#[test]
fn aggregate_search_has_a_work_budget() {
    let agg = "  %t = tokens\n  %c = const 1 : cat\n  %le = select %t, %t, le\n  %a = aggregate %le, %c default 0 : cat\n";
    for (header, body) in [
        ("vocab {0..9} max_len 5", format!("{agg}  loop {{ state %s : cat in {{0}} = 0 iterations 100000 next %s = %s }}\n  %out = seqmap %a, %s {{ x + y }} : cat")),
        ("vocab {0..9} max_len 1024", format!("{agg}  %out = map %a {{ x }} : cat")),
        ("vocab {0} max_len 1024", format!("{agg}  %out = map %a {{ x }} : cat")),
    ] {
        let (_, p) = parse_bytes(prog(header, &body).as_bytes()).unwrap();
        let t = Instant::now();
        let c = check(&p).expect("accepted");
        assert!(t.elapsed() < Duration::from_secs(10), "{header}: took {:?}", t.elapsed());
        assert!(c.warnings.iter().any(|d| d.code == codes::W_AGGREGATE_UNDECIDED), "{header}: {:?}", c.warnings);
    }
    // Runs are charged for the iterations they ran: an `until` loop that
    // may run 100,000 times but halts at once leaves the search exhaustive.
    let body = format!("{agg}  loop {{ state %h : cat in {{0, 1}} = 0 until %h max 100000 %h1 = map %h {{ 1 }} : cat next %h = %h1 }}\n  %out = seqmap %a, %h {{ x + y }} : cat");
    let (_, p) = parse_bytes(prog("vocab {0, 1, 2} max_len 4", &body).as_bytes()).unwrap();
    let c = check(&p).expect("accepted");
    assert_eq!(c.aggregates["a"], tfc_ir::check::AggregateVerdict::Exhaustive(120));
}
