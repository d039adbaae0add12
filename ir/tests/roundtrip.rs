//! Parse → print → parse gives the same program.
//!
//! A proptest strategy generates random well-formed programs as syntax
//! trees: every instruction (tokens, indices, length, const, map and
//! seqmap with expression and table functions, select with every named
//! predicate and with expression and table predicates, and, or, not,
//! aggregate with and without default, width), loops with state variables
//! initialised from values and from constants, fixed and `until` stops,
//! header flags, vocabularies of integers, rationals, big numbers, bare and
//! quoted symbols (keywords, escapes, non-ASCII), and expressions over
//! every operator, builtin and variable, nested up to six deep. Operands
//! refer to earlier definitions of the right kind (values or selectors) and
//! respect loop scoping, so every program is well-formed SSA.
//!
//! Properties: `parse(print(p)) == p` and printing is a fixed point; and
//! the checker and the interpreter never panic on these programs (a second
//! configuration keeps vocabularies and lengths small so that many of them
//! pass the checker and get run).
//!
//! The generator respects the parser's two normalisations: `-` applied to
//! a number literal *is* a negative literal (the printer writes a
//! negation of a literal as `-(3)`, which keeps it a negation, so both
//! forms are generated), and parentheses leave no node.

use num_bigint::BigInt;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::BTreeSet;
use tfc_ir::interp::{self, RunOptions};
use tfc_ir::value::Rat;
use tfc_ir::*;

// ---- values ----

/// Words that mean something to the grammar somewhere; as symbols some
/// print bare and some must be quoted.
const WORDS: &[&str] = &[
    "program", "vocab", "max_len", "causal", "distinct_tokens", "tokens", "indices", "length",
    "const", "map", "seqmap", "select", "and", "or", "not", "aggregate", "width", "default",
    "table", "loop", "state", "in", "iterations", "until", "max", "next", "output", "cat", "num",
    "eq", "lt", "le", "gt", "ge", "ne", "true", "false", "x", "y", "k", "q", "min", "abs", "div",
    "mod", "if", "BOS", "_", "a", "b",
];

/// Symbols that need quoting, escapes or care.
const ODD: &[&str] = &[
    "", " ", "\"", "\\", "\n", "\t", "\r", "\0", "a\"b\\c\nd\te", "(", ")", "{", "}", ",", ";",
    "; comment", "%x", "->", "..", "-3", "3", "7/2", "0.25", "é", "日本", "🦀", "a b", "x.1",
    "\\n", "\"\"",
];

fn symbol() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_map(Value::Sym),
        2 => prop::sample::select(WORDS).prop_map(Value::sym),
        2 => "[ -~]{0,5}".prop_map(Value::Sym),
        2 => prop::sample::select(ODD).prop_map(Value::sym),
        1 => "\\PC{0,4}".prop_map(Value::Sym),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        5 => (-5i64..12).prop_map(Value::int),
        2 => (-40i64..40, 1i64..13).prop_map(|(n, d)| Value::ratio(n, d)),
        1 => (any::<i64>(), 0u32..40)
            .prop_map(|(k, e)| Value::Num(Rat::from_integer(BigInt::from(k) * BigInt::from(10).pow(e)))),
        1 => (any::<i64>(), 1u64..u64::MAX)
            .prop_map(|(n, d)| Value::Num(Rat::new(BigInt::from(n), BigInt::from(d)))),
    ]
    .boxed()
}

fn any_value() -> BoxedStrategy<Value> {
    prop_oneof![3 => number(), 2 => symbol()].boxed()
}

/// The values of the checkable configuration: mostly small integers.
fn small_value() -> BoxedStrategy<Value> {
    prop_oneof![
        16 => (0i64..5).prop_map(Value::int),
        2 => (-2i64..0).prop_map(Value::int),
        1 => (1i64..5).prop_map(|n| Value::ratio(n, 2)),
        2 => prop::sample::select(&["a", "b", "(", "x"][..]).prop_map(Value::sym),
    ]
    .boxed()
}

// ---- expressions ----

const BINOPS: &[BinOp] = &[
    BinOp::Or, BinOp::And, BinOp::Eq, BinOp::Ne, BinOp::Lt, BinOp::Le, BinOp::Gt, BinOp::Ge,
    BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div,
];
const ALL_VARS: &[Var] = &[Var::X, Var::Y, Var::K, Var::Q];
const MAP_VARS: &[Var] = &[Var::X];
const SEQMAP_VARS: &[Var] = &[Var::X, Var::Y];
const SELECT_VARS: &[Var] = &[Var::K, Var::Q];

