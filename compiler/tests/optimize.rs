//! The optimizer's field cases (issue 6) and its rules' building blocks.
//! The random-program property is in the workspace's tests/optimize.rs.

use std::time::Duration;
use tfc_compiler::optimize::{optimize, rules::RULES, Limits, Stop};
use tfc_compiler::{compile_with, CompileOptions};
use tfc_ir::check::{check, Checked};

fn checked(src: &str) -> Checked {
    check(&tfc_ir::parse(src).expect("parses")).expect("checks")
}

fn limits(nodes: usize, iterations: usize) -> Limits {
    Limits { nodes, iterations, time: Duration::from_secs(5) }
}

const LINEAR: &str = "program lin { vocab {0..4} max_len 4
  %a = tokens : num
  %b = indices : num
  %s = seqmap %a, %b { x + (y + (-x)) } : num
  output %s }";

#[test]
fn optimize_a_plus_b_minus_a_is_b_within_a_small_node_budget() {
    let o = optimize(&checked(LINEAR), &limits(50, 10), false);
    assert!(o.report.optimized, "{:?}", o.report.fallback);
    assert_eq!(o.report.stop, Stop::Saturated);
    assert!(o.report.egraph_nodes <= 50);
    let text = tfc_ir::print(&o.checked.program);
    assert!(text.contains("%s = indices : num"), "{text}");
    assert_eq!(o.report.instructions.1, 1, "{text}");
}

#[test]
fn optimize_x_times_zero_is_const_and_costs_no_mlp() {
    for body in ["%z = map %a { x * 0 } : num", "%c = const 0 : num\n %z = seqmap %a, %c { x * y } : num"] {
        let src = format!("program z {{ vocab {{1..5}} max_len 4 %a = tokens : num {body} output %z }}");
        let c = checked(&src);
        let o = optimize(&c, &limits(100, 5), false);
        assert!(o.report.optimized, "{:?}", o.report.fallback);
        let text = tfc_ir::print(&o.checked.program);
        assert!(text.contains("%z = const 0 : num"), "{text}");
        let w = compile_with(&c, &CompileOptions { opt_level: 1, explain: false, ..Default::default() }).unwrap();
        assert_eq!(w.after.mlps, 0, "{text}");
        assert!(w.before.mlps >= 1);
    }
}

#[test]
fn optimize_stop_reasons_are_truthful() {
    // Needs several iterations: seqmap-drop-left, then map-identity, then nothing.
    let c = checked(LINEAR);
    let o = optimize(&c, &limits(10_000, 1), false);
    assert_eq!(o.report.stop, Stop::IterationLimit(1));
    let o = optimize(&c, &limits(3, 30), false);
    // egg reports the e-node count it saw, which is past the limit.
    assert!(matches!(o.report.stop, Stop::NodeLimit(n) if n > 3), "{:?}", o.report.stop);
    let o = optimize(&c, &Limits { nodes: 10_000, iterations: 30, time: Duration::ZERO }, false);
    assert!(matches!(o.report.stop, Stop::TimeLimit(_)), "{:?}", o.report.stop);
    let o = optimize(&c, &limits(10_000, 30), false);
    assert_eq!(o.report.stop, Stop::Saturated);
    // A limited run still gives a correct (validated) program.
    assert!(o.report.validation.contains("agrees"));
}

#[test]
fn optimize_explains_the_rewrite_chain() {
    let o = optimize(&checked(LINEAR), &limits(100, 10), true);
    let x = o.report.explanation.expect("an explanation");
    assert!(x.contains("linear-normalise"), "{x}");
    assert!(x.contains("map-identity") || x.contains("seqmap-drop-left"), "{x}");
}

#[test]
fn optimize_every_rule_has_a_proof_obligation() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proofs/rules");
    let files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for r in RULES {
        let has = files.iter().any(|f| f == &format!("{}.smt2", r.name) || f.starts_with(&format!("{}.", r.name)) && f.ends_with(".smt2"));
        assert!(has, "rule `{}` has no proofs/rules/{}.smt2: a rule without a proof must not be used", r.name, r.name);
        for f in files.iter().filter(|f| f.starts_with(r.name)) {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(text.contains("; expected: unsat"), "{f}");
        }
    }
}

/// Tracr's sort (corpus/tracr/sort.ir): keys made distinct as x + i/5.
const SORT: &str = "program sort { vocab {1, 2, 3} max_len 5
  %tok  = tokens
  %idx  = indices
  %key  = seqmap %tok, %idx { x + 1 * y / 5 } : cat
  %lt   = select %key, %key, lt
  %tgt  = width %lt
  %pick = select %tgt, %idx, eq
  %out  = aggregate %pick, %tok default 0 : cat
  output %out }";

