//! The optimizer: equality saturation over the program IR (DESIGN.md §7,
//! docs/OPTIMIZER.md).
//!
//! [`optimize`] turns a checked program into an e-graph over the [`Ir`]
//! language (one node per instruction; a function body, predicate, constant
//! or default is part of the node's [`Head`], by index into the
//! [`IrAnalysis`] registry), runs the rules of [`rules::RULES`] under node,
//! iteration and time limits, extracts the cheapest program by (depth,
//! residual width, parameters) ([`extract`]), turns it back into a
//! [`Program`] that keeps the source names of surviving values, and checks
//! it: by the checker, by a print/parse round trip, and against the source
//! with the interpreter on every input (≤ 20,000 of them) or 2,000 random
//! ones. Any failure falls back to the source program and says why.
//!
//! Loops are barriers: a program with a `loop` is not optimized at all (the
//! report says so).

pub mod extract;
pub mod rules;
pub mod simplify;

use egg::{define_language, Analysis, DidMerge, EGraph, Id, RecExpr, Runner, StopReason};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tfc_ir::ast::*;
use tfc_ir::check::{self, Checked, Kind, MAX_NUM_SET, MAX_PRODUCT};
use tfc_ir::eval;
use tfc_ir::{Rat, Value, ValueSet};

/// What kind of instruction a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpK {
    /// `tokens`
    Tokens,
    /// `indices`
    Indices,
    /// `length`
    Length,
    /// `const` (arg: value index)
    Const,
    /// `map` (arg: function index)
    Map,
    /// `seqmap` (arg: function index)
    SeqMap,
    /// `select` (arg: predicate index)
    Select,
    /// `and`
    And,
    /// `or`
    Or,
    /// `not`
    Not,
    /// `aggregate` (arg: default value index)
    Aggregate,
    /// `width`
    Width,
}

const OPS: [(OpK, &str); 12] = [
    (OpK::Tokens, "tokens"),
    (OpK::Indices, "indices"),
    (OpK::Length, "length"),
    (OpK::Const, "const"),
    (OpK::Map, "map"),
    (OpK::SeqMap, "seqmap"),
    (OpK::Select, "select"),
    (OpK::And, "and"),
    (OpK::Or, "or"),
    (OpK::Not, "not"),
    (OpK::Aggregate, "aggregate"),
    (OpK::Width, "width"),
];

/// A node's operator: the instruction, its encoding (values only) and its
/// leaf datum (an index into the registry), printed `map.num.f3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Head {
    /// The instruction.
    pub op: OpK,
    /// The encoding of a value; `None` for selectors.
    pub enc: Option<Encoding>,
    /// Function, predicate or value index (0 when unused).
    pub arg: u32,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = OPS.iter().find(|(o, _)| *o == self.op).map(|(_, n)| *n).unwrap_or("?");
        f.write_str(name)?;
        if let Some(e) = self.enc {
            write!(f, ".{e}")?;
        }
        match self.op {
            OpK::Map | OpK::SeqMap => write!(f, ".f{}", self.arg),
            OpK::Select => write!(f, ".p{}", self.arg),
            OpK::Const | OpK::Aggregate => write!(f, ".v{}", self.arg),
            _ => Ok(()),
        }
    }
}

impl FromStr for Head {
    type Err = String;
    fn from_str(s: &str) -> Result<Head, String> {
        let mut parts = s.split('.');
        let name = parts.next().unwrap_or("");
        let op = OPS.iter().find(|(_, n)| *n == name).map(|(o, _)| *o).ok_or_else(|| format!("unknown op `{s}`"))?;
        let mut head = Head { op, enc: None, arg: 0 };
        for p in parts {
            match p {
                "cat" => head.enc = Some(Encoding::Cat),
                "num" => head.enc = Some(Encoding::Num),
                _ => head.arg = p[1..].parse().map_err(|_| format!("bad head `{s}`"))?,
            }
        }
        Ok(head)
    }
}

define_language! {
    /// The optimizer's language: one node per IR instruction.
    #[allow(missing_docs)]
    pub enum Ir {
        Node(Head, Vec<Id>),
    }
}

impl Ir {
    /// The head.
    pub fn head(&self) -> Head {
        let Ir::Node(h, _) = self;
        *h
    }
    /// The operands.
    pub fn args(&self) -> &[Id] {
        let Ir::Node(_, a) = self;
        a
    }
}