fn ex(kind: ExprKind) -> Expr {
    Expr::new(kind)
}

/// Expressions over `vars` (and, rarely, any variable), at most six deep.
fn expr(mode: Mode, vars: &'static [Var]) -> BoxedStrategy<Expr> {
    let stray = if mode == Mode::Round { 4 } else { 1 };
    let leaf = prop_oneof![
        12 => values_for(mode).prop_map(|v| ex(ExprKind::Lit(v))),
        16 => prop::sample::select(vars).prop_map(|v| ex(ExprKind::Var(v))),
        stray => prop::sample::select(ALL_VARS).prop_map(|v| ex(ExprKind::Var(v))),
    ];
    leaf.prop_recursive(5, 48, 3, |inner| {
        prop_oneof![
            2 => (prop::sample::select(&[UnOp::Neg, UnOp::Not][..]), inner.clone())
                .prop_map(|(op, e)| ex(ExprKind::Unary(op, Box::new(e)))),
            6 => (prop::sample::select(BINOPS), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| ex(ExprKind::Binary(op, Box::new(a), Box::new(b)))),
            2 => (prop::sample::select(&Builtin::ALL[..]), prop::collection::vec(inner, 3)).prop_map(
                |(f, mut args)| {
                    args.truncate(f.arity());
                    ex(ExprKind::Call(f, args))
                }
            ),
        ]
    })
    .boxed()
}

// ---- program templates ----
//
// A template is what proptest generates and shrinks; `build` turns it into
// a program, resolving each operand `Index` against the definitions of the
// right kind that are visible at that point.

#[derive(Clone, Debug)]
enum EncT {
    Omit,
    Cat,
    Num,
}

#[derive(Clone, Debug)]
enum FuncT {
    Expr(Expr),
    /// Explicit rows (one or two inputs each).
    Rows(Vec<(Vec<Value>, Value)>),
    /// A row for every value of the program's value pool (the vocabulary
    /// and small integers), outputs drawn in turn from the list.
    Cover(Vec<Value>),
}

#[derive(Clone, Debug)]
enum PredT {
    Cmp(CmpPred),
    Expr(Expr),
    Table(Vec<(Value, Value)>),
}

#[derive(Clone, Debug)]
enum OpT {
    Tokens,
    Indices,
    Length,
    Const(Value),
    Map(Index, FuncT),
    SeqMap(Index, Index, FuncT),
    Select(Index, Index, PredT),
    And(Index, Index),
    Or(Index, Index),
    Not(Index),
    Aggregate(Index, Index, Option<Value>),
    Width(Index),
}

#[derive(Clone, Debug)]
struct LetT {
    base: String,
    op: OpT,
    enc: EncT,
}

#[derive(Clone, Debug)]
enum InitT {
    Value(Index),
    /// The constant at this index of the state's own set (or the value, if
    /// the set is empty).
    Const(Index, Value),
}

#[derive(Clone, Debug)]
struct StateT {
    base: String,
    enc: Encoding,
    values: Vec<Value>,
    init: InitT,
}

#[derive(Clone, Debug)]
enum StopT {
    Fixed(usize),
    Until(Index, usize),
}

#[derive(Clone, Debug)]
struct LoopT {
    states: Vec<StateT>,
    stop: StopT,
    body: Vec<LetT>,
    /// Per state variable: keep it (`next %s = %s`), or a visible value.
    next: Vec<(bool, Index)>,
}

#[derive(Clone, Debug)]
enum ItemT {
    Let(LetT),
    Loop(LoopT),
}

#[derive(Clone, Debug)]
struct Plan {
    name: String,
    vocab: Vec<Value>,
    max_len: usize,
    causal: bool,
    distinct: bool,
    items: Vec<ItemT>,
    output: Index,
}

/// The two configurations: anything the syntax allows (`round`), or small
/// enough that the checker decides quickly and often accepts (`checkable`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Round,
    Checkable,
}

fn values_for(mode: Mode) -> BoxedStrategy<Value> {
    match mode {
        Mode::Round => any_value(),
        Mode::Checkable => small_value(),
    }
}

fn name_base() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z]{1,3}",
        1 => "[a-zA-Z0-9_.]{1,4}",
    ]
    .boxed()
}

