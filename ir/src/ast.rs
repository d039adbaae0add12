//! The program IR's syntax tree.
//!
//! A [`Program`] is a header (vocabulary, `max_len`, attention mode, input
//! precondition) and a flat list of SSA [`Stmt`]s over sequence-valued
//! values, ending in an `output`. A `loop` statement holds its own body.
//!
//! Every node carries a [`Span`] into the source for diagnostics. Spans
//! compare equal to each other, so two trees compare equal when they mean
//! the same program wherever they came from (the parse → print → parse
//! round trip relies on this).

use crate::value::Value;
use std::fmt;

/// A byte range in the source text.
///
/// `PartialEq` is deliberately trivial: spans are provenance, not meaning.
#[derive(Clone, Copy, Debug, Default, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, _other: &Span) -> bool {
        true
    }
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A name as written, without its `%` sigil, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// The identifier after `%`.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

impl Name {
    /// A name with a default span (for programs built in code).
    pub fn new(text: impl Into<String>) -> Name {
        Name { text: text.into(), span: Span::default() }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.text)
    }
}

/// How a value lives in the residual stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// One-hot over the value set: one dimension per value.
    Cat,
    /// One dimension holding the number itself.
    Num,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Cat => "cat",
            Encoding::Num => "num",
        })
    }
}

/// A whole program.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The name after `program`.
    pub name: String,
    /// The token vocabulary, in declaration order (no duplicates).
    pub vocab: Vec<Value>,
    /// The longest input, not counting BOS.
    pub max_len: usize,
    /// Whether query position i sees only keys j <= i.
    pub causal: bool,
    /// Precondition on inputs: tokens pairwise distinct.
    pub distinct: bool,
    /// The instructions, in order.
    pub body: Vec<Stmt>,
    /// The value printed by `tfc run`.
    pub output: Name,
    /// Where the whole program was written.
    pub span: Span,
}

/// One statement of a program or loop body.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `%name = op [: enc]`.
    Let(Let),
    /// `loop { ... }`.
    Loop(Loop),
}

/// `%name = op [: enc]`: defines one value or selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    /// The defined name.
    pub name: Name,
    /// The instruction.
    pub op: Op,
    /// The declared encoding; `None` for selectors, and where the default
    /// applies (see [`Op::default_encoding`]).
    pub enc: Option<Encoding>,
    /// The whole statement.
    pub span: Span,
}

/// An instruction.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The input tokens.
    Tokens,
    /// 0, 1, 2, ... (BOS not counted).
    Indices,
    /// The number of tokens, at every position.
    Length,
    /// The same value at every position.
    Const(Value),
    /// Elementwise function of one value.
    Map {
        /// The argument.
        arg: Name,
        /// The function, over `x`.
        func: Func,
    },
    /// Elementwise function of two values.
    SeqMap {
        /// First argument (`x`).
        lhs: Name,
        /// Second argument (`y`).
        rhs: Name,
        /// The function, over `x` and `y`.
        func: Func,
    },
    /// A selector: query i selects key j where `pred(keys[j], queries[i])`.
    Select {
        /// Key values.
        keys: Name,
        /// Query values.
        queries: Name,
        /// The predicate.
        pred: Pred,
    },
    /// Both selectors.
    And(Name, Name),
    /// Either selector.
    Or(Name, Name),
    /// The complement of a selector.
    Not(Name),
    /// Mean of `values` over the selected keys; `default` where none is.
    Aggregate {
        /// The selector.
        sel: Name,
        /// The aggregated value.
        values: Name,
        /// The value where no key is selected.
        default: Option<Value>,
    },
    /// The number of selected keys.
    Width(Name),
}

impl Op {
    /// The encoding a value gets when its statement declares none; `None`
    /// when the statement must declare one, or defines a selector.
    pub fn default_encoding(&self) -> Option<Encoding> {
        match self {
            Op::Tokens | Op::Indices | Op::Length | Op::Width(_) => Some(Encoding::Cat),
            _ => None,
        }
    }
    /// Whether this instruction defines a selector rather than a value.
    pub fn is_selector(&self) -> bool {
        matches!(self, Op::Select { .. } | Op::And(..) | Op::Or(..) | Op::Not(_))
    }
    /// The names this instruction reads, in order.
    pub fn operands(&self) -> Vec<&Name> {
        match self {
            Op::Tokens | Op::Indices | Op::Length | Op::Const(_) => vec![],
            Op::Map { arg, .. } => vec![arg],
            Op::SeqMap { lhs, rhs, .. } => vec![lhs, rhs],
            Op::Select { keys, queries, .. } => vec![keys, queries],
            Op::And(a, b) | Op::Or(a, b) => vec![a, b],
            Op::Not(a) | Op::Width(a) => vec![a],
            Op::Aggregate { sel, values, .. } => vec![sel, values],
        }
    }
    /// The instruction's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Tokens => "tokens",
            Op::Indices => "indices",
            Op::Length => "length",
            Op::Const(_) => "const",
            Op::Map { .. } => "map",
            Op::SeqMap { .. } => "seqmap",
            Op::Select { .. } => "select",
            Op::And(..) => "and",
            Op::Or(..) => "or",
            Op::Not(_) => "not",
            Op::Aggregate { .. } => "aggregate",
            Op::Width(_) => "width",
        }
    }
}