/// What the analysis knows about an e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    /// The encoding; `None` for a selector.
    pub enc: Option<Encoding>,
    /// Whether this is a selector.
    pub selector: bool,
    /// A sound over-approximation of the values (values only); `None` if
    /// it could not be computed.
    pub set: Option<Rc<ValueSet>>,
    /// For a selector: `Some(b)` when it is `b` on every (key, query) pair
    /// of the value sets.
    pub constant: Option<bool>,
    /// For a selector: `Some(b)` when a query's own position (always
    /// visible to it, causal or not) is selected exactly when `b`, for
    /// every value: `select a, a, p` with `p(v, v) = b` for every `v` in
    /// the set of `a`, and `and`/`or`/`not` of such. A `width` of a
    /// selector with `Some(true)` is at least 1, with `Some(false)` at most
    /// `max_len − 1`.
    pub diag: Option<bool>,
}

/// The e-graph analysis: value sets and encodings (the checker's transfer
/// functions), with the registry of function bodies, predicates and values
/// that heads index.
#[derive(Clone, Debug, Default)]
pub struct IrAnalysis {
    /// The vocabulary.
    pub vocab: Vec<Value>,
    /// `max_len`.
    pub max_len: usize,
    /// Function bodies.
    pub funcs: Vec<Func>,
    func_keys: HashMap<String, u32>,
    /// Predicates.
    pub preds: Vec<Pred>,
    pred_keys: HashMap<String, u32>,
    /// Constants and defaults.
    pub vals: Vec<Value>,
    val_keys: HashMap<Value, u32>,
}

fn func_key(f: &Func) -> String {
    match f {
        Func::Expr(e) => format!("e{}", tfc_ir::printer::expr(e)),
        Func::Table(rows) => format!("t{rows:?}"),
    }
}

fn pred_key(p: &Pred) -> String {
    match p {
        Pred::Cmp(c) => format!("c{}", c.keyword()),
        Pred::Expr(e) => format!("e{}", tfc_ir::printer::expr(e)),
        Pred::Table(rows) => {
            let mut r = rows.clone();
            r.sort();
            r.dedup();
            format!("t{r:?}")
        }
    }
}

impl IrAnalysis {
    /// The index of a function body, registering it.
    pub fn func(&mut self, f: &Func) -> u32 {
        let k = func_key(f);
        if let Some(&i) = self.func_keys.get(&k) {
            return i;
        }
        let i = self.funcs.len() as u32;
        self.funcs.push(f.clone());
        self.func_keys.insert(k, i);
        i
    }
    /// The index of a predicate, registering it.
    pub fn pred(&mut self, p: &Pred) -> u32 {
        let k = pred_key(p);
        if let Some(&i) = self.pred_keys.get(&k) {
            return i;
        }
        let i = self.preds.len() as u32;
        self.preds.push(p.clone());
        self.pred_keys.insert(k, i);
        i
    }
    /// The index of a value, registering it.
    pub fn val(&mut self, v: &Value) -> u32 {
        if let Some(&i) = self.val_keys.get(v) {
            return i;
        }
        let i = self.vals.len() as u32;
        self.vals.push(v.clone());
        self.val_keys.insert(v.clone(), i);
        i
    }
}

fn range(lo: usize, hi: usize) -> ValueSet {
    (lo..=hi).map(|i| Value::int(i as i64)).collect()
}

