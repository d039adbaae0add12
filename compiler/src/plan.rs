//! Stage 1, `program_to_plan`: what the transformer must compute.
//!
//! A [`Plan`] is the program as a graph of *materialized* computations,
//! each of which becomes one piece of the transformer: an embedding
//! (tokens, indices, constants, loop state), an attention head (aggregate,
//! or the attention half of `width`), or an MLP block (`map`/`seqmap`).
//!
//! Two things happen on the way from the IR:
//!
//! * **Folding.** A `map` costs nothing when every reader can absorb it: a
//!   head's key, query or value reads the map's argument directly with the
//!   function composed into its score table or value map, and an MLP reads
//!   the argument with the function composed into its table. Such a map
//!   becomes an [`Operand`] with a lookup table over its *base* value, and
//!   gets no dimensions and no layer. This is what keeps Tracr-style
//!   programs shallow.
//! * **Selectors become literals.** A selector expression (`select`, `and`,
//!   `or`, `not`) is normalised into a conjunction of literals, each a
//!   table over one (key base, query base) pair: the head's score is the
//!   number of literals that hold, so one head does an `and` by adding
//!   scores, never by building a product key space. Any boolean formula
//!   over a single (key, query) pair is one literal.
//!
//! Every table is over exact values, computed with the IR's evaluator, so
//! the plan means exactly what the program means.

use crate::CompileError;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use tfc_ir::ast::*;
use tfc_ir::check::Checked;
use tfc_ir::eval;
use tfc_ir::Value;

/// Index of a node in [`Plan::nodes`].
pub type NodeId = usize;

/// A value read through an optional folded function: `map(node)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    /// The materialized node read.
    pub node: NodeId,
    /// The folded function from the node's value to the operand's value;
    /// `None` is the identity.
    pub map: Option<BTreeMap<Value, Value>>,
}

impl Operand {
    /// The operand's value for a base value.
    pub fn apply(&self, base: &Value) -> Value {
        match &self.map {
            None => base.clone(),
            Some(m) => m.get(base).cloned().expect("folded maps are total on the base set"),
        }
    }
}

/// One conjunct of a head's selector: query i selects key j only if
/// `(key[j], query[i])` (base values) is in `selected`.
#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    /// The node read on the key side.
    pub key: NodeId,
    /// The node read on the query side.
    pub query: NodeId,
    /// The selected (key base value, query base value) pairs.
    /// (A hash set: the score tables of large programs look up millions of pairs.)
    pub selected: HashSet<(Value, Value)>,
}

/// A conjunction of literals; empty means "every key".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    /// The conjuncts.
    pub literals: Vec<Literal>,
}

/// How a loop state starts.
#[derive(Clone, Debug, PartialEq)]
pub enum StateInit {
    /// A constant at every position.
    Const(Value),
    /// The value of a node computed before the loop.
    Node(NodeId),
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// The input tokens (embedding).
    Tokens,
    /// The position index (embedding).
    Indices,
    /// A constant (embedding).
    Const(Value),
    /// A loop state variable (embedding or copied initial value, updated by the loop's commit).
    State {
        /// The loop's index.
        loop_idx: usize,
        /// Its initial value.
        init: StateInit,
    },
    /// An aggregate: one attention head.
    Aggregate {
        /// Which keys each query selects.
        sel: Selector,
        /// The aggregated value.
        value: Operand,
        /// The value where no key is selected.
        default: Value,
    },
    /// `width`: a head writing 1/(w+1) to a scratch dimension, then an MLP decoding w.
    Width {
        /// Which keys each query selects.
        sel: Selector,
    },
    /// `map`/`seqmap`: an MLP block computing a table over its arguments' base values.
    Mlp {
        /// The arguments (one or two).
        args: Vec<Operand>,
        /// The function, over base values of the arguments.
        table: BTreeMap<Vec<Value>, Value>,
    },
}

/// Where a node lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    /// Top-level code; segment k runs after loop k−1 and before loop k.
    Segment(usize),
    /// The body (and state) of loop k.
    Loop(usize),
}

/// One materialized computation.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The IR name it computes (without `%`).
    pub name: String,
    /// What it computes.
    pub kind: NodeKind,
    /// How its value is encoded.
    pub enc: Encoding,
    /// Its value set, sorted.
    pub set: Vec<Value>,
    /// Where it lives.
    pub region: Region,
}

