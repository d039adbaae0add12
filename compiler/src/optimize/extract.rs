//! Extraction: the cheapest program in the e-graph, by (depth, residual
//! width, parameters) compared in that order.
//!
//! Depth is a critical path in sublayers: an aggregate is one attention
//! sublayer after the later of its selector's inputs and its value, a
//! `map`/`seqmap` one MLP sublayer after its inputs, a `width`/`length` an
//! attention and an MLP sublayer; embeddings (`tokens`, `indices`,
//! `const`) and selectors cost none. Width is residual dimensions (a `cat`
//! value's set size, 1 for `num`), parameters a rough count of the
//! weights. A node's width is the set the *checker* will give the
//! instruction it becomes (its transfer function over its operands'
//! classes), not its e-class's set: the class set may be narrower (merged
//! classes intersect their sets, and the analysis knows more than the
//! checker, e.g. that a reflexive selector's width is at least 1), and the
//! lowering allocates what the checker says. `narrow-to-set` adds nodes
//! whose checked set is the class's, and extraction prefers them.
//!
//! **Greedy.** Costs are computed bottom-up to a fixed point, per e-class,
//! the classic way: depth is exact (a maximum over operands), but width and
//! parameters are summed over the *tree* below a node, so a value shared by
//! two readers is counted twice while choosing. The chosen program is a
//! DAG, and [`dag_cost`] measures it with each value once. Lowering's
//! folding of maps into their readers is not modelled: a map counts one MLP
//! sublayer even where lowering will fold it away.

use super::{Head, Ir, IrGraph, OpK};
use egg::{Id, RecExpr};
use std::collections::{BTreeMap, HashMap, HashSet};
use tfc_ir::ast::*;
use tfc_ir::Value;

/// (depth, width, parameters), compared lexicographically.
pub type Cost = (u32, u64, u64);

fn width_of(eg: &IrGraph, class: Id) -> u64 {
    let d = &eg[class].data;
    match (d.selector, d.enc, &d.set) {
        (true, _, _) => 0,
        (_, Some(Encoding::Cat), Some(s)) => s.len() as u64,
        _ => 1,
    }
}

/// The residual width the checker gives the instruction `n` (in `class`)
/// becomes, with its operands' sets taken from their classes.
pub fn node_width(eg: &IrGraph, class: Id, n: &Ir) -> u64 {
    let d = &eg[class].data;
    if d.selector {
        return 0;
    }
    let h = n.head();
    if h.enc != Some(Encoding::Cat) {
        return 1;
    }
    let a = &eg.analysis;
    let kid = |i: usize| eg[n.args()[i]].data.set.clone();
    let image = match h.op {
        OpK::Map => kid(0).and_then(|s| s.iter().map(|v| tfc_ir::eval::apply(&a.funcs[h.arg as usize], std::slice::from_ref(v)).ok()).collect::<Option<HashSet<Value>>>()),
        OpK::SeqMap => (|| {
            let (x, y) = (kid(0)?, kid(1)?);
            if x.len().checked_mul(y.len())? > tfc_ir::check::MAX_PRODUCT {
                return None;
            }
            let f = &a.funcs[h.arg as usize];
            let mut out = HashSet::new();
            for u in x.iter() {
                for v in y.iter() {
                    out.insert(tfc_ir::eval::apply(f, &[u.clone(), v.clone()]).ok()?);
                }
            }
            Some(out)
        })(),
        OpK::Width => {
            let all_true = eg[n.args()[0]].data.constant == Some(true);
            return a.max_len as u64 + u64::from(!all_true);
        }
        OpK::Aggregate => kid(1).map(|s| {
            let mut out: HashSet<Value> = s.iter().cloned().collect();
            out.insert(a.vals[h.arg as usize].clone());
            out
        }),
        _ => None,
    };
    image.map_or_else(|| width_of(eg, class), |s| s.len() as u64)
}

/// The cost a node adds on top of its operands: (sublayers, dims, params).
fn local(eg: &IrGraph, w: u64, n: &Ir) -> (u32, u64, u64) {
    let kids: Vec<u64> = n.args().iter().map(|&c| width_of(eg, c).max(1)).collect();
    let prod: u64 = kids.iter().product();
    match n.head().op {
        OpK::Tokens | OpK::Indices | OpK::Const => (0, w, 0),
        OpK::Length | OpK::Width => (2, w, w * 4),
        OpK::Map | OpK::SeqMap => (1, w, prod * (w + 1)),
        OpK::Select | OpK::And | OpK::Or | OpK::Not => (0, 0, prod),
        OpK::Aggregate => (1, w, prod + w),
    }
}

/// The best node of every e-class.
pub fn extract(eg: &IrGraph) -> HashMap<Id, (Cost, Ir)> {
    let mut best: HashMap<Id, (Cost, Ir)> = HashMap::new();
    // Node widths do not change during the fixed point: compute them once.
    let widths: HashMap<(Id, usize), u64> =
        eg.classes().flat_map(|c| c.nodes.iter().enumerate().map(move |(i, n)| ((c.id, i), node_width(eg, c.id, n)))).collect();
    loop {
        let mut changed = false;
        for class in eg.classes() {
            for (ni, n) in class.nodes.iter().enumerate() {
                let mut depth = 0u32;
                let (mut w, mut p) = (0u64, 0u64);
                let mut ok = true;
                for &c in n.args() {
                    match best.get(&eg.find(c)) {
                        Some(((d, cw, cp), _)) => {
                            depth = depth.max(*d);
                            w = w.saturating_add(*cw);
                            p = p.saturating_add(*cp);
                        }
                        None => ok = false,
                    }
                }
                if !ok {
                    continue;
                }
                let (ld, lw, lp) = local(eg, widths[&(class.id, ni)], n);
                let cost = (depth + ld, w.saturating_add(lw), p.saturating_add(lp));
                let better = match best.get(&class.id) {
                    None => true,
                    Some((old, _)) => cost < *old,
                };
                if better {
                    best.insert(class.id, (cost, n.clone()));
                    changed = true;
                }
            }
        }
        if !changed {
            return best;
        }
    }
}