/// A selector's constant truth over the value sets, if any.
fn pred_constant(p: &Pred, ks: &ValueSet, qs: &ValueSet) -> Option<bool> {
    if let Pred::Cmp(CmpPred::True) = p {
        return Some(true);
    }
    if let Pred::Cmp(CmpPred::False) = p {
        return Some(false);
    }
    if ks.len().checked_mul(qs.len())? > MAX_PRODUCT {
        return None;
    }
    let (mut any_t, mut any_f) = (false, false);
    for k in ks {
        for q in qs {
            match eval::holds(p, k, q) {
                Ok(true) => any_t = true,
                Ok(false) => any_f = true,
                Err(_) => return None,
            }
            if any_t && any_f {
                return None;
            }
        }
    }
    match (any_t, any_f) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

impl Analysis<Ir> for IrAnalysis {
    type Data = Data;

    fn make(egraph: &EGraph<Ir, Self>, enode: &Ir) -> Data {
        let a = &egraph.analysis;
        let h = enode.head();
        let arg = |i: usize| &egraph[enode.args()[i]].data;
        let set_of = |i: usize| arg(i).set.clone();
        let value = |set: Option<ValueSet>| Data { enc: h.enc, selector: false, set: set.map(Rc::new), constant: None, diag: None };
        let n = a.max_len;
        match h.op {
            OpK::Tokens => value(Some(a.vocab.iter().cloned().collect())),
            OpK::Indices => value(Some(range(0, n.saturating_sub(1)))),
            OpK::Length => value(Some(range(1, n))),
            OpK::Const => value(Some(std::iter::once(a.vals[h.arg as usize].clone()).collect())),
            OpK::Map => {
                let f = &a.funcs[h.arg as usize];
                value(set_of(0).and_then(|s| s.iter().map(|v| eval::apply(f, std::slice::from_ref(v)).ok()).collect()))
            }
            OpK::SeqMap => {
                let f = &a.funcs[h.arg as usize];
                let image = (|| {
                    let (x, y) = (set_of(0)?, set_of(1)?);
                    if x.len().checked_mul(y.len())? > MAX_PRODUCT {
                        return None;
                    }
                    let mut out = ValueSet::new();
                    for u in x.iter() {
                        for v in y.iter() {
                            out.insert(eval::apply(f, &[u.clone(), v.clone()]).ok()?);
                        }
                    }
                    Some(out)
                })();
                value(image)
            }
            OpK::Select => {
                let p = &a.preds[h.arg as usize];
                let constant = match (set_of(0), set_of(1)) {
                    (Some(k), Some(q)) => pred_constant(p, &k, &q),
                    _ => match p {
                        Pred::Cmp(CmpPred::True) => Some(true),
                        Pred::Cmp(CmpPred::False) => Some(false),
                        _ => None,
                    },
                };
                // Key and query are one value: on the diagonal the predicate reads (v, v).
                let diag = if egraph.find(enode.args()[0]) == egraph.find(enode.args()[1]) {
                    set_of(0).and_then(|vs| {
                        let mut all = vs.iter().map(|v| eval::holds(p, v, v).ok());
                        let first = all.next()??;
                        all.all(|b| b == Some(first)).then_some(first)
                    })
                } else {
                    None
                };
                Data { enc: None, selector: true, set: None, constant, diag: constant.or(diag) }
            }
            OpK::And | OpK::Or | OpK::Not => {
                let c0 = arg(0).constant;
                let c1 = enode.args().get(1).and_then(|&i| egraph[i].data.constant);
                let (d0, d1) = (arg(0).diag, enode.args().get(1).and_then(|&i| egraph[i].data.diag));
                let diag = match h.op {
                    OpK::Not => d0.map(|b| !b),
                    OpK::And => match (d0, d1) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    _ => match (d0, d1) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                };
                let constant = match h.op {
                    OpK::Not => c0.map(|b| !b),
                    OpK::And => match (c0, c1) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    _ => match (c0, c1) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                };
                Data { enc: None, selector: true, set: None, constant, diag: constant.or(diag) }
            }
            OpK::Aggregate => {
                let d = a.vals[h.arg as usize].clone();
                if arg(0).constant == Some(false) {
                    // No key is ever selected: every position reads the default.
                    return value(Some(std::iter::once(d).collect()));
                }
                let set = set_of(1).and_then(|vs| {
                    let mut out: ValueSet = match h.enc {
                        Some(Encoding::Cat) => (*vs).clone(),
                        _ => {
                            let nums: Option<Vec<Rat>> = vs.iter().map(|v| v.as_num().cloned()).collect();
                            check::means(&nums?, n, MAX_NUM_SET)?
                        }
                    };
                    out.insert(d);
                    Some(out)
                });
                value(set)
            }
            OpK::Width => value(Some(match (arg(0).constant, arg(0).diag) {
                (Some(true), _) => range(1, n),
                (Some(false), _) => range(0, 0),
                // The query's own key is always selected: at least 1.
                (None, Some(true)) => range(1, n),
                // Never: at most the other max_len − 1 positions.
                (None, Some(false)) => range(0, n.saturating_sub(1)),
                (None, None) => range(0, n),
            })),
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        assert_eq!((a.enc, a.selector), (b.enc, b.selector), "merged e-classes of different encodings (a bug in a rule)");
        let mut changed_a = false;
        let mut changed_b = false;
        match (&a.set, &b.set) {
            (Some(x), Some(y)) if x != y => {
                let both: ValueSet = x.intersection(y).cloned().collect();
                changed_a = both.len() != x.len();
                changed_b = both.len() != y.len();
                a.set = Some(Rc::new(both));
            }
            (None, Some(_)) => {
                a.set = b.set.clone();
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            _ => {}
        }
        match (a.constant, b.constant) {
            (None, Some(_)) => {
                a.constant = b.constant;
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            _ => {}
        }
        match (a.diag, b.diag) {
            (None, Some(_)) => {
                a.diag = b.diag;
                changed_a = true;
            }
            (Some(_), None) => changed_b = true,
            _ => {}
        }
        DidMerge(changed_a, changed_b)
    }
}

/// The e-graph type.
pub type IrGraph = EGraph<Ir, IrAnalysis>;

/// Why saturation stopped.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Stop {
    /// No rule could add anything: the e-graph is saturated.
    Saturated,
    /// The iteration limit was reached; not saturated.
    IterationLimit(usize),
    /// The node limit was passed (egg's count of e-nodes when it stopped); not saturated.
    NodeLimit(usize),
    /// The time limit was reached; not saturated.
    TimeLimit(f64),
    /// Something else stopped it.
    Other(String),
    /// Saturation did not run (-O0, or a program with loops).
    NotRun,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Saturated => write!(f, "saturated"),
            Stop::IterationLimit(n) => write!(f, "iteration limit ({n}) reached, not saturated"),
            Stop::NodeLimit(n) => write!(f, "node limit reached ({n} e-nodes), not saturated"),
            Stop::TimeLimit(s) => write!(f, "time limit ({s} s) reached, not saturated"),
            Stop::Other(s) => write!(f, "stopped: {s}"),
            Stop::NotRun => write!(f, "not run"),
        }
    }
}

/// Saturation limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most e-nodes (`TFC_NODE_LIMIT`, default 10,000).
    pub nodes: usize,
    /// Most iterations (`TFC_ITER_LIMIT`, default 30).
    pub iterations: usize,
    /// Most time (`TFC_TIME_LIMIT_MS`, default 1,000 ms).
    pub time: Duration,
}