/// A loop of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopPlan {
    /// State nodes, in declaration order.
    pub states: Vec<NodeId>,
    /// For each state node, the node holding its next value.
    pub next: Vec<(NodeId, NodeId)>,
    /// When it stops.
    pub stop: LoopStopPlan,
}

/// When a planned loop stops.
#[derive(Clone, Debug, PartialEq)]
pub enum LoopStopPlan {
    /// A fixed number of runs.
    Fixed(usize),
    /// Stop when this state node is 1 everywhere; at most `max` runs.
    Until {
        /// The halting state node.
        halt: NodeId,
        /// The most runs.
        max: usize,
    },
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The program's name.
    pub program: String,
    /// The longest input.
    pub max_len: usize,
    /// Causal attention.
    pub causal: bool,
    /// The input vocabulary.
    pub vocab: Vec<Value>,
    /// Materialized nodes, in program order (every node after its inputs).
    pub nodes: Vec<Node>,
    /// The loops, in program order.
    pub loops: Vec<LoopPlan>,
    /// The node read out.
    pub output: NodeId,
    /// IR names that were folded away, with the node and function they read.
    pub folded: BTreeMap<String, Operand>,
}

impl Plan {
    /// The node computing an IR name, if it is materialized.
    pub fn node_named(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }
    /// The nodes a node reads.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        match &self.nodes[id].kind {
            NodeKind::Tokens | NodeKind::Indices | NodeKind::Const(_) => {}
            NodeKind::State { init, .. } => {
                if let StateInit::Node(n) = init {
                    out.push(*n);
                }
            }
            NodeKind::Aggregate { sel, value, .. } => {
                for l in &sel.literals {
                    out.push(l.key);
                    out.push(l.query);
                }
                out.push(value.node);
            }
            NodeKind::Width { sel } => {
                for l in &sel.literals {
                    out.push(l.key);
                    out.push(l.query);
                }
            }
            NodeKind::Mlp { args, .. } => out.extend(args.iter().map(|a| a.node)),
        }
        out.sort();
        out.dedup();
        out
    }
}

/// What a use of a value can absorb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UseKind {
    /// A select's key or query: needs a `cat` base.
    SelectSide,
    /// A categorical aggregate's value: needs a `cat` base.
    CatValue,
    /// A numerical aggregate's value: a `cat` base, or an affine function of a `num` base.
    NumValue,
    /// An argument of a map/seqmap (index of the consumer's let).
    MlpArg,
    /// Something that needs the value in its own dimensions.
    Materialize,
}

struct Builder<'c> {
    checked: &'c Checked,
    lets: HashMap<String, &'c Let>,
    /// Maps decided to stay materialized.
    materialize: BTreeSet<String>,
    /// Value sets as sorted vectors, computed once.
    sets: HashMap<String, Vec<Value>>,
    /// Resolutions under the current `materialize` (cleared when it grows).
    cache: std::cell::RefCell<HashMap<String, Resolved>>,
    /// Whether each seqmap (by name) is affine in its resolved arguments.
    affine_cache: std::cell::RefCell<HashMap<String, bool>>,
}

/// A resolved operand before node ids exist: the base IR name and the folded table.
#[derive(Clone, Debug)]
struct Resolved {
    base: String,
    map: Option<BTreeMap<Value, Value>>,
}

impl<'c> Builder<'c> {
    fn info_set(&self, name: &str) -> Vec<Value> {
        self.sets.get(name).cloned().unwrap_or_default()
    }
    fn set_ref(&self, name: &str) -> &[Value] {
        self.sets.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }
    fn info_enc(&self, name: &str) -> Encoding {
        self.checked.get(name).and_then(|i| i.enc()).unwrap_or(Encoding::Cat)
    }

    /// Whether `name` is a foldable map under the current decisions.
    fn is_virtual(&self, name: &str) -> bool {
        if self.materialize.contains(name) {
            return false;
        }
        match self.lets.get(name).map(|l| &l.op) {
            Some(Op::Map { .. }) => true,
            Some(Op::Length) => self.checked.program.causal,
            _ => false,
        }
    }

    /// Resolves a value name to the materialized base it reads and the folded function.
    fn resolve(&self, name: &str) -> Resolved {
        if let Some(r) = self.cache.borrow().get(name) {
            return r.clone();
        }
        let r = self.resolve_uncached(name);
        self.cache.borrow_mut().insert(name.to_string(), r.clone());
        r
    }