fn func(mode: Mode, vars: &'static [Var], arity: usize) -> BoxedStrategy<FuncT> {
    let vals = values_for(mode);
    let row = (prop::collection::vec(vals.clone(), arity), vals.clone());
    prop_oneof![
        5 => expr(mode, vars).prop_map(FuncT::Expr),
        1 => prop::collection::vec(row, 0..6).prop_map(FuncT::Rows),
        2 => prop::collection::vec(vals, 1..4).prop_map(FuncT::Cover),
    ]
    .boxed()
}

fn pred(mode: Mode) -> BoxedStrategy<PredT> {
    let vals = values_for(mode);
    prop_oneof![
        4 => prop::sample::select(&CmpPred::ALL[..]).prop_map(PredT::Cmp),
        2 => expr(mode, SELECT_VARS).prop_map(PredT::Expr),
        1 => prop::collection::vec((vals.clone(), vals), 0..6).prop_map(PredT::Table),
    ]
    .boxed()
}

fn op(mode: Mode) -> BoxedStrategy<OpT> {
    let i = any::<Index>;
    let vals = values_for(mode);
    prop_oneof![
        2 => Just(OpT::Tokens),
        2 => Just(OpT::Indices),
        1 => Just(OpT::Length),
        1 => vals.clone().prop_map(OpT::Const),
        4 => (i(), func(mode, MAP_VARS, 1)).prop_map(|(a, f)| OpT::Map(a, f)),
        3 => (i(), i(), func(mode, SEQMAP_VARS, 2)).prop_map(|(a, b, f)| OpT::SeqMap(a, b, f)),
        4 => (i(), i(), pred(mode)).prop_map(|(a, b, p)| OpT::Select(a, b, p)),
        1 => (i(), i()).prop_map(|(a, b)| OpT::And(a, b)),
        1 => (i(), i()).prop_map(|(a, b)| OpT::Or(a, b)),
        1 => i().prop_map(OpT::Not),
        4 => (i(), i(), prop::option::weighted(0.8, vals)).prop_map(|(s, v, d)| OpT::Aggregate(s, v, d)),
        2 => i().prop_map(OpT::Width),
    ]
    .boxed()
}

fn enc_t(mode: Mode) -> BoxedStrategy<EncT> {
    let num = if mode == Mode::Round { 3 } else { 1 };
    prop_oneof![1 => Just(EncT::Omit), 4 => Just(EncT::Cat), num => Just(EncT::Num)].boxed()
}

fn let_t(mode: Mode) -> BoxedStrategy<LetT> {
    (name_base(), op(mode), enc_t(mode)).prop_map(|(base, op, enc)| LetT { base, op, enc }).boxed()
}

fn count(mode: Mode, small: std::ops::RangeInclusive<usize>) -> BoxedStrategy<usize> {
    match mode {
        Mode::Checkable => small.boxed(),
        Mode::Round => prop_oneof![3 => small, 1 => any::<usize>()].boxed(),
    }
}

fn state_t(mode: Mode) -> BoxedStrategy<StateT> {
    let set = match mode {
        Mode::Round => prop::collection::vec(any_value(), 0..6).boxed(),
        Mode::Checkable => prop_oneof![
            Just(vec![Value::int(0), Value::int(1)]),
            Just((0..4).map(Value::int).collect::<Vec<_>>()),
            prop::collection::btree_set(small_value(), 1..5).prop_map(|s| s.into_iter().collect()),
        ]
        .boxed(),
    };
    let init = prop_oneof![
        1 => any::<Index>().prop_map(InitT::Value),
        1 => (any::<Index>(), values_for(mode)).prop_map(|(i, v)| InitT::Const(i, v)),
    ];
    let enc = prop_oneof![Just(Encoding::Cat), Just(Encoding::Num)];
    (name_base(), enc, set, init)
        .prop_map(|(base, enc, values, init)| StateT { base, enc, values, init })
        .boxed()
}

fn loop_t(mode: Mode) -> BoxedStrategy<LoopT> {
    let stop = prop_oneof![
        count(mode, 1..=4).prop_map(StopT::Fixed),
        (any::<Index>(), count(mode, 1..=6)).prop_map(|(i, m)| StopT::Until(i, m)),
    ];
    (
        prop::collection::vec(state_t(mode), 1..4),
        stop,
        prop::collection::vec(let_t(mode), 0..6),
        prop::collection::vec((any::<bool>(), any::<Index>()), 3),
    )
        .prop_map(|(states, stop, body, next)| LoopT { states, stop, body, next })
        .boxed()
}