/// Default node limit.
pub const DEFAULT_NODE_LIMIT: usize = 10_000;
/// Default iteration limit.
pub const DEFAULT_ITER_LIMIT: usize = 30;
/// Default time limit in milliseconds.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 1_000;

impl Limits {
    /// The defaults, overridden by `TFC_NODE_LIMIT`, `TFC_ITER_LIMIT` and
    /// `TFC_TIME_LIMIT_MS` where they are set to a number.
    pub fn from_env() -> Limits {
        let get = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        Limits {
            nodes: get("TFC_NODE_LIMIT").map(|v| v as usize).unwrap_or(DEFAULT_NODE_LIMIT),
            iterations: get("TFC_ITER_LIMIT").map(|v| v as usize).unwrap_or(DEFAULT_ITER_LIMIT),
            time: Duration::from_millis(get("TFC_TIME_LIMIT_MS").unwrap_or(DEFAULT_TIME_LIMIT_MS)),
        }
    }
}

/// What the optimizer did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OptReport {
    /// Whether the returned program is the optimized one (false: the source).
    pub optimized: bool,
    /// Why the source program was kept, if it was.
    pub fallback: Option<String>,
    /// Why saturation stopped.
    pub stop: Stop,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes and e-classes at the end.
    pub egraph_nodes: usize,
    /// E-classes at the end.
    pub egraph_classes: usize,
    /// Saturation time in milliseconds.
    pub saturation_ms: f64,
    /// Whole optimization (conversion, saturation, extraction, validation) in milliseconds.
    pub total_ms: f64,
    /// Rule applications (unions that changed the e-graph), by rule.
    pub rules: BTreeMap<String, usize>,
    /// Instructions before and after.
    pub instructions: (usize, usize),
    /// How the result was validated against the source, for people.
    pub validation: String,
    /// The same, for machines; `None` when nothing was validated.
    pub validated: Option<Validation>,
    /// egg's explanation of the rewrite chain, when asked.
    pub explanation: Option<String>,
    /// The registry legend for the explanation (`f3 = { x + 1 }`, ...).
    pub legend: Vec<String>,
}

