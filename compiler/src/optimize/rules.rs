//! The rewrite rules, as one reviewed table (STYLE.md item 9; the rulebook
//! is `compiler/src/rules/README.md`'s content, kept in docs/OPTIMIZER.md).
//!
//! Every rule is *directional* and must not make the cost worse; none is a
//! blanket commutativity or associativity rule (linear arithmetic is
//! normalised inside a body by [`super::simplify`], not by AC rules in the
//! e-graph). Each rule's soundness obligation is
//! `proofs/rules/<name>.smt2` (`; expected: unsat`), checked by z3 and cvc5;
//! a test fails if a rule has none.
//!
//! Rules are custom searcher/applier pairs rather than egg patterns, because
//! their right-hand sides are computed (composed function bodies, value-set
//! side conditions). The applier still calls `union_instantiations` with the
//! matched node and the built term, so egg's explanations name the rule.

use super::simplify;
use super::{Head, Ir, IrGraph, OpK};
use egg::{ENodeOrVar, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use std::borrow::Cow;
use tfc_ir::ast::{CmpPred, Encoding, Func, Pred};

/// A term a rule builds: new nodes over existing e-classes.
#[derive(Clone, Debug)]
pub enum Term {
    /// An existing e-class.
    Class(Id),
    /// A new node.
    Node(Head, Vec<Term>),
}

type Apply = fn(&mut IrGraph, Id, Head, &[Id]) -> Vec<Term>;

/// One rule of the table.
pub struct Rule {
    /// Stable kebab-case name; also the proof file's stem.
    pub name: &'static str,
    /// The left-hand side, for people.
    pub lhs: &'static str,
    /// The right-hand side, for people.
    pub rhs: &'static str,
    /// The side condition.
    pub side: &'static str,
    /// The instructions it matches.
    pub ops: &'static [OpK],
    /// Builds the right-hand sides for one matched node.
    pub apply: Apply,
}

macro_rules! table {
    ($( $name:literal : $lhs:literal => $rhs:literal , if $side:literal , on $ops:expr , $f:path ; )*) => {
        &[ $( Rule { name: $name, lhs: $lhs, rhs: $rhs, side: $side, ops: $ops, apply: $f }, )* ]
    };
}

use OpK::*;

/// The rules. Comments state the identity each rule's proof obligation proves.
#[rustfmt::skip]
pub const RULES: &[Rule] = table! {
    // f(g(x)) == (f . g)(x)
    "map-fuse"           : "map f (map g a)"          => "map (f . g) a",         if "always",                    on &[Map],    map_fuse;
    // f(g(x, y)) == (f . g)(x, y)
    "map-after-seqmap"   : "map f (seqmap g a b)"     => "seqmap (f . g) a b",    if "a or b is cat",             on &[Map],    map_after_seqmap;
    // a == c everywhere  ->  g(a, b) == g(c, b)
    "seqmap-const-left"  : "seqmap g a b"             => "map g(c, _) b",         if "set(a) = {c}",              on &[SeqMap], seqmap_const_left;
    // b == c everywhere  ->  g(a, b) == g(a, c)
    "seqmap-const-right" : "seqmap g a b"             => "map g(_, c) a",         if "set(b) = {c}",              on &[SeqMap], seqmap_const_right;
    // g(x, y) == h(x) when the body of g does not read y
    "seqmap-drop-right"  : "seqmap g a b"             => "map g a",               if "g does not read y",         on &[SeqMap], seqmap_drop_right;
    // g(x, y) == h(y) when the body of g does not read x
    "seqmap-drop-left"   : "seqmap g a b"             => "map g[y:=x] b",         if "g does not read x",         on &[SeqMap], seqmap_drop_left;
    // e == lin(e): the field identities of + - * / by constants
    "linear-normalise"   : "map/seqmap e ..."         => "map/seqmap lin(e) ...", if "lin(e) differs from e",     on &[Map, SeqMap], linear_normalise;
    // (x => x)(a) == a
    "map-identity"       : "map { x } a"              => "a",                     if "same encoding",             on &[Map],    map_identity;
    // v in {c}  ->  v == c
    "singleton-const"    : "v"                        => "const c",               if "set(v) = {c}",              on &[Map, SeqMap, Aggregate, Width, Length, Tokens, Indices], singleton_const;
    // (forall k in K, q in Q: p(k, q))  ->  s(k, q) == true
    "selector-all-true"  : "s"                        => "select tok, tok, true", if "s true on K x Q",           on &[Select, And, Or, Not], selector_all_true;
    // (forall k in K, q in Q: !p(k, q))  ->  s(k, q) == false
    "selector-all-false" : "s"                        => "select tok, tok, false",if "s false on K x Q",          on &[Select, And, Or, Not], selector_all_false;
    // |{j visible : true}| == length
    "width-true-length"  : "width s"                  => "length",                if "s true on K x Q",           on &[Width],  width_true_length;
    // s && true == s
    "and-true"           : "and s t"                  => "s",                     if "t true on K x Q (or s)",    on &[And],    and_true;
    // s || false == s
    "or-false"           : "or s t"                   => "s",                     if "t false on K x Q (or s)",   on &[Or],     or_false;
    // !!s == s
    "not-not"            : "not (not s)"              => "s",                     if "always",                    on &[Not],    not_not;
    // [p(f(x,y), f(x',y'))] == [p1(x,x')] + [x == x' && p2(y,y')], summed over the visible keys
    "width-lex-split"    : "width (select k k p), k = seqmap f a b" => "seqmap {x + y} (width (select a a p1)) (width (and (select a a eq) (select b b p2)))", if "p(f(x,y),f(x',y')) == p1(x,x') || (x == x' && p2(y,y')), p1 irreflexive, on set(a)^2 x set(b)^2", on &[Width], width_lex_split;
    // v in S  ->  clamp_S(v) == v
    "narrow-to-set"      : "map/seqmap f ... in class C" => "map/seqmap clamp_S(f) ...", if "S = set(C) is narrower than f's image", on &[Map, SeqMap], narrow_to_set;
};

fn set(eg: &IrGraph, id: Id) -> Option<std::rc::Rc<tfc_ir::ValueSet>> {
    eg[id].data.set.clone()
}

fn nodes_of(eg: &IrGraph, id: Id, op: OpK) -> Vec<(Head, Vec<Id>)> {
    eg[id].nodes.iter().filter(|n| n.head().op == op).map(|n| (n.head(), n.args().to_vec())).collect()
}

fn node(op: OpK, enc: Option<Encoding>, arg: u32, kids: Vec<Term>) -> Term {
    Term::Node(Head { op, enc, arg }, kids)
}

fn map_fuse(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    let mut out = vec![];
    for (g, kids) in nodes_of(eg, a[0], Map) {
        // `map g c` inside class c itself (an identity found earlier): fusing would loop.
        if eg.find(kids[0]) == eg.find(a[0]) {
            continue;
        }
        let Some(s) = set(eg, kids[0]) else { continue };
        let (f, gf) = (eg.analysis.funcs[h.arg as usize].clone(), eg.analysis.funcs[g.arg as usize].clone());
        if let Some(fg) = simplify::compose(&f, &gf, &[&s]) {
            let i = eg.analysis.func(&fg);
            out.push(node(Map, h.enc, i, vec![Term::Class(kids[0])]));
        }
    }
    out
}

fn map_after_seqmap(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    let mut out = vec![];
    for (g, kids) in nodes_of(eg, a[0], SeqMap) {
        if kids.iter().any(|&k| eg.find(k) == eg.find(a[0])) {
            continue;
        }
        let (Some(s0), Some(s1)) = (set(eg, kids[0]), set(eg, kids[1])) else { continue };
        // One MLP computes a seqmap of two `num` inputs only when it is
        // affine (plan.rs); composing could leave that class, so only fuse
        // when an input is categorical (a table over its values).
        if eg[kids[0]].data.enc == Some(Encoding::Num) && eg[kids[1]].data.enc == Some(Encoding::Num) {
            continue;
        }
        let (f, gf) = (eg.analysis.funcs[h.arg as usize].clone(), eg.analysis.funcs[g.arg as usize].clone());
        if let Some(fg) = simplify::compose(&f, &gf, &[&s0, &s1]) {
            let i = eg.analysis.func(&fg);
            out.push(node(SeqMap, h.enc, i, vec![Term::Class(kids[0]), Term::Class(kids[1])]));
        }
    }
    out
}

fn seqmap_const(eg: &mut IrGraph, h: Head, a: &[Id], fixed: usize) -> Vec<Term> {
    let (Some(fs), Some(os)) = (set(eg, a[fixed]), set(eg, a[1 - fixed])) else { return vec![] };
    if fs.len() != 1 {
        return vec![];
    }
    let c = fs.iter().next().cloned().expect("one value");
    let f = eg.analysis.funcs[h.arg as usize].clone();
    match simplify::fix_arg(&f, fixed, &c, &os) {
        Some(g) => {
            let i = eg.analysis.func(&g);
            vec![node(Map, h.enc, i, vec![Term::Class(a[1 - fixed])])]
        }
        None => vec![],
    }
}

fn seqmap_const_left(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    seqmap_const(eg, h, a, 0)
}

fn seqmap_const_right(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    seqmap_const(eg, h, a, 1)
}

fn seqmap_drop(eg: &mut IrGraph, h: Head, a: &[Id], dropped: usize) -> Vec<Term> {
    let f = eg.analysis.funcs[h.arg as usize].clone();
    match simplify::drop_arg(&f, dropped) {
        Some(g) => {
            let i = eg.analysis.func(&g);
            vec![node(Map, h.enc, i, vec![Term::Class(a[1 - dropped])])]
        }
        None => vec![],
    }
}

fn seqmap_drop_right(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    seqmap_drop(eg, h, a, 1)
}

fn seqmap_drop_left(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    seqmap_drop(eg, h, a, 0)
}

fn linear_normalise(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    let Func::Expr(e) = eg.analysis.funcs[h.arg as usize].clone() else { return vec![] };
    let n = simplify::normalise(&e);
    if tfc_ir::printer::expr(&n) == tfc_ir::printer::expr(&e) {
        return vec![];
    }
    let i = eg.analysis.func(&Func::Expr(n));
    vec![node(h.op, h.enc, i, a.iter().map(|&c| Term::Class(c)).collect())]
}

fn map_identity(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    if simplify::is_identity(&eg.analysis.funcs[h.arg as usize]) && eg[a[0]].data.enc == h.enc {
        vec![Term::Class(a[0])]
    } else {
        vec![]
    }
}

fn singleton_const(eg: &mut IrGraph, class: Id, h: Head, _: &[Id]) -> Vec<Term> {
    let Some(s) = set(eg, class) else { return vec![] };
    if s.len() != 1 {
        return vec![];
    }
    let c = s.iter().next().cloned().expect("one value");
    if h.enc == Some(Encoding::Num) && !c.is_num() {
        return vec![];
    }
    let i = eg.analysis.val(&c);
    vec![node(Const, h.enc, i, vec![])]
}

fn constant_selector(eg: &mut IrGraph, class: Id, h: Head, a: &[Id], want: bool) -> Vec<Term> {
    if eg[class].data.constant != Some(want) {
        return vec![];
    }
    let p = eg.analysis.pred(&Pred::Cmp(if want { CmpPred::True } else { CmpPred::False }));
    // Already the canonical form: nothing to add.
    if h.op == Select && h.arg == p && a.iter().all(|&k| eg[k].nodes.iter().any(|n| n.head().op == Tokens && n.head().enc == Some(Encoding::Cat))) {
        return vec![];
    }
    let tok = || node(Tokens, Some(Encoding::Cat), 0, vec![]);
    vec![node(Select, None, p, vec![tok(), tok()])]
}

fn selector_all_true(eg: &mut IrGraph, class: Id, h: Head, a: &[Id]) -> Vec<Term> {
    constant_selector(eg, class, h, a, true)
}

fn selector_all_false(eg: &mut IrGraph, class: Id, h: Head, a: &[Id]) -> Vec<Term> {
    constant_selector(eg, class, h, a, false)
}

fn width_true_length(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    if eg[a[0]].data.constant == Some(true) {
        vec![node(Length, h.enc, 0, vec![])]
    } else {
        vec![]
    }
}

fn and_true(eg: &mut IrGraph, _: Id, _: Head, a: &[Id]) -> Vec<Term> {
    let mut out = vec![];
    if eg[a[1]].data.constant == Some(true) {
        out.push(Term::Class(a[0]));
    }
    if eg[a[0]].data.constant == Some(true) {
        out.push(Term::Class(a[1]));
    }
    out
}

fn or_false(eg: &mut IrGraph, _: Id, _: Head, a: &[Id]) -> Vec<Term> {
    let mut out = vec![];
    if eg[a[1]].data.constant == Some(false) {
        out.push(Term::Class(a[0]));
    }
    if eg[a[0]].data.constant == Some(false) {
        out.push(Term::Class(a[1]));
    }
    out
}

fn width_lex_split(eg: &mut IrGraph, _: Id, h: Head, a: &[Id]) -> Vec<Term> {
    let mut out = vec![];
    for (sh, skids) in nodes_of(eg, a[0], Select) {
        let key = eg.find(skids[0]);
        if key != eg.find(skids[1]) {
            continue;
        }
        let p = eg.analysis.preds[sh.arg as usize].clone();
        for (g, kids) in nodes_of(eg, key, SeqMap) {
            let (x, y) = (eg.find(kids[0]), eg.find(kids[1]));
            // The split compares x with x and y with y: both must be `cat`
            // (`select` reads only `cat` values), and distinct values.
            if x == y || x == key || y == key || eg[x].data.enc != Some(Encoding::Cat) || eg[y].data.enc != Some(Encoding::Cat) {
                continue;
            }
            let (Some(sx), Some(sy)) = (set(eg, x), set(eg, y)) else { continue };
            let f = eg.analysis.funcs[g.arg as usize].clone();
            let Some((p1, p2)) = simplify::lex_split(&f, &p, &sx, &sy) else { continue };
            let (i1, i2, ieq) = (eg.analysis.pred(&p1), eg.analysis.pred(&p2), eg.analysis.pred(&Pred::Cmp(CmpPred::Eq)));
            let add = eg.analysis.func(&simplify::sum_xy());
            let sel = |p: u32, c: Id| node(Select, None, p, vec![Term::Class(c), Term::Class(c)]);
            let w1 = node(Width, Some(Encoding::Cat), 0, vec![sel(i1, x)]);
            let w2 = node(Width, Some(Encoding::Cat), 0, vec![node(And, None, 0, vec![sel(ieq, x), sel(i2, y)])]);
            out.push(node(SeqMap, h.enc, add, vec![w1, w2]));
        }
    }
    out
}

fn narrow_to_set(eg: &mut IrGraph, class: Id, h: Head, a: &[Id]) -> Vec<Term> {
    // A class of one node has exactly that node's image as its set: only a
    // merge (which intersects sets) can make the class narrower.
    if eg[class].nodes.len() < 2 {
        return vec![];
    }
    let Some(target) = set(eg, class) else { return vec![] };
    let sets: Option<Vec<_>> = a.iter().map(|&k| set(eg, k)).collect();
    let Some(sets) = sets else { return vec![] };
    let f = eg.analysis.funcs[h.arg as usize].clone();
    let refs: Vec<&tfc_ir::ValueSet> = sets.iter().map(|s| s.as_ref()).collect();
    // The node's own image over its operands' sets (what the checker will give it).
    let Some(image) = simplify::image(&f, &refs) else { return vec![] };
    match simplify::narrow(&f, &refs, &target, &image) {
        Some(g) => {
            let i = eg.analysis.func(&g);
            vec![node(h.op, h.enc, i, a.iter().map(|&c| Term::Class(c)).collect())]
        }
        None => vec![],
    }
}

fn not_not(eg: &mut IrGraph, _: Id, _: Head, a: &[Id]) -> Vec<Term> {
    nodes_of(eg, a[0], Not).into_iter().map(|(_, kids)| Term::Class(kids[0])).collect()
}

/// Matches every node of the rule's instructions; the applier decides.
struct OpSearcher {
    ops: &'static [OpK],
}

fn var(i: usize) -> Var {
    format!("?c{i}").parse().expect("a pattern variable")
}

impl Searcher<Ir, super::IrAnalysis> for OpSearcher {
    fn search_eclass_with_limit(&self, egraph: &IrGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, Ir>> {
        self.search_eclass_all(egraph, eclass, limit).into_iter().next()
    }
    fn search(&self, egraph: &IrGraph) -> Vec<SearchMatches<'_, Ir>> {
        self.search_with_limit(egraph, usize::MAX)
    }
    fn search_with_limit(&self, egraph: &IrGraph, limit: usize) -> Vec<SearchMatches<'_, Ir>> {
        let mut out = vec![];
        for class in egraph.classes() {
            if out.len() >= limit {
                break;
            }
            out.extend(self.search_eclass_all(egraph, class.id, limit - out.len()));
        }
        out
    }
    fn vars(&self) -> Vec<Var> {
        vec![var(0), var(1)]
    }
}