    fn resolve_uncached(&self, name: &str) -> Resolved {
        if !self.is_virtual(name) {
            return Resolved { base: name.to_string(), map: None };
        }
        let l = self.lets[name];
        match &l.op {
            Op::Length => {
                // Under causal attention, length at position i is i + 1.
                let base = self.resolve_indices();
                let table = self.info_set(&base).into_iter().map(|i| {
                    let n = i.as_num().cloned().expect("indices are numbers");
                    (i, Value::Num(n + num_rational::BigRational::from_integer(1.into())))
                });
                Resolved { base, map: Some(table.collect()) }
            }
            Op::Map { arg, func } => {
                let inner = self.resolve(&arg.text);
                let mut table = BTreeMap::new();
                for b in self.set_ref(&inner.base) {
                    let mid = match &inner.map {
                        None => b.clone(),
                        Some(m) => m[b].clone(),
                    };
                    let out = eval::apply(func, std::slice::from_ref(&mid)).expect("the checker evaluated this function on its set");
                    table.insert(b.clone(), out);
                }
                let identity = table.iter().all(|(k, v)| k == v);
                Resolved { base: inner.base, map: if identity { None } else { Some(table) } }
            }
            _ => unreachable!("only maps and causal length are virtual"),
        }
    }

    fn resolve_indices(&self) -> String {
        // The program's own `indices` if it has one; else a synthesized one.
        self.lets
            .values()
            .find(|l| l.op == Op::Indices)
            .map(|l| l.name.text.clone())
            .unwrap_or_else(|| SYNTH_INDICES.to_string())
    }

    /// Whether a use can read `name` folded.
    fn use_ok(&self, name: &str, use_kind: UseKind, consumer: Option<&Let>) -> bool {
        let r = self.resolve(name);
        let base_enc = self.base_enc(&r.base);
        match use_kind {
            UseKind::Materialize => false,
            UseKind::SelectSide | UseKind::CatValue => base_enc == Encoding::Cat,
            UseKind::NumValue => base_enc == Encoding::Cat || affine1(&r).is_some(),
            UseKind::MlpArg => {
                let Some(Let { op: Op::SeqMap { lhs, rhs, func }, name: cname, .. }) = consumer else { return true };
                // A seqmap of two numbers must stay affine to be one MLP layer.
                let (a, b) = (self.resolve(&lhs.text), self.resolve(&rhs.text));
                if self.base_enc(&a.base) == Encoding::Num && self.base_enc(&b.base) == Encoding::Num {
                    let key = format!("{}|{}|{}", cname.text, a.base, b.base);
                    if let Some(v) = self.affine_cache.borrow().get(&key) {
                        return *v;
                    }
                    // Affine maps composed with a function affine on their images are
                    // affine; checking that is linear in the bases' sets, where checking
                    // the composition on the product of the bases would be quadratic.
                    let direct = |n: &str| Resolved { base: n.to_string(), map: None };
                    let v = affine1(&a).is_some()
                        && affine1(&b).is_some()
                        && affine2(self, &direct(&lhs.text), &direct(&rhs.text), func).is_some();
                    self.affine_cache.borrow_mut().insert(key, v);
                    v
                } else {
                    true
                }
            }
        }
    }

    fn base_enc(&self, base: &str) -> Encoding {
        if base == SYNTH_INDICES {
            Encoding::Cat
        } else {
            self.info_enc(base)
        }
    }
}

/// The name of the indices node added when a program reads positions
/// only through a causal `length`.
pub const SYNTH_INDICES: &str = "indices";

/// `f(x) = a·x + c` on the base set, if the folded function is affine.
fn affine1(r: &Resolved) -> Option<(tfc_ir::Rat, tfc_ir::Rat)> {
    use num_traits::Zero;
    let Some(m) = &r.map else {
        return Some((tfc_ir::Rat::from_integer(1.into()), tfc_ir::Rat::zero()));
    };
    let pts: Vec<(tfc_ir::Rat, tfc_ir::Rat)> =
        m.iter().map(|(k, v)| Some((k.as_num()?.clone(), v.as_num()?.clone()))).collect::<Option<_>>()?;
    fit_affine(&pts)
}