impl OptReport {
    fn not_run(why: &str, n: usize) -> OptReport {
        OptReport {
            optimized: false,
            fallback: Some(why.to_string()),
            stop: Stop::NotRun,
            iterations: 0,
            egraph_nodes: 0,
            egraph_classes: 0,
            saturation_ms: 0.0,
            total_ms: 0.0,
            rules: BTreeMap::new(),
            instructions: (n, n),
            validation: "none".into(),
            validated: None,
            explanation: None,
            legend: vec![],
        }
    }
}

fn count_lets(body: &[Stmt]) -> usize {
    check::all_lets(body).len()
}

/// The source program as an e-graph: the e-graph, the class of every name
/// (in definition order) and the output's class.
pub fn to_egraph(c: &Checked, explain: bool) -> Option<(IrGraph, Vec<(String, Id)>, Id, RecExpr<Ir>)> {
    let p = &c.program;
    let analysis = IrAnalysis { vocab: p.vocab.clone(), max_len: p.max_len, ..IrAnalysis::default() };
    let mut eg = IrGraph::new(analysis);
    if explain {
        eg = eg.with_explanations_enabled();
    }
    let mut expr: RecExpr<Ir> = RecExpr::default();
    let mut in_expr: HashMap<String, Id> = HashMap::new();
    let mut names = Vec::new();
    for s in &p.body {
        let Stmt::Let(l) = s else { return None };
        let info = c.get(&l.name.text)?;
        let enc = match &info.kind {
            Kind::Value { enc, .. } => Some(*enc),
            Kind::Selector => None,
        };
        let a = &mut eg.analysis;
        let (op, arg) = match &l.op {
            Op::Tokens => (OpK::Tokens, 0),
            Op::Indices => (OpK::Indices, 0),
            Op::Length => (OpK::Length, 0),
            Op::Const(v) => (OpK::Const, a.val(v)),
            Op::Map { func, .. } => (OpK::Map, a.func(func)),
            Op::SeqMap { func, .. } => (OpK::SeqMap, a.func(func)),
            Op::Select { pred, .. } => (OpK::Select, a.pred(pred)),
            Op::And(..) => (OpK::And, 0),
            Op::Or(..) => (OpK::Or, 0),
            Op::Not(_) => (OpK::Not, 0),
            Op::Aggregate { default, .. } => (OpK::Aggregate, a.val(&default.clone().unwrap_or(Value::int(0)))),
            Op::Width(_) => (OpK::Width, 0),
        };
        let kids: Vec<Id> = l.op.operands().iter().map(|n| in_expr.get(&n.text).copied()).collect::<Option<_>>()?;
        let node = Ir::Node(Head { op, enc, arg }, kids);
        let id = expr.add(node);
        in_expr.insert(l.name.text.clone(), id);
        names.push(l.name.text.clone());
    }
    let root = eg.add_expr(&expr);
    // Each name's class: add the sub-expression rooted at it (already present).
    let mut classes = Vec::new();
    for n in &names {
        let sub = sub_expr(&expr, in_expr[n]);
        classes.push((n.clone(), eg.add_expr(&sub)));
    }
    let out = sub_expr(&expr, *in_expr.get(&p.output.text)?);
    let out_id = eg.add_expr(&out);
    let _ = root;
    Some((eg, classes, out_id, out))
}

/// The sub-expression of `e` rooted at `id`.
pub fn sub_expr(e: &RecExpr<Ir>, id: Id) -> RecExpr<Ir> {
    let mut out = RecExpr::default();
    let mut map: HashMap<Id, Id> = HashMap::new();
    fn go(e: &RecExpr<Ir>, id: Id, out: &mut RecExpr<Ir>, map: &mut HashMap<Id, Id>) -> Id {
        if let Some(&m) = map.get(&id) {
            return m;
        }
        let Ir::Node(h, kids) = &e[id];
        let k: Vec<Id> = kids.iter().map(|&c| go(e, c, out, map)).collect();
        let n = out.add(Ir::Node(*h, k));
        map.insert(id, n);
        n
    }
    go(e, id, &mut out, &mut map);
    out
}

/// The optimized program, as the report says, and the report.
pub struct Optimized {
    /// The program to compile (the source when optimization fell back).
    pub checked: Checked,
    /// What happened.
    pub report: OptReport,
}