impl OpSearcher {
    /// One match per matching node: its head with its operands as `?c0`, `?c1`.
    fn search_eclass_all(&self, egraph: &IrGraph, eclass: Id, limit: usize) -> Vec<SearchMatches<'static, Ir>> {
        let mut out = vec![];
        for n in egraph[eclass].nodes.iter().filter(|n| self.ops.contains(&n.head().op)).take(limit) {
            let mut ast: PatternAst<Ir> = PatternAst::default();
            let mut subst = Subst::with_capacity(2);
            let mut kids = vec![];
            for (i, &c) in n.args().iter().enumerate() {
                kids.push(ast.add(ENodeOrVar::Var(var(i))));
                subst.insert(var(i), egraph.find(c));
            }
            ast.add(ENodeOrVar::ENode(Ir::Node(n.head(), kids)));
            out.push(SearchMatches { eclass, substs: vec![subst], ast: Some(Cow::Owned(ast)) });
        }
        out
    }
}

/// Builds the rule's terms and unions each with the matched node.
struct RuleApplier {
    apply: Apply,
}

fn term_ast(t: &Term, ast: &mut PatternAst<Ir>, subst: &mut Subst, fresh: &mut usize) -> Id {
    match t {
        Term::Class(id) => {
            let v: Var = format!("?e{fresh}").parse().expect("a pattern variable");
            *fresh += 1;
            subst.insert(v, *id);
            ast.add(ENodeOrVar::Var(v))
        }
        Term::Node(h, kids) => {
            let k: Vec<Id> = kids.iter().map(|c| term_ast(c, ast, subst, fresh)).collect();
            ast.add(ENodeOrVar::ENode(Ir::Node(*h, k)))
        }
    }
}