fn plan(mode: Mode) -> BoxedStrategy<Plan> {
    let vocab = match mode {
        Mode::Round => prop::collection::vec(any_value(), 0..8).boxed(),
        Mode::Checkable => prop::collection::btree_set(small_value(), 1..5)
            .prop_map(|s| s.into_iter().collect())
            .boxed(),
    };
    let max_len = match mode {
        Mode::Round => prop_oneof![3 => 0usize..20, 1 => any::<usize>()].boxed(),
        Mode::Checkable => (1usize..=3).boxed(),
    };
    let item = prop_oneof![6 => let_t(mode).prop_map(ItemT::Let), 1 => loop_t(mode).prop_map(ItemT::Loop)];
    (
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        vocab,
        max_len,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(item, 1..14),
        any::<Index>(),
    )
        .prop_map(|(name, vocab, max_len, causal, distinct, items, output)| Plan {
            name,
            vocab,
            max_len,
            causal,
            distinct,
            items,
            output,
        })
        .boxed()
}

// ---- building ----

struct Builder {
    mode: Mode,
    /// The vocabulary and small integers: what `Cover` tables cover.
    pool: Vec<Value>,
    fresh: usize,
}

#[derive(Clone, Default)]
struct Scope {
    /// Visible values, with their encodings.
    values: Vec<(String, Encoding)>,
    selectors: Vec<String>,
}

fn pick(names: &[String], i: &Index) -> Option<Name> {
    (!names.is_empty()).then(|| Name::new(names[i.index(names.len())].clone()))
}

/// A visible value, of encoding `want` if there is one (and `want` is given).
fn pick_value(values: &[(String, Encoding)], i: &Index, want: Option<Encoding>) -> Option<Name> {
    let fitting: Vec<String> = values.iter().filter(|(_, e)| want.map_or(true, |w| w == *e)).map(|(n, _)| n.clone()).collect();
    if fitting.is_empty() {
        pick(&values.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), i)
    } else {
        pick(&fitting, i)
    }
}

impl Builder {
    fn name(&mut self, base: &str) -> String {
        self.fresh += 1;
        // The counter after the last `_` makes every name unique.
        format!("{base}_{}", self.fresh)
    }

    fn func(&self, f: &FuncT, arity: usize) -> Func {
        match f {
            FuncT::Expr(e) => Func::Expr(e.clone()),
            FuncT::Rows(rows) => Func::Table(rows.clone()),
            FuncT::Cover(outs) => {
                let keys: Vec<Vec<Value>> = if arity == 1 {
                    self.pool.iter().map(|v| vec![v.clone()]).collect()
                } else {
                    self.pool.iter().flat_map(|a| self.pool.iter().map(move |b| vec![a.clone(), b.clone()])).collect()
                };
                Func::Table(keys.into_iter().enumerate().map(|(k, ins)| (ins, outs[k % outs.len()].clone())).collect())
            }
        }
    }

