//! Function bodies: linear normal form, substitution and composition.
//!
//! The e-graph never sees arithmetic inside a function body: a body is one
//! leaf, and equal bodies are equal leaves. Linear arithmetic is normalised
//! here, once, by [`normalise`] (the `linear-normalise` rule applies it), so
//! `x + (y + (-x))` becomes `y` without any commutativity or associativity
//! rule in the e-graph (raw AC rules explode it; issue 6, "Cases from the
//! field").
//!
//! A body is read as a sum `c0 + c1*a1 + ... + cn*an` of *atoms* (`x`, `y`,
//! or any sub-expression that is not `+ - * /` by a constant, itself
//! normalised inside). The identities used are the ones proved in
//! `proofs/rules/linear-normalise.*.smt2`. Dropping an atom whose
//! coefficient cancels to 0 can only make the body defined in more places
//! (`+ - * /` evaluate every operand), and the checker has already shown
//! that the original body is defined on its whole input set.

use std::collections::BTreeMap;
use tfc_ir::ast::{BinOp, Builtin, CmpPred, Expr, ExprKind, Func, Pred, UnOp, Var};
use tfc_ir::eval;
use tfc_ir::{Rat, Value, ValueSet};
use num_traits::{One, Signed, Zero};

/// A linear combination of atoms (keyed by their printed text) plus a constant.
#[derive(Clone, Debug, Default)]
struct Lin {
    terms: BTreeMap<String, (Expr, Rat)>,
    c: Rat,
}

impl Lin {
    fn constant(c: Rat) -> Lin {
        Lin { terms: BTreeMap::new(), c }
    }
    fn atom(e: Expr) -> Lin {
        let mut terms = BTreeMap::new();
        terms.insert(tfc_ir::printer::expr(&e), (e, Rat::one()));
        Lin { terms, c: Rat::zero() }
    }
    fn is_const(&self) -> bool {
        self.terms.is_empty()
    }
    fn add(mut self, other: Lin, sign: &Rat) -> Lin {
        self.c += &other.c * sign;
        for (k, (e, r)) in other.terms {
            let entry = self.terms.entry(k).or_insert((e, Rat::zero()));
            entry.1 += r * sign;
        }
        self.terms.retain(|_, (_, r)| !r.is_zero());
        self
    }
    fn scale(mut self, k: &Rat) -> Lin {
        self.c *= k;
        for (_, r) in self.terms.values_mut() {
            *r *= k;
        }
        self.terms.retain(|_, (_, r)| !r.is_zero());
        self
    }
    fn to_expr(&self) -> Expr {
        let mut out: Option<Expr> = None;
        let lit = |r: Rat| Expr::new(ExprKind::Lit(Value::Num(r)));
        for (e, r) in self.terms.values() {
            let mag = r.abs();
            let term = if mag.is_one() { e.clone() } else { Expr::new(ExprKind::Binary(BinOp::Mul, Box::new(lit(mag)), Box::new(e.clone()))) };
            out = Some(match out {
                None if r.is_negative() => Expr::new(ExprKind::Unary(UnOp::Neg, Box::new(term))),
                None => term,
                Some(acc) => {
                    let op = if r.is_negative() { BinOp::Sub } else { BinOp::Add };
                    Expr::new(ExprKind::Binary(op, Box::new(acc), Box::new(term)))
                }
            });
        }
        match out {
            None => lit(self.c.clone()),
            Some(acc) if self.c.is_zero() => acc,
            Some(acc) => {
                let op = if self.c.is_negative() { BinOp::Sub } else { BinOp::Add };
                Expr::new(ExprKind::Binary(op, Box::new(acc), Box::new(lit(self.c.abs()))))
            }
        }
    }
}