impl egg::Applier<Ir, super::IrAnalysis> for RuleApplier {
    fn apply_matches(&self, egraph: &mut IrGraph, matches: &[SearchMatches<Ir>], rule_name: Symbol) -> Vec<Id> {
        let mut changed = vec![];
        for m in matches {
            let Some(from) = m.ast.as_ref() else { continue };
            let from: &PatternAst<Ir> = from.as_ref();
            let Some(ENodeOrVar::ENode(Ir::Node(head, _))) = from.as_ref().last() else { continue };
            let head = *head;
            for s in &m.substs {
                let kids: Vec<Id> = (0..2).filter_map(|i| s.get(var(i)).copied()).collect();
                let terms = (self.apply)(egraph, m.eclass, head, &kids);
                for t in terms {
                    let mut to: PatternAst<Ir> = PatternAst::default();
                    let mut subst = s.clone();
                    let mut fresh = 0;
                    term_ast(&t, &mut to, &mut subst, &mut fresh);
                    let (id, did) = egraph.union_instantiations(from, &to, &subst, rule_name);
                    if did {
                        changed.push(id);
                    }
                }
            }
        }
        changed
    }
    fn apply_one(&self, _: &mut IrGraph, _: Id, _: &Subst, _: Option<&PatternAst<Ir>>, _: Symbol) -> Vec<Id> {
        unreachable!("apply_matches is overridden")
    }
}

/// The rules as egg rewrites.
pub fn rewrites() -> Vec<Rewrite<Ir, super::IrAnalysis>> {
    RULES
        .iter()
        .map(|r| Rewrite::new(r.name, OpSearcher { ops: r.ops }, RuleApplier { apply: r.apply }).expect("a valid rule"))
        .collect()
}