    /// One instruction; `Tokens` (or a `select`) where the operands it needs
    /// are not there yet.
    fn let_stmt(&mut self, t: &LetT, scope: &mut Scope) -> Let {
        let vals = &scope.values;
        let sels = &scope.selectors;
        // Checkable programs prefer operands of the encoding their use needs.
        let checkable = self.mode == Mode::Checkable;
        let cat = checkable.then_some(Encoding::Cat);
        let pv = |i: &Index, want: Option<Encoding>| pick_value(vals, i, want);
        let fallback = || match vals.first() {
            Some((v, _)) => Op::Select { keys: Name::new(v.clone()), queries: Name::new(v.clone()), pred: Pred::Cmp(CmpPred::Eq) },
            None => Op::Tokens,
        };
        let op = match &t.op {
            OpT::Tokens => Op::Tokens,
            OpT::Indices => Op::Indices,
            OpT::Length => Op::Length,
            OpT::Const(v) => Op::Const(v.clone()),
            OpT::Map(a, f) => match pv(a, None) {
                Some(arg) => Op::Map { arg, func: self.func(f, 1) },
                None => Op::Tokens,
            },
            OpT::SeqMap(a, b, f) => match (pv(a, None), pv(b, None)) {
                (Some(lhs), Some(rhs)) => Op::SeqMap { lhs, rhs, func: self.func(f, 2) },
                _ => Op::Tokens,
            },
            OpT::Select(a, b, p) => match (pv(a, cat), pv(b, cat)) {
                (Some(keys), Some(queries)) => {
                    let pred = match p {
                        PredT::Cmp(c) => Pred::Cmp(*c),
                        PredT::Expr(e) => Pred::Expr(e.clone()),
                        PredT::Table(pairs) => Pred::Table(pairs.clone()),
                    };
                    Op::Select { keys, queries, pred }
                }
                _ => Op::Tokens,
            },
            OpT::And(a, b) => match (pick(sels, a), pick(sels, b)) {
                (Some(a), Some(b)) => Op::And(a, b),
                _ => fallback(),
            },
            OpT::Or(a, b) => match (pick(sels, a), pick(sels, b)) {
                (Some(a), Some(b)) => Op::Or(a, b),
                _ => fallback(),
            },
            OpT::Not(a) => match pick(sels, a) {
                Some(a) => Op::Not(a),
                None => fallback(),
            },
            OpT::Aggregate(s, v, d) => match (pick(sels, s), pv(v, if matches!(t.enc, EncT::Num) { None } else { cat })) {
                (Some(sel), Some(values)) => Op::Aggregate { sel, values, default: d.clone() },
                _ => fallback(),
            },
            OpT::Width(s) => match pick(sels, s) {
                Some(s) => Op::Width(s),
                None => fallback(),
            },
        };
        let enc = if op.is_selector() {
            None
        } else {
            let needs = op.default_encoding().is_none();
            match t.enc {
                // Checkable programs declare what must be declared.
                EncT::Omit if needs && self.mode == Mode::Checkable => Some(Encoding::Cat),
                EncT::Omit => None,
                EncT::Cat => Some(Encoding::Cat),
                EncT::Num => Some(Encoding::Num),
            }
        };
        // A categorical aggregate of a checkable program gets its default.
        let op = match op {
            Op::Aggregate { sel, values, default: None }
                if self.mode == Mode::Checkable && enc == Some(Encoding::Cat) =>
            {
                Op::Aggregate { sel, values, default: Some(Value::int(0)) }
            }
            op => op,
        };
        let name = self.name(&t.base);
        if op.is_selector() {
            scope.selectors.push(name.clone());
        } else {
            scope.values.push((name.clone(), enc.or(op.default_encoding()).unwrap_or(Encoding::Cat)));
        }
        Let { name: Name::new(name), op, enc, span: Span::default() }
    }

    fn loop_stmt(&mut self, t: &LoopT, scope: &mut Scope) -> Loop {
        let mut state = Vec::new();
        for s in &t.states {
            let init = match &s.init {
                InitT::Value(i) => match pick_value(&scope.values, i, (self.mode == Mode::Checkable).then_some(s.enc)) {
                    Some(n) => Init::Value(n),
                    None => Init::Const(s.values.first().cloned().unwrap_or(Value::int(0))),
                },
                InitT::Const(i, v) => {
                    Init::Const(if s.values.is_empty() { v.clone() } else { s.values[i.index(s.values.len())].clone() })
                }
            };
            let name = self.name(&s.base);
            state.push(StateVar { name: Name::new(name), enc: s.enc, values: s.values.clone(), init, span: Span::default() });
        }
        let state_names: Vec<String> = state.iter().map(|s| s.name.text.clone()).collect();
        let state_values: Vec<(String, Encoding)> = state.iter().map(|s| (s.name.text.clone(), s.enc)).collect();
        let mut inner = scope.clone();
        inner.values.extend(state_values.iter().cloned());
        let body: Vec<Stmt> = t.body.iter().map(|l| Stmt::Let(self.let_stmt(l, &mut inner))).collect();
        let next = state
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let (keep, i) = &t.next[k % t.next.len()];
                let want = (self.mode == Mode::Checkable).then_some(s.enc);
                let v = if *keep { s.name.clone() } else { pick_value(&inner.values, i, want).unwrap_or_else(|| s.name.clone()) };
                (s.name.clone(), v)
            })
            .collect();
        let stop = match &t.stop {
            StopT::Fixed(n) => Stop::Fixed(*n),
            StopT::Until(i, max) => Stop::Until { halt: Name::new(state_names[i.index(state_names.len())].clone()), max: *max },
        };
        // After the loop the state names are visible; the body's are not.
        scope.values.extend(state_values);
        Loop { state, stop, body, next, span: Span::default() }
    }
}