/// The chosen DAG's (depth, width, parameters), each value counted once.
pub fn dag_cost(eg: &IrGraph, best: &HashMap<Id, (Cost, Ir)>, root: Id) -> Cost {
    let mut seen = HashSet::new();
    let mut stack = vec![eg.find(root)];
    let (mut w, mut p) = (0u64, 0u64);
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        let n = &best[&c].1;
        let (_, lw, lp) = local(eg, node_width(eg, c, n), n);
        w += lw;
        p += lp;
        stack.extend(n.args().iter().map(|&k| eg.find(k)));
    }
    (best[&eg.find(root)].0 .0, w, p)
}

/// The extracted program: source names for classes that had one (the
/// output keeps its name), fresh `opt.N` names otherwise; and the output's
/// term as a `RecExpr`, for explanations.
pub fn to_program(
    eg: &IrGraph,
    best: &HashMap<Id, (Cost, Ir)>,
    root: Id,
    names: &[(String, Id)],
    src: &Program,
) -> Result<(Program, RecExpr<Ir>), String> {
    let mut class_names: BTreeMap<Id, Vec<String>> = BTreeMap::new();
    for (n, id) in names {
        class_names.entry(eg.find(*id)).or_default().push(n.clone());
    }
    let taken: HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let mut fresh = 0usize;
    let mut emitted: HashMap<Id, (String, Id)> = HashMap::new();
    let mut body = Vec::new();
    let mut expr: RecExpr<Ir> = RecExpr::default();
    let root = eg.find(root);
    // Post-order DFS without recursion depth issues for small programs.
    fn visit(
        c: Id,
        eg: &IrGraph,
        best: &HashMap<Id, (Cost, Ir)>,
        root: Id,
        src: &Program,
        class_names: &BTreeMap<Id, Vec<String>>,
        taken: &HashSet<&str>,
        fresh: &mut usize,
        emitted: &mut HashMap<Id, (String, Id)>,
        body: &mut Vec<Stmt>,
        expr: &mut RecExpr<Ir>,
        depth: usize,
    ) -> Result<(String, Id), String> {
        let c = eg.find(c);
        if let Some(x) = emitted.get(&c) {
            return Ok(x.clone());
        }
        if depth > 10_000 {
            return Err("the extracted program is too deep".into());
        }
        let (_, n) = best.get(&c).ok_or("an e-class without a finite-cost node")?;
        let mut kids = Vec::new();
        for &k in n.args() {
            kids.push(visit(k, eg, best, root, src, class_names, taken, fresh, emitted, body, expr, depth + 1)?);
        }
        let name = if c == root {
            src.output.text.clone()
        } else if let Some(n) = class_names.get(&c).and_then(|v| v.iter().find(|n| **n != src.output.text)) {
            n.clone()
        } else {
            loop {
                *fresh += 1;
                let cand = format!("opt.{fresh}");
                if !taken.contains(cand.as_str()) {
                    break cand;
                }
            }
        };
        let a = &eg.analysis;
        let h: Head = n.head();
        let arg = |i: usize| Name::new(kids[i].0.clone());
        let op = match h.op {
            OpK::Tokens => Op::Tokens,
            OpK::Indices => Op::Indices,
            OpK::Length => Op::Length,
            OpK::Const => Op::Const(a.vals[h.arg as usize].clone()),
            OpK::Map => Op::Map { arg: arg(0), func: a.funcs[h.arg as usize].clone() },
            OpK::SeqMap => Op::SeqMap { lhs: arg(0), rhs: arg(1), func: a.funcs[h.arg as usize].clone() },
            OpK::Select => Op::Select { keys: arg(0), queries: arg(1), pred: a.preds[h.arg as usize].clone() },
            OpK::And => Op::And(arg(0), arg(1)),
            OpK::Or => Op::Or(arg(0), arg(1)),
            OpK::Not => Op::Not(arg(0)),
            OpK::Aggregate => Op::Aggregate { sel: arg(0), values: arg(1), default: Some(a.vals[h.arg as usize].clone()) },
            OpK::Width => Op::Width(arg(0)),
        };
        body.push(Stmt::Let(Let { name: Name::new(name.clone()), op, enc: h.enc, span: Span::default() }));
        let id = expr.add(Ir::Node(h, kids.iter().map(|k| k.1).collect()));
        emitted.insert(c, (name.clone(), id));
        Ok((name, id))
    }
    visit(root, eg, best, root, src, &class_names, &taken, &mut fresh, &mut emitted, &mut body, &mut expr, 0)?;
    let prog = Program {
        name: src.name.clone(),
        vocab: src.vocab.clone(),
        max_len: src.max_len,
        causal: src.causal,
        distinct: src.distinct,
        body,
        output: Name::new(src.output.text.clone()),
        span: Span::default(),
    };
    let _ = Value::int(0);
    Ok((prog, expr))
}