/// The line through points with numeric x, if they all lie on one.
pub fn fit_affine(pts: &[(tfc_ir::Rat, tfc_ir::Rat)]) -> Option<(tfc_ir::Rat, tfc_ir::Rat)> {
    use num_traits::Zero;
    let (x0, y0) = pts.first()?.clone();
    let a = match pts.iter().find(|(x, _)| *x != x0) {
        Some((x1, y1)) => (y1 - &y0) / (x1 - &x0),
        None => tfc_ir::Rat::zero(),
    };
    let c = &y0 - &a * &x0;
    pts.iter().all(|(x, y)| &a * x + &c == *y).then_some((a, c))
}

fn affine2(b: &Builder, x: &Resolved, y: &Resolved, func: &Func) -> Option<()> {
    use num_traits::Zero;
    let xs = b.set_ref(&x.base);
    let ys = b.set_ref(&y.base);
    if xs.len().saturating_mul(ys.len()) > 1_000_000 || xs.is_empty() || ys.is_empty() {
        return None;
    }
    let val = |u: &Value, v: &Value| -> Option<tfc_ir::Rat> {
        let xu = x.map.as_ref().map_or(u.clone(), |m| m[u].clone());
        let yv = y.map.as_ref().map_or(v.clone(), |m| m[v].clone());
        eval::apply(func, &[xu, yv]).ok()?.as_num().cloned()
    };
    // Fit f = α·x + β·y + γ from three points, then check every pair,
    // stopping at the first that is off the plane.
    let (x0, y0) = (xs[0].as_num()?.clone(), ys[0].as_num()?.clone());
    let f00 = val(&xs[0], &ys[0])?;
    let alpha = match xs.get(1) {
        Some(x1) => (val(x1, &ys[0])? - &f00) / (x1.as_num()? - &x0),
        None => tfc_ir::Rat::zero(),
    };
    let beta = match ys.get(1) {
        Some(y1) => (val(&xs[0], y1)? - &f00) / (y1.as_num()? - &y0),
        None => tfc_ir::Rat::zero(),
    };
    let gamma = &f00 - &alpha * &x0 - &beta * &y0;
    let on_plane = |u: &Value, v: &Value| -> Option<bool> { Some(val(u, v)? == &alpha * u.as_num()? + &beta * v.as_num()? + &gamma) };
    // Cheap necessary conditions first (the first row, the first column, the
    // far corners), so that a non-affine function is rejected in linear time.
    let (xl, yl) = (&xs[xs.len() - 1], &ys[ys.len() - 1]);
    for (u, v) in [(xl, yl), (xl, &ys[0]), (&xs[0], yl)] {
        if !on_plane(u, v)? {
            return None;
        }
    }
    for u in xs {
        if !on_plane(u, &ys[0])? || !on_plane(u, yl)? {
            return None;
        }
    }
    for v in ys {
        if !on_plane(&xs[0], v)? || !on_plane(xl, v)? {
            return None;
        }
    }
    for u in xs {
        for v in ys {
            if val(u, v)? != &alpha * u.as_num()? + &beta * v.as_num()? + &gamma {
                return None;
            }
        }
    }
    Some(())
}