fn build(plan: &Plan, mode: Mode) -> Program {
    let mut pool: Vec<Value> = plan.vocab.clone();
    pool.extend((0..=plan.max_len.min(4) as i64).map(Value::int));
    let mut seen = BTreeSet::new();
    pool.retain(|v| seen.insert(v.clone()));
    pool.truncate(12);
    let mut b = Builder { mode, pool, fresh: 0 };
    let mut scope = Scope::default();
    let mut body = Vec::new();
    for item in &plan.items {
        body.push(match item {
            ItemT::Let(l) => Stmt::Let(b.let_stmt(l, &mut scope)),
            ItemT::Loop(l) => Stmt::Loop(b.loop_stmt(l, &mut scope)),
        });
    }
    let output = match pick_value(&scope.values, &plan.output, None) {
        Some(n) => n,
        None => {
            let t = LetT { base: "out".into(), op: OpT::Tokens, enc: EncT::Omit };
            let l = b.let_stmt(&t, &mut scope);
            let n = l.name.clone();
            body.push(Stmt::Let(l));
            n
        }
    };
    Program {
        name: plan.name.clone(),
        vocab: plan.vocab.clone(),
        max_len: plan.max_len,
        causal: plan.causal,
        distinct: plan.distinct,
        body,
        output,
        span: Span::default(),
    }
}

fn program(mode: Mode) -> BoxedStrategy<Program> {
    plan(mode).prop_map(move |p| build(&p, mode)).boxed()
}

// ---- properties ----

fn round_trips(p: &Program) -> Result<(), TestCaseError> {
    let text = print(p);
    let back = parse(&text);
    prop_assert_eq!(back.as_ref(), Ok(p), "the printed program parses differently:\n{}", text);
    let again = print(back.as_ref().unwrap());
    prop_assert_eq!(&again, &text, "printing is not a fixed point");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_print_parse(p in program(Mode::Round)) {
        round_trips(&p)?;
    }

    /// The checker and the interpreter never panic on well-formed
    /// programs; and what they say survives printing.
    #[test]
    fn check_and_run_never_panic(
        p in program(Mode::Checkable),
        inputs in prop::collection::vec((1usize..=3, prop::collection::vec(any::<Index>(), 3)), 2),
        trace in any::<bool>(),
    ) {
        round_trips(&p)?;
        match check(&p) {
            Err(ds) => prop_assert!(ds.iter().any(|d| d.is_error()), "rejected without an error: {:?}", ds),
            Ok(c) => {
                prop_assert!(c.warnings.iter().all(|d| !d.is_error()));
                for (len, toks) in &inputs {
                    let len = (*len).min(p.max_len);
                    let input: Vec<Value> = toks[..len].iter().map(|i| p.vocab[i.index(p.vocab.len())].clone()).collect();
                    match interp::run(&p, &input, &RunOptions { trace }) {
                        Ok(r) => prop_assert_eq!(r.output.len(), input.len()),
                        Err(d) => prop_assert!(d.is_error()),
                    }
                }
            }
        }
    }
}

// ---- the generator covers the language ----