/// A `map` / `seqmap` function.
#[derive(Clone, Debug, PartialEq)]
pub enum Func {
    /// `{ expr }` over `x` (and `y` for `seqmap`).
    Expr(Expr),
    /// `table { in -> out, ... }`; for `seqmap` each key is `(x, y)`.
    /// Must cover the inputs' value sets.
    Table(Vec<(Vec<Value>, Value)>),
}

/// A selector predicate over (key, query).
#[derive(Clone, Debug, PartialEq)]
pub enum Pred {
    /// A named comparison `key OP query`.
    Cmp(CmpPred),
    /// `{ expr }` over `k` and `q`; true where nonzero.
    Expr(Expr),
    /// `table { (k, q), ... }`: exactly the pairs that are selected.
    Table(Vec<(Value, Value)>),
}

/// The named selector predicates; each reads `key OP query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpPred {
    /// key == query
    Eq,
    /// key < query
    Lt,
    /// key <= query
    Le,
    /// key > query
    Gt,
    /// key >= query
    Ge,
    /// key != query
    Ne,
    /// always
    True,
    /// never
    False,
}

impl CmpPred {
    /// All predicates, in keyword order.
    pub const ALL: [CmpPred; 8] = [
        CmpPred::Eq,
        CmpPred::Lt,
        CmpPred::Le,
        CmpPred::Gt,
        CmpPred::Ge,
        CmpPred::Ne,
        CmpPred::True,
        CmpPred::False,
    ];
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            CmpPred::Eq => "eq",
            CmpPred::Lt => "lt",
            CmpPred::Le => "le",
            CmpPred::Gt => "gt",
            CmpPred::Ge => "ge",
            CmpPred::Ne => "ne",
            CmpPred::True => "true",
            CmpPred::False => "false",
        }
    }
    /// The predicate with this keyword.
    pub fn from_keyword(word: &str) -> Option<CmpPred> {
        CmpPred::ALL.into_iter().find(|p| p.keyword() == word)
    }
}

/// A loop: a declared state, a body, and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    /// The state variables; inside the body they name the current state,
    /// after the loop the final one.
    pub state: Vec<StateVar>,
    /// How many times the body runs.
    pub stop: Stop,
    /// The body's instructions.
    pub body: Vec<Stmt>,
    /// `next %s = %v`: the next value of each state variable.
    pub next: Vec<(Name, Name)>,
    /// The whole loop.
    pub span: Span,
}

/// `state %s : enc in { ... } = init`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateVar {
    /// The name.
    pub name: Name,
    /// Its encoding.
    pub enc: Encoding,
    /// Its declared value set, closed under the body.
    pub values: Vec<Value>,
    /// The value before the first iteration.
    pub init: Init,
    /// The declaration.
    pub span: Span,
}

/// A state variable's initial value.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// A value defined before the loop.
    Value(Name),
    /// A constant at every position.
    Const(Value),
}

/// When a loop stops.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// `iterations N`: exactly N runs of the body.
    Fixed(usize),
    /// `until %h max N`: before each run, stop when the state variable `h`
    /// is 1 at every position; more than N runs is a runtime error.
    Until {
        /// The halting state variable (value set within {0, 1}).
        halt: Name,
        /// The most runs allowed.
        max: usize,
    },
}

/// The expression language of `map`, `seqmap` and `select`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Expression forms. Comparisons and boolean operators give 1 or 0.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal number or quoted symbol.
    Lit(Value),
    /// `x`, `y` (maps) or `k`, `q` (selectors).
    Var(Var),
    /// Unary `-e` or `!e`.
    Unary(UnOp, Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(args)`: `min max abs div mod if`.
    Call(Builtin, Vec<Expr>),
}

/// Expression variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Var {
    /// `map`'s argument, `seqmap`'s first.
    X,
    /// `seqmap`'s second argument.
    Y,
    /// A selector's key.
    K,
    /// A selector's query.
    Q,
}

impl Var {
    /// The variable's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Var::X => "x",
            Var::Y => "y",
            Var::K => "k",
            Var::Q => "q",
        }
    }
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// `-e`
    Neg,
    /// `!e`: 1 where e is 0, else 0.
    Not,
}

/// Binary operators, loosest first: `||`, `&&`, comparisons, `+ -`, `* /`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (exact rational division)
    Div,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
    /// Binding strength: higher binds tighter. Comparisons do not chain.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div => 5,
        }
    }
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
    /// `abs(a)`
    Abs,
    /// `div(a, b)`: floor division of integers.
    IDiv,
    /// `mod(a, b)`: a - b * div(a, b), integers.
    Mod,
    /// `if(c, a, b)`: a where c is nonzero, else b.
    If,
}

impl Builtin {
    /// All builtins.
    pub const ALL: [Builtin; 6] =
        [Builtin::Min, Builtin::Max, Builtin::Abs, Builtin::IDiv, Builtin::Mod, Builtin::If];
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Min => "min",
            Builtin::Max => "max",
            Builtin::Abs => "abs",
            Builtin::IDiv => "div",
            Builtin::Mod => "mod",
            Builtin::If => "if",
        }
    }
    /// How many arguments it takes.
    pub fn arity(self) -> usize {
        match self {
            Builtin::Abs => 1,
            Builtin::If => 3,
            _ => 2,
        }
    }
    /// The builtin with this name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl Expr {
    /// An expression with a default span.
    pub fn new(kind: ExprKind) -> Expr {
        Expr { kind, span: Span::default() }
    }
}