#[test]
fn optimize_width_lex_split_replaces_a_made_distinct_sort_key() {
    let c = checked(SORT);
    let o = optimize(&c, &Limits::from_env(), false);
    assert!(o.report.optimized, "{:?}", o.report.fallback);
    assert!(o.report.rules.contains_key("width-lex-split"), "{:?}", o.report.rules);
    let text = tfc_ir::print(&o.checked.program);
    // key_k < key_q  <=>  tok_k < tok_q, or tok_k = tok_q and idx_k < idx_q (i/5 < 1).
    assert!(text.contains("select %tok, %tok, lt"), "{text}");
    assert!(text.contains("select %idx, %idx, lt"), "{text}");
    assert!(!text.contains("%key"), "{text}");
    // The rank is below max_len = 5 (lt is irreflexive): narrow-to-set clamps the sum to 4.
    assert!(text.contains("min(x + y, 4)"), "{text}");
    let w = compile_with(&c, &CompileOptions { opt_level: 1, explain: false, ..Default::default() }).unwrap();
    // -O0, by hand: one, bos, tokens 3, indices 5, %key 15 (3 tokens x 5 indices),
    // %tgt 6 (0..5), %out 4 (0 and the 3 tokens), one width scratch = 36.
    // -O1: the two widths 0..5 (6 each), %tgt 0..4 (5), two width heads in
    // one layer (two scratch dimensions): 1 + 1 + 3 + 5 + 6 + 6 + 5 + 4 + 2 = 33.
    assert_eq!((w.before.layers, w.before.d_model), (3, 36));
    assert_eq!((w.after.layers, w.after.d_model), (3, 33));
}

#[test]
fn optimize_width_lex_split_needs_a_lexicographic_key() {
    // x + y is not lexicographic: 1 + 1 = 2 + 0, so `lt` on it is no
    // combination of comparisons of the parts.
    let c = checked("program p { vocab {1, 2, 3} max_len 5
      %tok = tokens
      %idx = indices
      %key = seqmap %tok, %idx { x + y } : cat
      %lt  = select %key, %key, lt
      %tgt = width %lt
      output %tgt }");
    let o = optimize(&c, &Limits::from_env(), false);
    assert!(!o.report.rules.contains_key("width-lex-split"), "{:?}", o.report.rules);
}

#[test]
fn optimize_lex_split_finds_the_orders_of_the_parts() {
    use tfc_compiler::optimize::simplify::lex_split;
    use tfc_ir::ast::{CmpPred, Pred};
    let body = |src: &str| match &tfc_ir::parse(&format!("program p {{ vocab {{1}} max_len 1 %t = tokens %s = seqmap %t, %t {{ {src} }} : cat output %s }}")).unwrap().body[1] {
        tfc_ir::Stmt::Let(l) => match &l.op {
            tfc_ir::Op::SeqMap { func, .. } => func.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    let ints = |lo: i64, hi: i64| (lo..=hi).map(tfc_ir::Value::int).collect::<tfc_ir::ValueSet>();
    let (xs, ys) = (ints(1, 3), ints(0, 4));
    let cmp = |c| Pred::Cmp(c);
    // x + y/5 orders by x, then y; -x + y/5 by x descending, then y.
    assert_eq!(lex_split(&body("x + y / 5"), &cmp(CmpPred::Lt), &xs, &ys), Some((cmp(CmpPred::Lt), cmp(CmpPred::Lt))));
    assert_eq!(lex_split(&body("x + y / 5"), &cmp(CmpPred::Gt), &xs, &ys), Some((cmp(CmpPred::Gt), cmp(CmpPred::Gt))));
    assert_eq!(lex_split(&body("-1 * x + y / 5"), &cmp(CmpPred::Lt), &xs, &ys), Some((cmp(CmpPred::Gt), cmp(CmpPred::Lt))));
    // An injective key compared for equality: never across different x, and y = y' within one.
    assert_eq!(lex_split(&body("10 * x + y"), &cmp(CmpPred::Eq), &xs, &ys), Some((cmp(CmpPred::False), cmp(CmpPred::Eq))));
    // le: x < x', or x = x' and y <= y' (p1 is never true on x = x').
    assert_eq!(lex_split(&body("x + y / 5"), &cmp(CmpPred::Le), &xs, &ys), Some((cmp(CmpPred::Lt), cmp(CmpPred::Le))));
    // Not lexicographic: 1 + 4/2 = 3 + 0.
    assert_eq!(lex_split(&body("x + y / 2"), &cmp(CmpPred::Lt), &xs, &ys), None);
}

#[test]
fn optimize_analysis_bounds_the_widths_of_reflexive_and_irreflexive_selectors() {
    let c = checked(&SORT.replace("%out  = aggregate", "%same = select %tok, %tok, eq\n  %hist = width %same\n  %out  = aggregate"));
    let (eg, classes, _, _) = tfc_compiler::optimize::to_egraph(&c, false).unwrap();
    let set = |name: &str| -> Vec<i64> {
        let id = classes.iter().find(|(n, _)| n == name).unwrap().1;
        eg[id].data.set.as_ref().unwrap().iter().map(|v| num_traits::ToPrimitive::to_i64(v.as_num().unwrap()).unwrap()).collect()
    };
    // eq is reflexive: a query always selects its own key, so hist is 1..5, not 0..5.
    assert_eq!(set("hist"), vec![1, 2, 3, 4, 5]);
    // lt is irreflexive: never its own key, so at most the other 4.
    assert_eq!(set("tgt"), vec![0, 1, 2, 3, 4]);
}

// The random-program property (optimize, then check the optimized program
// against the source with the interpreter, compile it and prove the model
// with the verifier) lives in tests/optimize.rs at the workspace root: the
// verifier is not a dependency of this crate.