/// Every construct the generator is meant to produce shows up in a few
/// hundred programs of each configuration.
#[test]
fn generator_covers_the_language() {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut accepted = 0;
    for mode in [Mode::Round, Mode::Checkable] {
        let mut runner = TestRunner::deterministic();
        let strategy = program(mode);
        for _ in 0..400 {
            let p = strategy.new_tree(&mut runner).unwrap().current();
            features(&p, &mut seen);
            if mode == Mode::Checkable && check(&p).is_ok() {
                accepted += 1;
            }
        }
    }
    let mut want: Vec<String> = [
        "tokens", "indices", "length", "const", "map", "seqmap", "select", "and", "or", "not",
        "aggregate", "width", "map:expr", "map:table", "seqmap:expr", "seqmap:table",
        "select:expr", "select:table", "aggregate:default", "aggregate:none", "enc:none",
        "enc:cat", "enc:num", "loop", "init:value", "init:const", "stop:fixed", "stop:until",
        "next:self", "next:other", "causal", "distinct", "vocab:int", "vocab:ratio",
        "vocab:big", "vocab:bare", "vocab:quoted", "vocab:escape", "vocab:empty", "neg:lit",
        "neg:negative-lit", "lit:negative", "lit:ratio", "lit:sym",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.extend(CmpPred::ALL.iter().map(|c| format!("cmp:{}", c.keyword())));
    want.extend(BINOPS.iter().map(|o| format!("bin:{}", o.symbol())));
    want.extend(Builtin::ALL.iter().map(|f| format!("call:{}", f.name())));
    want.extend(ALL_VARS.iter().map(|v| format!("var:{}", v.letter())));
    want.extend(["un:-", "un:!"].iter().map(|s| s.to_string()));
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(*w)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    // Enough checkable programs pass the checker for the interpreter to be exercised.
    assert!(accepted >= 40, "only {accepted} of 400 checkable programs pass the checker");
}

fn features(p: &Program, seen: &mut BTreeSet<String>) {
    let mut add = |s: &str| {
        seen.insert(s.to_string());
    };
    if p.causal {
        add("causal");
    }
    if p.distinct {
        add("distinct");
    }
    if p.vocab.is_empty() {
        add("vocab:empty");
    }
    for v in &p.vocab {
        match v {
            Value::Num(r) if r.is_integer() && r.numer().bits() > 64 => add("vocab:big"),
            Value::Num(r) if r.is_integer() => add("vocab:int"),
            Value::Num(_) => add("vocab:ratio"),
            Value::Sym(s) if tfc_ir::value::is_bare_symbol(s) => add("vocab:bare"),
            Value::Sym(s) if s.contains(['"', '\\', '\n', '\t']) => add("vocab:escape"),
            Value::Sym(_) => add("vocab:quoted"),
        }
    }
    fn expr(e: &Expr, add: &mut dyn FnMut(&str)) {
        match &e.kind {
            ExprKind::Lit(Value::Num(r)) if r < &Rat::from_integer(0.into()) => add("lit:negative"),
            ExprKind::Lit(Value::Num(r)) if !r.is_integer() => add("lit:ratio"),
            ExprKind::Lit(Value::Sym(_)) => add("lit:sym"),
            ExprKind::Var(v) => add(&format!("var:{}", v.letter())),
            _ => {}
        }
        match &e.kind {
            ExprKind::Unary(op, a) => {
                add(if *op == UnOp::Neg { "un:-" } else { "un:!" });
                if let (UnOp::Neg, ExprKind::Lit(Value::Num(r))) = (op, &a.kind) {
                    add(if r < &Rat::from_integer(0.into()) { "neg:negative-lit" } else { "neg:lit" });
                }
                expr(a, add);
            }
            ExprKind::Binary(op, a, b) => {
                add(&format!("bin:{}", op.symbol()));
                expr(a, add);
                expr(b, add);
            }
            ExprKind::Call(f, args) => {
                add(&format!("call:{}", f.name()));
                args.iter().for_each(|a| expr(a, add));
            }
            _ => {}
        }
    }
    fn stmts(body: &[Stmt], add: &mut dyn FnMut(&str)) {
        for s in body {
            match s {
                Stmt::Let(l) => {
                    add(l.op.keyword());
                    add(match l.enc {
                        None => "enc:none",
                        Some(Encoding::Cat) => "enc:cat",
                        Some(Encoding::Num) => "enc:num",
                    });
                    match &l.op {
                        Op::Map { func, .. } | Op::SeqMap { func, .. } => match func {
                            Func::Expr(e) => {
                                add(&format!("{}:expr", l.op.keyword()));
                                expr(e, add);
                            }
                            Func::Table(_) => add(&format!("{}:table", l.op.keyword())),
                        },
                        Op::Select { pred, .. } => match pred {
                            Pred::Cmp(c) => add(&format!("cmp:{}", c.keyword())),
                            Pred::Expr(e) => {
                                add("select:expr");
                                expr(e, add);
                            }
                            Pred::Table(_) => add("select:table"),
                        },
                        Op::Aggregate { default, .. } => {
                            add(if default.is_some() { "aggregate:default" } else { "aggregate:none" })
                        }
                        _ => {}
                    }
                }
                Stmt::Loop(lp) => {
                    add("loop");
                    for st in &lp.state {
                        add(match st.init {
                            Init::Value(_) => "init:value",
                            Init::Const(_) => "init:const",
                        });
                    }
                    add(match lp.stop {
                        Stop::Fixed(_) => "stop:fixed",
                        Stop::Until { .. } => "stop:until",
                    });
                    for (s, v) in &lp.next {
                        add(if s == v { "next:self" } else { "next:other" });
                    }
                    stmts(&lp.body, add);
                }
            }
        }
    }
    stmts(&p.body, &mut add);
}

// ---- deterministic round trips at the limits ----

fn var(v: Var) -> Expr {
    ex(ExprKind::Var(v))
}
fn lit(v: Value) -> Expr {
    ex(ExprKind::Lit(v))
}
fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    ex(ExprKind::Binary(op, Box::new(a), Box::new(b)))
}
fn un(op: UnOp, a: Expr) -> Expr {
    ex(ExprKind::Unary(op, Box::new(a)))
}