fn lin(e: &Expr) -> Lin {
    match &e.kind {
        ExprKind::Lit(Value::Num(r)) => Lin::constant(r.clone()),
        ExprKind::Unary(UnOp::Neg, a) => lin(a).scale(&-Rat::one()),
        ExprKind::Binary(BinOp::Add, a, b) => lin(a).add(lin(b), &Rat::one()),
        ExprKind::Binary(BinOp::Sub, a, b) => lin(a).add(lin(b), &-Rat::one()),
        ExprKind::Binary(BinOp::Mul, a, b) => {
            let (la, lb) = (lin(a), lin(b));
            if la.is_const() {
                lb.scale(&la.c)
            } else if lb.is_const() {
                la.scale(&lb.c)
            } else {
                Lin::atom(Expr::new(ExprKind::Binary(BinOp::Mul, Box::new(la.to_expr()), Box::new(lb.to_expr()))))
            }
        }
        ExprKind::Binary(BinOp::Div, a, b) => {
            let (la, lb) = (lin(a), lin(b));
            if lb.is_const() && !lb.c.is_zero() {
                la.scale(&(Rat::one() / &lb.c))
            } else {
                Lin::atom(Expr::new(ExprKind::Binary(BinOp::Div, Box::new(la.to_expr()), Box::new(lb.to_expr()))))
            }
        }
        _ => Lin::atom(inner(e)),
    }
}

/// Normalises the children of a non-linear node.
fn inner(e: &Expr) -> Expr {
    let kind = match &e.kind {
        ExprKind::Lit(_) | ExprKind::Var(_) => return e.clone(),
        ExprKind::Unary(op, a) => ExprKind::Unary(*op, Box::new(normalise(a))),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(*op, Box::new(normalise(a)), Box::new(normalise(b))),
        ExprKind::Call(f, args) => ExprKind::Call(*f, args.iter().map(normalise).collect()),
    };
    Expr::new(kind)
}

/// The linear normal form of a body.
pub fn normalise(e: &Expr) -> Expr {
    lin(e).to_expr()
}

/// Whether `e` reads `v`.
pub fn reads(e: &Expr, v: Var) -> bool {
    let mut found = false;
    tfc_ir::check::walk(e, &mut |n| found |= n.kind == ExprKind::Var(v));
    found
}

/// `e` with every `from` replaced by `to`.
pub fn subst(e: &Expr, from: Var, to: &Expr) -> Expr {
    let kind = match &e.kind {
        ExprKind::Var(v) if *v == from => return to.clone(),
        ExprKind::Lit(_) | ExprKind::Var(_) => return e.clone(),
        ExprKind::Unary(op, a) => ExprKind::Unary(*op, Box::new(subst(a, from, to))),
        ExprKind::Binary(op, a, b) => ExprKind::Binary(*op, Box::new(subst(a, from, to)), Box::new(subst(b, from, to))),
        ExprKind::Call(f, args) => ExprKind::Call(*f, args.iter().map(|a| subst(a, from, to)).collect()),
    };
    Expr::new(kind)
}

/// The most nodes a composed body may have.
pub const MAX_BODY: usize = 64;

/// The most rows a composed table may have.
pub const MAX_TABLE: usize = 4096;

/// `outer ∘ inner` as a function of `inner`'s arguments, whose sets are
/// `sets` (one for a map, two for a seqmap); `None` if some value fails
/// or a table would be too large.
pub fn compose(outer: &Func, inner: &Func, sets: &[&ValueSet]) -> Option<Func> {
    if let (Func::Expr(o), Func::Expr(i)) = (outer, inner) {
        let e = subst(o, Var::X, i);
        // Substitution can grow a body; past a bound, do not compose (a
        // cycle in the e-graph would otherwise grow bodies forever).
        let mut size = 0usize;
        tfc_ir::check::walk(&e, &mut |_| size += 1);
        return (size <= MAX_BODY).then_some(Func::Expr(e));
    }
    tabulate(sets, |args| eval::apply(outer, &[eval::apply(inner, args).ok()?]).ok())
}

/// A table of `f` over the product of `sets`.
pub fn tabulate(sets: &[&ValueSet], f: impl Fn(&[Value]) -> Option<Value>) -> Option<Func> {
    let size = sets.iter().try_fold(1usize, |acc, s| acc.checked_mul(s.len()))?;
    if size > MAX_TABLE {
        return None;
    }
    let mut rows = Vec::with_capacity(size);
    match sets {
        [a] => {
            for v in a.iter() {
                rows.push((vec![v.clone()], f(std::slice::from_ref(v))?));
            }
        }
        [a, b] => {
            for u in a.iter() {
                for v in b.iter() {
                    let args = vec![u.clone(), v.clone()];
                    let out = f(&args)?;
                    rows.push((args, out));
                }
            }
        }
        _ => return None,
    }
    Some(Func::Table(rows))
}