/// Builds the plan of a checked program.
pub fn program_to_plan(checked: &Checked) -> Result<Plan, CompileError> {
    let prog = &checked.program;
    let all = tfc_ir::check::all_lets(&prog.body);
    let lets: HashMap<String, &Let> = all.iter().map(|l| (l.name.text.clone(), *l)).collect();
    let mut sets: HashMap<String, Vec<Value>> =
        checked.info.iter().filter_map(|(n, i)| i.set().map(|s| (n.clone(), s.iter().cloned().collect()))).collect();
    // A causal `length` without an `indices` of the program's own reads a
    // synthesized one (below): its set, for the tables folded over it.
    if !all.iter().any(|l| l.op == Op::Indices) && !sets.contains_key(SYNTH_INDICES) {
        sets.insert(SYNTH_INDICES.to_string(), (0..prog.max_len).map(|i| Value::int(i as i64)).collect());
    }
    let mut b = Builder {
        checked,
        lets,
        materialize: BTreeSet::new(),
        sets,
        cache: Default::default(),
        affine_cache: Default::default(),
    };

    // Uses of every value name.
    let mut uses: Vec<(String, UseKind, Option<&Let>)> = Vec::new();
    for l in &all {
        match &l.op {
            Op::Select { keys, queries, .. } => {
                uses.push((keys.text.clone(), UseKind::SelectSide, Some(l)));
                uses.push((queries.text.clone(), UseKind::SelectSide, Some(l)));
            }
            Op::Aggregate { values, .. } => {
                let k = if l.enc == Some(Encoding::Cat) { UseKind::CatValue } else { UseKind::NumValue };
                uses.push((values.text.clone(), k, Some(l)));
            }
            Op::Map { arg, .. } => uses.push((arg.text.clone(), UseKind::MlpArg, Some(l))),
            Op::SeqMap { lhs, rhs, .. } => {
                uses.push((lhs.text.clone(), UseKind::MlpArg, Some(l)));
                uses.push((rhs.text.clone(), UseKind::MlpArg, Some(l)));
            }
            _ => {}
        }
    }
    uses.push((prog.output.text.clone(), UseKind::Materialize, None));
    for s in &prog.body {
        if let Stmt::Loop(lp) = s {
            for (_, v) in &lp.next {
                uses.push((v.text.clone(), UseKind::Materialize, None));
            }
            for st in &lp.state {
                if let Init::Value(v) = &st.init {
                    uses.push((v.text.clone(), UseKind::Materialize, None));
                }
            }
        }
    }
    // Fixpoint: materialize a map as soon as one of its uses cannot fold it.
    loop {
        let mut changed = false;
        for (name, k, consumer) in &uses {
            if b.is_virtual(name) && !b.use_ok(name, *k, *consumer) {
                b.materialize.insert(name.clone());
                b.cache.borrow_mut().clear();
                // `affine_cache` stays: its key (consumer, bases) fixes the functions.
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Nodes, in program order.
    let mut plan = Plan {
        program: prog.name.clone(),
        max_len: prog.max_len,
        causal: prog.causal,
        vocab: prog.vocab.clone(),
        nodes: vec![],
        loops: vec![],
        output: 0,
        folded: BTreeMap::new(),
    };
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let mut segment = 0;
    let needs_synth_indices = prog.causal
        && all.iter().any(|l| l.op == Op::Length && b.is_virtual(&l.name.text))
        && !all.iter().any(|l| l.op == Op::Indices);
    if needs_synth_indices {
        let set = (0..prog.max_len).map(|i| Value::int(i as i64)).collect();
        ids.insert(SYNTH_INDICES.into(), 0);
        plan.nodes.push(Node { name: SYNTH_INDICES.into(), kind: NodeKind::Indices, enc: Encoding::Cat, set, region: Region::Segment(0) });
    }
    build_stmts(&b, &prog.body, &mut plan, &mut ids, &mut segment, None)?;
    let out = b.resolve(&prog.output.text);
    plan.output = ids[&out.base];
    prune(&mut plan);
    Ok(plan)
}

fn operand(b: &Builder, ids: &HashMap<String, NodeId>, name: &str) -> Operand {
    let r = b.resolve(name);
    Operand { node: ids[&r.base], map: r.map }
}

fn build_stmts(
    b: &Builder,
    body: &[Stmt],
    plan: &mut Plan,
    ids: &mut HashMap<String, NodeId>,
    segment: &mut usize,
    in_loop: Option<usize>,
) -> Result<(), CompileError> {
    for s in body {
        match s {
            Stmt::Let(l) => {
                let region = in_loop.map_or(Region::Segment(*segment), Region::Loop);
                if l.op.is_selector() {
                    continue;
                }
                if b.is_virtual(&l.name.text) {
                    plan.folded.insert(l.name.text.clone(), operand(b, ids, &l.name.text));
                    continue;
                }
                let name = l.name.text.clone();
                let enc = b.info_enc(&name);
                let set = b.info_set(&name);
                let kind = match &l.op {
                    Op::Tokens => NodeKind::Tokens,
                    Op::Indices => NodeKind::Indices,
                    Op::Const(v) => NodeKind::Const(v.clone()),
                    Op::Length => NodeKind::Width { sel: Selector::default() },
                    Op::Width(sel) => NodeKind::Width { sel: selector(b, ids, &plan.nodes, &sel.text, l)? },
                    Op::Aggregate { sel, values, default } => {
                        let default = default.clone().unwrap_or(Value::int(0));
                        NodeKind::Aggregate { sel: selector(b, ids, &plan.nodes, &sel.text, l)?, value: operand(b, ids, &values.text), default }
                    }
                    Op::Map { arg, func } => {
                        let a = operand(b, ids, &arg.text);
                        let mut table = BTreeMap::new();
                        for base in &plan.nodes[a.node].set {
                            let v = eval::apply(func, &[a.apply(base)]).map_err(|e| CompileError::internal(format!("map {name}: {e}")))?;
                            table.insert(vec![base.clone()], v);
                        }
                        NodeKind::Mlp { args: vec![a], table }
                    }
                    Op::SeqMap { lhs, rhs, func } => {
                        let x = operand(b, ids, &lhs.text);
                        let y = operand(b, ids, &rhs.text);
                        let (xs, ys) = (plan.nodes[x.node].set.clone(), plan.nodes[y.node].set.clone());
                        let mut table = BTreeMap::new();
                        for u in &xs {
                            for v in &ys {
                                let out = eval::apply(func, &[x.apply(u), y.apply(v)]).map_err(|e| CompileError::internal(format!("seqmap {name}: {e}")))?;
                                table.insert(vec![u.clone(), v.clone()], out);
                            }
                        }
                        NodeKind::Mlp { args: vec![x, y], table }
                    }
                    Op::Select { .. } | Op::And(..) | Op::Or(..) | Op::Not(_) => unreachable!("selectors skipped above"),
                };
                ids.insert(name.clone(), plan.nodes.len());
                plan.nodes.push(Node { name, kind, enc, set, region });
            }
            Stmt::Loop(lp) => {
                let idx = plan.loops.len();
                let mut states = Vec::new();
                for st in &lp.state {
                    let init = match &st.init {
                        Init::Const(v) => StateInit::Const(v.clone()),
                        Init::Value(n) => StateInit::Node(ids[&b.resolve(&n.text).base]),
                    };
                    let name = st.name.text.clone();
                    let set: Vec<Value> = b.info_set(&name);
                    ids.insert(name.clone(), plan.nodes.len());
                    states.push(plan.nodes.len());
                    plan.nodes.push(Node { name, kind: NodeKind::State { loop_idx: idx, init }, enc: st.enc, set, region: Region::Loop(idx) });
                }
                plan.loops.push(LoopPlan { states: states.clone(), next: vec![], stop: LoopStopPlan::Fixed(0) });
                build_stmts(b, &lp.body, plan, ids, segment, Some(idx))?;
                let next = lp
                    .next
                    .iter()
                    .map(|(s, v)| (ids[&s.text], ids[&b.resolve(&v.text).base]))
                    .collect();
                let stop = match &lp.stop {
                    Stop::Fixed(n) => LoopStopPlan::Fixed(*n),
                    Stop::Until { halt, max } => LoopStopPlan::Until { halt: ids[&halt.text], max: *max },
                };
                plan.loops[idx].next = next;
                plan.loops[idx].stop = stop;
                *segment += 1;
            }
        }
    }
    Ok(())
}

/// A boolean formula over select atoms.
#[derive(Clone, Debug)]
enum Formula {
    Atom(usize),
    And(Box<Formula>, Box<Formula>),
    Or(Box<Formula>, Box<Formula>),
    Not(Box<Formula>),
}

struct Atom<'l> {
    key: Operand,
    query: Operand,
    pred: &'l Pred,
}

impl Formula {
    fn eval(&self, truth: &dyn Fn(usize) -> bool) -> bool {
        match self {
            Formula::Atom(i) => truth(*i),
            Formula::And(a, b) => a.eval(truth) && b.eval(truth),
            Formula::Or(a, b) => a.eval(truth) || b.eval(truth),
            Formula::Not(a) => !a.eval(truth),
        }
    }
    fn atoms(&self, out: &mut BTreeSet<usize>) {
        match self {
            Formula::Atom(i) => {
                out.insert(*i);
            }
            Formula::And(a, b) | Formula::Or(a, b) => {
                a.atoms(out);
                b.atoms(out);
            }
            Formula::Not(a) => a.atoms(out),
        }
    }
    /// The top-level conjuncts.
    fn conjuncts(self) -> Vec<Formula> {
        match self {
            Formula::And(a, b) => {
                let mut v = a.conjuncts();
                v.extend(b.conjuncts());
                v
            }
            other => vec![other],
        }
    }
}

fn formula<'l>(b: &'l Builder, ids: &HashMap<String, NodeId>, name: &str, atoms: &mut Vec<Atom<'l>>) -> Formula {
    let l = b.lets[name];
    match &l.op {
        Op::Select { keys, queries, pred } => {
            atoms.push(Atom { key: operand(b, ids, &keys.text), query: operand(b, ids, &queries.text), pred });
            Formula::Atom(atoms.len() - 1)
        }
        Op::And(x, y) => Formula::And(Box::new(formula(b, ids, &x.text, atoms)), Box::new(formula(b, ids, &y.text, atoms))),
        Op::Or(x, y) => Formula::Or(Box::new(formula(b, ids, &x.text, atoms)), Box::new(formula(b, ids, &y.text, atoms))),
        Op::Not(x) => Formula::Not(Box::new(formula(b, ids, &x.text, atoms))),
        _ => unreachable!("the checker guarantees a selector"),
    }
}

fn selector(b: &Builder, ids: &HashMap<String, NodeId>, nodes: &[Node], name: &str, user: &Let) -> Result<Selector, CompileError> {
    let mut atoms = Vec::new();
    let f = formula(b, ids, name, &mut atoms);
    // Group conjuncts by the (key node, query node) pair their atoms read.
    let mut literals: Vec<Literal> = Vec::new();
    for conj in f.conjuncts() {
        let mut used = BTreeSet::new();
        conj.atoms(&mut used);
        let pairs: BTreeSet<(NodeId, NodeId)> = used.iter().map(|&i| (atoms[i].key.node, atoms[i].query.node)).collect();
        if pairs.len() != 1 {
            return Err(CompileError::UnsupportedSelector {
                name: user.name.text.clone(),
                span: user.span,
                reason: "an `or` or `not` combines selectors over different key/query values; one head adds scores only for an `and`".into(),
            });
        }
        let (kn, qn) = *pairs.iter().next().expect("one pair");
        let mut selected = HashSet::new();
        // Plan nodes are built in order, so the key and query sets are known here.
        let (kset, qset) = (&nodes[kn].set, &nodes[qn].set);
        for k in kset {
            for q in qset {
                let truth = |i: usize| {
                    let a = &atoms[i];
                    eval::holds(a.pred, &a.key.apply(k), &a.query.apply(q)).unwrap_or(false)
                };
                if conj.eval(&truth) {
                    selected.insert((k.clone(), q.clone()));
                }
            }
        }
        match literals.iter_mut().find(|l| l.key == kn && l.query == qn) {
            Some(l) => l.selected = l.selected.intersection(&selected).cloned().collect(),
            None => literals.push(Literal { key: kn, query: qn, selected }),
        }
    }
    // A literal that selects every pair adds nothing.
    literals.retain(|l| l.selected.len() != nodes[l.key].set.len() * nodes[l.query].set.len());
    Ok(Selector { literals })
}

/// Drops nodes nothing needs (from the output, loop updates and halts backwards).
fn prune(plan: &mut Plan) {
    let mut live = BTreeSet::new();
    let mut stack = vec![plan.output];
    // Loops are kept as written: every state is live, read after the loop
    // or not. An `until` loop's halting is observable whether or not its
    // states are read (E0604 when it does not halt within its maximum);
    // pruning its states left the halt id pointing at whichever node took
    // its number after renumbering. A fixed-count loop whose states were
    // all pruned kept an empty commit the verifier cannot check.
    for lp in &plan.loops {
        stack.extend(lp.states.iter().copied());
        if let LoopStopPlan::Until { halt, .. } = lp.stop {
            stack.push(halt);
        }
    }
    // States are live when read; their next values (and the loop's halting
    // state) are live when the state is.
    {
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(plan.inputs(n));
                for lp in &plan.loops {
                    for (s, nx) in &lp.next {
                        if *s == n {
                            stack.push(*nx);
                        }
                    }
                    if let LoopStopPlan::Until { halt, .. } = lp.stop {
                        if lp.states.contains(&n) {
                            stack.push(halt);
                        }
                    }
                }
            }
        }
    }
    // Renumber.
    let keep: Vec<NodeId> = (0..plan.nodes.len()).filter(|i| live.contains(i)).collect();
    let remap: HashMap<NodeId, NodeId> = keep.iter().enumerate().map(|(new, old)| (*old, new)).collect();
    let r = |i: &mut NodeId| *i = remap[i];
    let mut nodes: Vec<Node> = keep.iter().map(|i| plan.nodes[*i].clone()).collect();
    for n in &mut nodes {
        match &mut n.kind {
            NodeKind::State { init: StateInit::Node(x), .. } => r(x),
            NodeKind::Aggregate { sel, value, .. } => {
                sel.literals.iter_mut().for_each(|l| {
                    r(&mut l.key);
                    r(&mut l.query)
                });
                r(&mut value.node);
            }
            NodeKind::Width { sel } => sel.literals.iter_mut().for_each(|l| {
                r(&mut l.key);
                r(&mut l.query)
            }),
            NodeKind::Mlp { args, .. } => args.iter_mut().for_each(|a| r(&mut a.node)),
            _ => {}
        }
    }
    for lp in &mut plan.loops {
        lp.states.retain(|s| remap.contains_key(s));
        lp.states.iter_mut().for_each(r);
        lp.next.retain(|(s, _)| remap.contains_key(s));
        lp.next.iter_mut().for_each(|(s, n)| {
            *s = remap[s];
            *n = remap[n];
        });
        if let LoopStopPlan::Until { halt, .. } = &mut lp.stop {
            *halt = remap[halt];
        }
    }
    plan.folded.retain(|_, op| remap.contains_key(&op.node));
    plan.folded.values_mut().for_each(|op| op.node = remap[&op.node]);
    plan.output = remap[&plan.output];
    plan.nodes = nodes;
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan {} (max_len {}{})", self.program, self.max_len, if self.causal { ", causal" } else { "" })?;
        for (i, n) in self.nodes.iter().enumerate() {
            let what = match &n.kind {
                NodeKind::Tokens => "tokens".to_string(),
                NodeKind::Indices => "indices".to_string(),
                NodeKind::Const(v) => format!("const {v}"),
                NodeKind::State { init, .. } => match init {
                    StateInit::Const(v) => format!("state = {v}"),
                    StateInit::Node(x) => format!("state = %{}", self.nodes[*x].name),
                },
                NodeKind::Aggregate { sel, value, default } => format!(
                    "head aggregate %{} over {} literal(s), default {default}",
                    self.nodes[value.node].name,
                    sel.literals.len()
                ),
                NodeKind::Width { sel } => format!("head+mlp width over {} literal(s)", sel.literals.len()),
                NodeKind::Mlp { args, table } => format!(
                    "mlp of {} ({} rows)",
                    args.iter().map(|a| format!("%{}", self.nodes[a.node].name)).collect::<Vec<_>>().join(", "),
                    table.len()
                ),
            };
            writeln!(f, "  n{i} %{} : {} ({} values) [{:?}] = {what}", n.name, n.enc, n.set.len(), n.region)?;
        }
        for (name, op) in &self.folded {
            writeln!(f, "  folded %{name} = f(%{})", self.nodes[op.node].name)?;
        }
        writeln!(f, "  output %{}", self.nodes[self.output].name)
    }
}