fn with_map(e: Expr) -> Program {
    let tok = Let { name: Name::new("t"), op: Op::Tokens, enc: None, span: Span::default() };
    let m = Let {
        name: Name::new("m"),
        op: Op::Map { arg: Name::new("t"), func: Func::Expr(e) },
        enc: Some(Encoding::Num),
        span: Span::default(),
    };
    Program {
        name: "p".into(),
        vocab: vec![Value::int(1)],
        max_len: 2,
        causal: false,
        distinct: false,
        body: vec![Stmt::Let(tok), Stmt::Let(m)],
        output: Name::new("m"),
        span: Span::default(),
    }
}

/// Trees exactly 64 deep, of every shape the printer parenthesises,
/// round-trip; 65 deep they are rejected with E0102, not a crash.
#[test]
fn trees_at_the_depth_limit() {
    type Shape = fn(Expr) -> Expr;
    let shapes: [(&str, Shape); 9] = [
        ("left +", |e| bin(BinOp::Add, e, var(Var::X))),
        ("right -", |e| bin(BinOp::Sub, var(Var::X), e)),
        ("right /", |e| bin(BinOp::Div, lit(Value::ratio(7, 2)), e)),
        ("comparison", |e| bin(BinOp::Eq, e, lit(Value::int(0)))),
        ("alternating", |e| bin(BinOp::Or, lit(Value::int(0)), bin(BinOp::Mul, e, lit(Value::int(-1))))),
        ("negation", |e| un(UnOp::Neg, e)),
        ("not", |e| un(UnOp::Not, e)),
        ("call", |e| ex(ExprKind::Call(Builtin::If, vec![lit(Value::int(1)), e, lit(Value::sym("a\"b"))]))),
        ("abs of mod", |e| ex(ExprKind::Call(Builtin::Abs, vec![bin(BinOp::Sub, lit(Value::int(0)), e)]))),
    ];
    for (what, shape) in shapes {
        for leaf in [var(Var::X), lit(Value::int(3)), lit(Value::int(-3)), lit(Value::ratio(-1, 3))] {
            let mut e = leaf.clone();
            let mut depth = 1;
            while depth < 64 {
                let next = shape(e.clone());
                // Two-level shapes may overshoot.
                let d = tree_depth(&next);
                if d > 64 {
                    break;
                }
                e = next;
                depth = d;
            }
            let p = with_map(e.clone());
            let text = print(&p);
            assert_eq!(parse(&text).as_ref(), Ok(&p), "{what}, depth {depth}:\n{text}");
            let deeper = with_map(shape(shape(e)));
            let text = print(&deeper);
            assert_eq!(parse(&text).map_err(|d| d.code), Err("E0102"), "{what} past the limit:\n{text}");
        }
    }
    // `-` on a literal: the negative literal, and the negation of a literal.
    for e in [lit(Value::int(-3)), un(UnOp::Neg, lit(Value::int(3))), un(UnOp::Neg, lit(Value::int(-3))), un(UnOp::Neg, un(UnOp::Neg, lit(Value::int(3))))] {
        let p = with_map(bin(BinOp::Sub, var(Var::X), e));
        let text = print(&p);
        assert_eq!(parse(&text).as_ref(), Ok(&p), "{text}");
    }
}

fn tree_depth(e: &Expr) -> usize {
    1 + match &e.kind {
        ExprKind::Lit(_) | ExprKind::Var(_) => 0,
        ExprKind::Unary(_, a) => tree_depth(a),
        ExprKind::Binary(_, a, b) => tree_depth(a).max(tree_depth(b)),
        ExprKind::Call(_, args) => args.iter().map(tree_depth).max().unwrap_or(0),
    }
}

/// Every corpus program round-trips through the printer.
#[test]
fn corpus_programs_round_trip() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut stack = vec![root];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "ir") {
                let Ok(bytes) = std::fs::read(&path) else { continue };
                let Ok((_, p)) = parse_bytes(&bytes) else { continue };
                let text = print(&p);
                assert_eq!(parse(&text).as_ref(), Ok(&p), "{}:\n{text}", path.display());
                assert_eq!(print(&parse(&text).unwrap()), text, "{}", path.display());
                n += 1;
            }
        }
    }
    eprintln!("{n} corpus programs round-trip");
}