/// A seqmap's function with its argument `fixed` (0 = x, 1 = y) set to `c`,
/// as a map function of the other argument; `other` is that argument's set.
pub fn fix_arg(f: &Func, fixed: usize, c: &Value, other: &ValueSet) -> Option<Func> {
    match f {
        Func::Expr(e) => {
            let lit = Expr::new(ExprKind::Lit(c.clone()));
            Some(Func::Expr(if fixed == 0 {
                subst(&subst(e, Var::X, &lit), Var::Y, &Expr::new(ExprKind::Var(Var::X)))
            } else {
                subst(e, Var::Y, &lit)
            }))
        }
        Func::Table(_) => tabulate(&[other], |a| {
            let args = if fixed == 0 { vec![c.clone(), a[0].clone()] } else { vec![a[0].clone(), c.clone()] };
            eval::apply(f, &args).ok()
        }),
    }
}

/// A seqmap function that does not read `y` (or `x`) as a map function of
/// the argument it reads.
pub fn drop_arg(f: &Func, dropped: usize) -> Option<Func> {
    let Func::Expr(e) = f else { return None };
    let x = Expr::new(ExprKind::Var(Var::X));
    match dropped {
        1 if !reads(e, Var::Y) => Some(Func::Expr(e.clone())),
        0 if !reads(e, Var::X) => Some(Func::Expr(subst(e, Var::Y, &x))),
        _ => None,
    }
}

/// Whether the body is the constant `c` (a literal).
pub fn as_literal(f: &Func) -> Option<&Value> {
    match f {
        Func::Expr(Expr { kind: ExprKind::Lit(v), .. }) => Some(v),
        _ => None,
    }
}

/// Whether the body is `x`.
pub fn is_identity(f: &Func) -> bool {
    matches!(f, Func::Expr(Expr { kind: ExprKind::Var(Var::X), .. }))
}

/// `{ x + y }`.
pub fn sum_xy() -> Func {
    let v = |v| Box::new(Expr::new(ExprKind::Var(v)));
    Func::Expr(Expr::new(ExprKind::Binary(BinOp::Add, v(Var::X), v(Var::Y))))
}