/// `(a, c)` with `op(x) = a·x + c` for every numeric x in `set`, if the
/// operand's folded function is affine there.
pub fn affine1_of(op: &Operand, set: &[Value]) -> Option<(tfc_ir::Rat, tfc_ir::Rat)> {
    let pts: Vec<(tfc_ir::Rat, tfc_ir::Rat)> =
        set.iter().map(|x| Some((x.as_num()?.clone(), op.apply(x).as_num()?.clone()))).collect::<Option<_>>()?;
    fit_affine(&pts)
}

/// `(α, β, γ)` with `f(x, y) = α·x + β·y + γ` at every point, if there is one.
pub fn fit_affine2(pts: &[(Value, Value, tfc_ir::Rat)]) -> Option<(tfc_ir::Rat, tfc_ir::Rat, tfc_ir::Rat)> {
    use num_traits::Zero;
    let num = |v: &Value| v.as_num().cloned();
    let (x0, y0, f0) = pts.first().map(|(x, y, f)| (num(x), num(y), f.clone()))?;
    let (x0, y0) = (x0?, y0?);
    let alpha = match pts.iter().find(|(x, y, _)| num(x).as_ref() != Some(&x0) && num(y).as_ref() == Some(&y0)) {
        Some((x1, _, f1)) => (f1 - &f0) / (num(x1)? - &x0),
        None => tfc_ir::Rat::zero(),
    };
    let beta = match pts.iter().find(|(x, y, _)| num(x).as_ref() == Some(&x0) && num(y).as_ref() != Some(&y0)) {
        Some((_, y1, f1)) => (f1 - &f0) / (num(y1)? - &y0),
        None => tfc_ir::Rat::zero(),
    };
    let gamma = &f0 - &alpha * &x0 - &beta * &y0;
    for (x, y, f) in pts {
        if &alpha * num(x)? + &beta * num(y)? + &gamma != *f {
            return None;
        }
    }
    Some((alpha, beta, gamma))
}