/// Optimizes a checked program under `limits`; `explain` asks egg for the
/// rewrite chain.
pub fn optimize(c: &Checked, limits: &Limits, explain: bool) -> Optimized {
    let t0 = Instant::now();
    let n0 = count_lets(&c.program.body);
    let keep = |mut report: OptReport, why: String| {
        report.optimized = false;
        report.fallback = Some(why);
        report.total_ms = t0.elapsed().as_secs_f64() * 1e3;
        report.instructions = (n0, n0);
        Optimized { checked: c.clone(), report }
    };
    if c.program.body.iter().any(|s| matches!(s, Stmt::Loop(_))) {
        return keep(OptReport::not_run("", n0), "loops are optimization barriers: programs with a loop are not optimized".into());
    }
    let Some((eg, classes, out_id, out_expr)) = to_egraph(c, explain) else {
        return keep(OptReport::not_run("", n0), "the program could not be converted (a bug)".into());
    };
    let ts = Instant::now();
    let runner = Runner::<Ir, IrAnalysis, ()>::new(IrAnalysis::default())
        .with_egraph(eg)
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iterations)
        .with_time_limit(limits.time)
        .with_scheduler(egg::SimpleScheduler)
        .run(&rules::rewrites());
    let saturation_ms = ts.elapsed().as_secs_f64() * 1e3;
    let stop = match runner.stop_reason.clone() {
        Some(StopReason::Saturated) => Stop::Saturated,
        Some(StopReason::IterationLimit(n)) => Stop::IterationLimit(n),
        Some(StopReason::NodeLimit(n)) => Stop::NodeLimit(n),
        Some(StopReason::TimeLimit(s)) => Stop::TimeLimit(s),
        Some(StopReason::Other(s)) => Stop::Other(s),
        None => Stop::Other("no stop reason".into()),
    };
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for it in &runner.iterations {
        for (r, n) in &it.applied {
            if *n > 0 {
                *applied.entry(r.to_string()).or_default() += n;
            }
        }
    }
    let mut report = OptReport {
        optimized: false,
        fallback: None,
        stop,
        iterations: runner.iterations.len(),
        egraph_nodes: runner.egraph.total_size(),
        egraph_classes: runner.egraph.number_of_classes(),
        saturation_ms,
        total_ms: 0.0,
        rules: applied,
        instructions: (n0, n0),
        validation: String::new(),
        validated: None,
        explanation: None,
        legend: vec![],
    };
    let eg = &runner.egraph;
    let best = extract::extract(eg);
    let root = eg.find(out_id);
    let (program, extracted) = match extract::to_program(eg, &best, root, &classes, &c.program) {
        Ok(x) => x,
        Err(e) => return keep(report, format!("extraction failed (a bug): {e}")),
    };
    let n1 = count_lets(&program.body);
    if report.rules.is_empty() && n1 == n0 {
        // Nothing rewritten, shared or dropped: the extraction is the source
        // up to the order of independent instructions.
        return keep(report, "nothing to rewrite: no rule applies and no instruction is shared or dead".into());
    }
    // The result must pass the checker and print and parse back.
    let checked = match check::check(&program) {
        Ok(k) => k,
        Err(ds) => {
            let msgs: Vec<String> = ds.iter().filter(|d| d.is_error()).map(|d| format!("{}: {}", d.code, d.message)).collect();
            return keep(report, format!("the optimized program does not check (a bug): {}", msgs.join("; ")));
        }
    };
    // Whether a categorical aggregate always sees one value is a property
    // of whole sequences, which the checker's static arguments (or its
    // search) settle and the verifier relies on; a rewrite that hides the
    // structure they read (e.g. an injective key) would leave the verifier
    // a bounded model check it may not finish. Never trade that for size.
    let undecided = |k: &Checked| k.aggregates.values().filter(|v| matches!(v, check::AggregateVerdict::Undecided(_))).count();
    if undecided(&checked) > undecided(c) {
        return keep(report, "the optimized program has a categorical aggregate the checker cannot show single-valued, which the source's checker can; kept the source".into());
    }
    let text = tfc_ir::print(&program);
    match tfc_ir::parse(&text) {
        Ok(back) if back == program => {}
        _ => return keep(report, "the optimized program does not print and parse back (a bug)".into()),
    }
    match validate(&c.program, &program) {
        Ok(how) => {
            report.validation = how.to_string();
            report.validated = Some(how);
        }
        Err(e) => return keep(report, format!("translation validation failed (a bug in a rule): {e}")),
    }
    if explain {
        let mut eg2 = runner.egraph;
        let mut ex = eg2.explain_equivalence(&out_expr, &extracted);
        report.explanation = Some(ex.get_flat_string());
        let a = &eg2.analysis;
        report.legend.extend(a.funcs.iter().enumerate().map(|(i, f)| format!("f{i} = {}", show_func(f))));
        report.legend.extend(a.preds.iter().enumerate().map(|(i, p)| format!("p{i} = {}", show_pred(p))));
        report.legend.extend(a.vals.iter().enumerate().map(|(i, v)| format!("v{i} = {v}")));
    }
    report.optimized = true;
    report.instructions = (n0, n1);
    report.total_ms = t0.elapsed().as_secs_f64() * 1e3;
    Optimized { checked, report }
}