/// The image of `f` over the product of `sets` (one or two), or `None`
/// when a value fails or the product is over the checker's limit.
pub fn image(f: &Func, sets: &[&ValueSet]) -> Option<ValueSet> {
    match sets {
        [a] => a.iter().map(|v| eval::apply(f, std::slice::from_ref(v)).ok()).collect(),
        [a, b] => {
            if a.len().checked_mul(b.len())? > tfc_ir::check::MAX_PRODUCT {
                return None;
            }
            let mut out = ValueSet::new();
            for u in a.iter() {
                for v in b.iter() {
                    out.insert(eval::apply(f, &[u.clone(), v.clone()]).ok()?);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// The most (key, query) combinations [`lex_split`] enumerates.
pub const MAX_SPLIT: usize = 2_000_000;

/// A predicate over `set × set` as a named comparison when one agrees with
/// `table` on every pair, else as a table of the selected pairs.
pub fn as_pred(set: &ValueSet, table: &dyn Fn(&Value, &Value) -> bool) -> Pred {
    for c in CmpPred::ALL {
        let agrees = set.iter().all(|k| set.iter().all(|q| eval::cmp_holds(c, k, q).ok() == Some(table(k, q))));
        if agrees {
            return Pred::Cmp(c);
        }
    }
    let mut rows = vec![];
    for k in set {
        for q in set {
            if table(k, q) {
                rows.push((k.clone(), q.clone()));
            }
        }
    }
    Pred::Table(rows)
}

/// Splits a comparison of composite keys: for `p` over keys `f(x, y)` with
/// `x ∈ xs`, `y ∈ ys`, finds `p1` over `xs` and `p2` over `ys` with, for
/// every `x, x' ∈ xs` and `y, y' ∈ ys`,
///
/// ```text
/// p(f(x, y), f(x', y')) == p1(x, x') || (x == x' && p2(y, y'))   and   !p1(x, x)
/// ```
///
/// (`f` is *lexicographic* for `p`: Tracr's `key + i / n` made-distinct
/// sort keys are). Then a query selects a key under `p` exactly when it
/// does under `select x, x, p1` or under `and(select x, x, eq; select y, y,
/// p2)`, never under both, so the width is the sum of the two widths
/// (`proofs/rules/width-lex-split.smt2`). Checked by enumeration over the
/// sets; `None` when it does not hold, a value fails, or there are more
/// than [`MAX_SPLIT`] combinations.
pub fn lex_split(f: &Func, p: &Pred, xs: &ValueSet, ys: &ValueSet) -> Option<(Pred, Pred)> {
    let (nx, ny) = (xs.len(), ys.len());
    // An order comparison of numbers is settled for x != x' by the ranges
    // of f(x, _) and f(x', _) (below), in nx^2 steps; anything else needs
    // every combination.
    let ordered = matches!(p, Pred::Cmp(CmpPred::Lt | CmpPred::Le | CmpPred::Gt | CmpPred::Ge));
    let work = if ordered { nx.checked_mul(ny)?.checked_mul(ny)?.max(nx * nx) } else { (nx * ny).checked_mul(nx * ny)? };
    if nx < 2 || ny < 2 || work > MAX_SPLIT {
        return None;
    }
    let xv: Vec<&Value> = xs.iter().collect();
    let yv: Vec<&Value> = ys.iter().collect();
    // f over the product, then p over pairs of its values.
    let mut key = vec![vec![Value::int(0); ny]; nx];
    for (i, x) in xv.iter().enumerate() {
        for (j, y) in yv.iter().enumerate() {
            key[i][j] = eval::apply(f, &[(*x).clone(), (*y).clone()]).ok()?;
        }
    }
    let holds = |i: usize, j: usize, i2: usize, j2: usize| eval::holds(p, &key[i][j], &key[i2][j2]).ok();
    // p2(y, y') = p(f(x, y), f(x, y')), the same for every x.
    let mut p2 = vec![vec![false; ny]; ny];
    for j in 0..ny {
        for j2 in 0..ny {
            let b = holds(0, j, 0, j2)?;
            for i in 1..nx {
                if holds(i, j, i, j2)? != b {
                    return None;
                }
            }
            p2[j][j2] = b;
        }
    }
    // p1(x, x') for x != x' = p(f(x, y), f(x', y')), the same for every y, y'; p1(x, x) = false.
    let mut p1 = vec![vec![false; nx]; nx];
    let nums: Option<Vec<Vec<Rat>>> = key.iter().map(|row| row.iter().map(|v| v.as_num().cloned()).collect()).collect();
    match (ordered, nums) {
        (true, Some(nums)) => {
            // lo[i] <= f(x_i, y) <= hi[i] for every y, both attained.
            let lo: Vec<&Rat> = nums.iter().map(|r| r.iter().min().expect("ny >= 2")).collect();
            let hi: Vec<&Rat> = nums.iter().map(|r| r.iter().max().expect("ny >= 2")).collect();
            for i in 0..nx {
                for i2 in (0..nx).filter(|&i2| i2 != i) {
                    // Whether `f(x_i, y) P f(x_i2, y')` holds for every y, y', and whether for none.
                    let (all, none) = match p {
                        Pred::Cmp(CmpPred::Lt) => (hi[i] < lo[i2], lo[i] >= hi[i2]),
                        Pred::Cmp(CmpPred::Le) => (hi[i] <= lo[i2], lo[i] > hi[i2]),
                        Pred::Cmp(CmpPred::Gt) => (lo[i] > hi[i2], hi[i] <= lo[i2]),
                        _ => (lo[i] >= hi[i2], hi[i] < lo[i2]),
                    };
                    match (all, none) {
                        (true, _) => p1[i][i2] = true,
                        (false, true) => {}
                        (false, false) => return None,
                    }
                }
            }
        }
        _ => {
            if (nx * ny).checked_mul(nx * ny)? > MAX_SPLIT {
                return None;
            }
            for i in 0..nx {
                for i2 in (0..nx).filter(|&i2| i2 != i) {
                    let b = holds(i, 0, i2, 0)?;
                    for j in 0..ny {
                        for j2 in 0..ny {
                            if holds(i, j, i2, j2)? != b {
                                return None;
                            }
                        }
                    }
                    p1[i][i2] = b;
                }
            }
        }
    }
    let xi = |v: &Value| xv.iter().position(|w| *w == v);
    let yi = |v: &Value| yv.iter().position(|w| *w == v);
    let t1 = |k: &Value, q: &Value| matches!((xi(k), xi(q)), (Some(a), Some(b)) if p1[a][b]);
    let t2 = |k: &Value, q: &Value| matches!((yi(k), yi(q)), (Some(a), Some(b)) if p2[a][b]);
    Some((as_pred(xs, &t1), as_pred(ys, &t2)))
}

/// `f` post-composed with a projection onto `set` that is the identity on
/// `set`: `min(max(f, lo), hi)` (only the bounds `f` can pass) when `set`
/// is every integer from `lo` to `hi`, else a table over the operands'
/// sets `sets` sending a result outside `set` to `set`'s least value.
/// Where `f`'s result is in `set`, the new body equals it
/// (`proofs/rules/narrow-to-set.smt2`). `None` when `f` cannot leave
/// `set` on `sets` (nothing to narrow), or a value fails.
pub fn narrow(f: &Func, sets: &[&ValueSet], set: &ValueSet, image: &ValueSet) -> Option<Func> {
    if image.is_subset(set) || set.is_empty() {
        return None;
    }
    let ints: Option<Vec<i64>> = set.iter().map(|v| v.as_num().filter(|r| r.is_integer()).and_then(|r| num_traits::ToPrimitive::to_i64(r.numer()))).collect();
    if let (Func::Expr(e), Some(ints)) = (f, ints) {
        let (lo, hi) = (*ints.iter().min()?, *ints.iter().max()?);
        if (hi - lo + 1) as usize == ints.len() {
            let nums: Option<Vec<Rat>> = image.iter().map(|v| v.as_num().cloned()).collect();
            let nums = nums?;
            let lit = |c: i64| Expr::new(ExprKind::Lit(Value::int(c)));
            let mut body = e.clone();
            if nums.iter().any(|r| *r < Rat::from_integer(lo.into())) {
                body = Expr::new(ExprKind::Call(Builtin::Max, vec![body, lit(lo)]));
            }
            if nums.iter().any(|r| *r > Rat::from_integer(hi.into())) {
                body = Expr::new(ExprKind::Call(Builtin::Min, vec![body, lit(hi)]));
            }
            return Some(Func::Expr(body));
        }
    }
    let least = set.iter().next()?.clone();
    tabulate(sets, |args| {
        let v = eval::apply(f, args).ok()?;
        Some(if set.contains(&v) { v } else { least.clone() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    fn body(src: &str) -> Expr {
        let p = tfc_ir::parse(&format!("program p {{ vocab {{1}} max_len 1 %t = tokens : num %s = seqmap %t, %t {{ {src} }} : num output %s }}")).unwrap();
        match &p.body[1] {
            tfc_ir::Stmt::Let(l) => match &l.op {
                tfc_ir::Op::SeqMap { func: Func::Expr(e), .. } => e.clone(),
                _ => unreachable!(),
            },
            _ => unreachable!(),
        }
    }
    #[test]
    fn optimize_linear_normal_form() {
        let n = |s: &str| tfc_ir::printer::expr(&normalise(&body(s)));
        assert_eq!(n("x + (y + (-x))"), "y");
        assert_eq!(n("x * 0"), "0");
        assert_eq!(n("2 * (x + 1) - 2"), "2 * x");
        assert_eq!(n("min(x + 0, y) - 3"), "min(x, y) - 3");
        assert_eq!(n("x / 2 + x / 2"), "x");
    }
}