fn show_func(f: &Func) -> String {
    match f {
        Func::Expr(e) => format!("{{ {} }}", tfc_ir::printer::expr(e)),
        Func::Table(rows) => format!("table of {} rows", rows.len()),
    }
}

fn show_pred(p: &Pred) -> String {
    match p {
        Pred::Cmp(c) => c.keyword().to_string(),
        Pred::Expr(e) => format!("{{ {} }}", tfc_ir::printer::expr(e)),
        Pred::Table(rows) => format!("table of {} pairs", rows.len()),
    }
}

/// Inputs checked exhaustively up to this many.
pub const VALIDATE_ALL: usize = 20_000;
/// Random inputs checked otherwise.
pub const VALIDATE_RANDOM: usize = 2_000;

/// Whether `src` and `opt` agree on one input: the same outputs, or the
/// same error code. `Err` describes the disagreement.
pub fn agree_on(src: &Program, opt: &Program, input: &[Value]) -> Result<(), String> {
    let opts = tfc_ir::interp::RunOptions::default();
    let a = tfc_ir::interp::run(src, input, &opts);
    let b = tfc_ir::interp::run(opt, input, &opts);
    let same = match (&a, &b) {
        (Ok(x), Ok(y)) => x.output == y.output,
        (Err(x), Err(y)) => x.code == y.code,
        _ => false,
    };
    if same {
        return Ok(());
    }
    let show = |r: &Result<tfc_ir::interp::Run, tfc_ir::Diagnostic>| match r {
        Ok(r) => tfc_ir::value::fmt_seq(&r.output),
        Err(d) => format!("error {}", d.code),
    };
    Err(format!("on input `{}` the source gives `{}`, the optimized program `{}`", tfc_ir::value::fmt_seq(input), show(&a), show(&b)))
}

/// Runs both programs on every admitted input when there are at most
/// `budget`: `Ok(Some(n))` when they agree on all `n`, `Ok(None)` when
/// there are more inputs than `budget` (nothing was run), `Err` on the
/// first disagreement. Agreement on every input is a proof that the two
/// programs are equal (the input domain is finite and the interpreter is
/// the programs' meaning).
pub fn agree_on_all(src: &Program, opt: &Program, budget: usize) -> Result<Option<usize>, String> {
    let Some(all) = check::all_inputs(src, budget) else { return Ok(None) };
    for i in &all {
        agree_on(src, opt, i)?;
    }
    Ok(Some(all.len()))
}

/// How the optimized program was checked against the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Validation {
    /// Inputs run.
    pub inputs: usize,
    /// Whether that was every admitted input (a proof of equality), or a
    /// random sample (evidence only).
    pub exhaustive: bool,
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exhaustive {
            write!(f, "interpreter agrees on all {} inputs", self.inputs)
        } else {
            write!(f, "interpreter agrees on {} random inputs", self.inputs)
        }
    }
}

/// Runs both programs on every input (at most [`VALIDATE_ALL`]) or on
/// [`VALIDATE_RANDOM`] random ones; outputs, or error codes, must agree.
pub fn validate(src: &Program, opt: &Program) -> Result<Validation, String> {
    if let Some(n) = agree_on_all(src, opt, VALIDATE_ALL)? {
        return Ok(Validation { inputs: n, exhaustive: true });
    }
    let mut rng = check::SplitMix(0x0971_2026);
    for _ in 0..VALIDATE_RANDOM {
        let len = 1 + rng.below(src.max_len);
        let input = check::random_input(src, len, &mut rng);
        agree_on(src, opt, &input)?;
    }
    Ok(Validation { inputs: VALIDATE_RANDOM, exhaustive: false })
}
