//! The parser: source text to [`Program`], keeping spans.
//!
//! Recursive descent over the grammar of `docs/IR.md`. It stops at the
//! first syntax error (later errors in a broken file are mostly noise) and
//! returns it as a [`Diagnostic`]; it never panics, whatever the bytes.
//! Nesting is bounded ([`MAX_DEPTH`]) so that deep input cannot overflow
//! the stack, neither here nor in whatever walks the tree later, and the
//! file size is bounded ([`MAX_SOURCE_BYTES`]).
//!
//! ```
//! let src = "program p { vocab {1, 2} max_len 3 %t = tokens output %t }";
//! let prog = tfc_ir::parse(src).unwrap();
//! assert_eq!(prog.name, "p");
//! // Printing and parsing again gives the same program.
//! assert_eq!(tfc_ir::parse(&tfc_ir::print(&prog)).unwrap(), prog);
//! ```

use crate::ast::*;
use crate::diag::{codes, Diagnostic};
use crate::lexer::{lex, Tok};
use crate::value::{parse_rat, Value};
use num_bigint::BigInt;

/// The largest source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// The deepest nesting of expressions accepted: both the depth of the
/// expression tree (`x + x + x` is three levels deep: two `+` nodes and a
/// leaf) and the nesting of parentheses, unary operators and calls as
/// written (`((x))` is two levels).
pub const MAX_DEPTH: usize = 64;
/// The largest `a..b` range accepted in a set, in elements; also the most
/// elements one written set may hold once its ranges are expanded.
pub const MAX_RANGE: usize = 100_000;

/// Parses a whole file given as bytes (checks UTF-8 and size first).
pub fn parse_bytes(bytes: &[u8]) -> Result<(String, Program), Diagnostic> {
    if bytes.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::error(
            codes::TOO_LARGE,
            Span::new(0, 0),
            format!("source is {} bytes, more than the limit of {MAX_SOURCE_BYTES}", bytes.len()),
        )
        .with_hint("tfc programs are small; split the file or check that it is the right one"));
    }
    let src = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => {
            let at = e.valid_up_to();
            return Err(Diagnostic::error(
                codes::NOT_UTF8,
                Span::new(at, at + 1),
                format!("source is not valid UTF-8 (bad byte at offset {at})"),
            )
            .with_hint("save the file as UTF-8"));
        }
    };
    let prog = parse(&src)?;
    Ok((src, prog))
}

/// Parses source text into a program.
pub fn parse(src: &str) -> Result<Program, Diagnostic> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(Diagnostic::error(
            codes::TOO_LARGE,
            Span::new(0, 0),
            format!("source is {} bytes, more than the limit of {MAX_SOURCE_BYTES}", src.len()),
        ));
    }
    let toks = lex(src)?;
    if toks.len() == 1 {
        return Err(Diagnostic::error(codes::EMPTY, Span::new(0, src.len()), "no program in this file")
            .with_hint("a file holds one `program NAME { ... }`"));
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let prog = p.program()?;
    if !matches!(p.peek(), Tok::Eof) {
        return Err(p.unexpected("end of file after the program"));
    }
    Ok(prog)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, Diagnostic>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn span(&self) -> Span {
        self.toks[self.pos].1
    }
    fn prev_span(&self) -> Span {
        self.toks[self.pos.saturating_sub(1)].1
    }
    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn unexpected(&self, wanted: &str) -> Diagnostic {
        Diagnostic::error(
            codes::UNEXPECTED,
            self.span(),
            format!("expected {wanted}, found {}", self.peek().describe()),
        )
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(x) if x == w)
    }
    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, p: &str) -> PResult<Span> {
        if self.is_punct(p) {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(&format!("`{p}`")))
        }
    }
    fn expect_word(&mut self, w: &str) -> PResult<Span> {
        if self.is_word(w) {
            Ok(self.bump().1)
        } else {
            Err(self.unexpected(&format!("`{w}`")))
        }
    }
    fn name(&mut self) -> PResult<Name> {
        match self.peek().clone() {
            Tok::Name(text) => {
                let span = self.bump().1;
                Ok(Name { text, span })
            }
            _ => Err(self.unexpected("a value name such as `%x`")),
        }
    }
    fn int(&mut self, what: &str) -> PResult<(usize, Span)> {
        match self.peek().clone() {
            Tok::Number(text) => {
                let span = self.span();
                match text.parse::<usize>() {
                    Ok(n) => {
                        self.bump();
                        Ok((n, span))
                    }
                    Err(_) => Err(Diagnostic::error(
                        codes::UNEXPECTED,
                        span,
                        format!("expected {what} (a whole number), found `{text}`"),
                    )),
                }
            }
            _ => Err(self.unexpected(what)),
        }
    }
    /// One level of written nesting: a `(`, a unary operator or a call.
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep(self.span()));
        }
        Ok(())
    }
    fn too_deep(&self, span: Span) -> Diagnostic {
        Diagnostic::error(codes::TOO_DEEP, span, format!("nesting deeper than {MAX_DEPTH} levels"))
            .with_hint("split the expression into several `map` instructions")
    }
    /// The depth of a new node over children of depth `below`. A
    /// left-associative chain such as `x + x + ... + x` is parsed by a loop
    /// without recursing, so the written nesting does not bound the tree;
    /// this does, so that everything that walks the tree recursively later
    /// (checker, printer, evaluator, `Drop`) has a bounded stack.
    fn node_depth(&self, below: usize, span: Span) -> PResult<usize> {
        if below + 1 > MAX_DEPTH {
            return Err(self.too_deep(span));
        }
        Ok(below + 1)
    }
    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn program(&mut self) -> PResult<Program> {
        let start = self.expect_word("program").map_err(|d| {
            d.with_hint("a file starts with `program NAME {` (after any `;` comments)")
        })?;
        let name = match self.peek().clone() {
            Tok::Word(w) => {
                self.bump();
                w
            }
            _ => return Err(self.unexpected("the program's name")),
        };
        self.expect_punct("{")?;
        let mut vocab: Option<(Vec<Value>, Span)> = None;
        let mut max_len: Option<usize> = None;
        let mut causal = false;
        let mut distinct = false;
        loop {
            let span = self.span();
            let dup = |what: &str| {
                Diagnostic::error(codes::HEADER, span, format!("`{what}` is given twice"))
                    .with_hint("give each header field once")
            };
            if self.is_word("vocab") {
                self.bump();
                if vocab.is_some() {
                    return Err(dup("vocab"));
                }
                let set = self.set()?;
                vocab = Some((set, span.to(self.prev_span())));
            } else if self.is_word("max_len") {
                self.bump();
                if max_len.is_some() {
                    return Err(dup("max_len"));
                }
                max_len = Some(self.int("the maximum input length")?.0);
            } else if self.is_word("causal") {
                self.bump();
                if causal {
                    return Err(dup("causal"));
                }
                causal = true;
            } else if self.is_word("distinct_tokens") {
                self.bump();
                if distinct {
                    return Err(dup("distinct_tokens"));
                }
                distinct = true;
            } else {
                break;
            }
        }
        let head_span = start.to(self.prev_span());
        let Some((vocab, _)) = vocab else {
            return Err(Diagnostic::error(codes::HEADER, head_span, "the program declares no `vocab`")
                .with_hint("add a line such as `vocab {1, 2, 3}` after `program NAME {`"));
        };
        let Some(max_len) = max_len else {
            return Err(Diagnostic::error(codes::HEADER, head_span, "the program declares no `max_len`")
                .with_hint("add a line such as `max_len 5` after `program NAME {`"));
        };
        let body = self.stmts(false)?;
        if !self.is_word("output") {
            return Err(self.unexpected("an instruction `%name = ...`, a `loop`, or `output %name`"));
        }
        self.bump();
        let output = self.name()?;
        let end = self.expect_punct("}")?;
        Ok(Program { name, vocab, max_len, causal, distinct, body, output, span: start.to(end) })
    }

    /// Statements up to `output` (top level) or `next` (loop body).
    fn stmts(&mut self, in_loop: bool) -> PResult<Vec<Stmt>> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Tok::Name(_) => out.push(Stmt::Let(self.let_stmt()?)),
                Tok::Word(w) if w == "loop" => {
                    if in_loop {
                        return Err(Diagnostic::error(
                            codes::NESTED_LOOP,
                            self.span(),
                            "a loop inside a loop",
                        )
                        .with_hint("loops do not nest; merge the inner loop's state into the outer one"));
                    }
                    out.push(Stmt::Loop(self.loop_stmt()?));
                }
                _ => return Ok(out),
            }
        }
    }

    fn let_stmt(&mut self) -> PResult<Let> {
        let name = self.name()?;
        self.expect_punct("=")?;
        let op = self.op()?;
        let enc = if self.eat_punct(":") { Some(self.encoding()?) } else { None };
        let span = name.span.to(self.prev_span());
        Ok(Let { name, op, enc, span })
    }

    fn encoding(&mut self) -> PResult<Encoding> {
        if self.is_word("cat") {
            self.bump();
            Ok(Encoding::Cat)
        } else if self.is_word("num") {
            self.bump();
            Ok(Encoding::Num)
        } else {
            Err(self.unexpected("an encoding, `cat` or `num`"))
        }
    }

    fn op(&mut self) -> PResult<Op> {
        let word = match self.peek().clone() {
            Tok::Word(w) => w,
            _ => return Err(self.unexpected("an instruction (tokens, indices, length, const, map, seqmap, select, and, or, not, aggregate, width)")),
        };
        let kw_span = self.span();
        self.bump();
        Ok(match word.as_str() {
            "tokens" => Op::Tokens,
            "indices" => Op::Indices,
            "length" => Op::Length,
            "const" => Op::Const(self.value()?),
            "map" => {
                let arg = self.name()?;
                Op::Map { arg, func: self.func()? }
            }
            "seqmap" => {
                let lhs = self.name()?;
                self.expect_punct(",")?;
                let rhs = self.name()?;
                Op::SeqMap { lhs, rhs, func: self.func()? }
            }
            "select" => {
                let keys = self.name()?;
                self.expect_punct(",")?;
                let queries = self.name()?;
                Op::Select { keys, queries, pred: self.pred()? }
            }
            "and" | "or" => {
                let a = self.name()?;
                self.expect_punct(",")?;
                let b = self.name()?;
                if word == "and" {
                    Op::And(a, b)
                } else {
                    Op::Or(a, b)
                }
            }
            "not" => Op::Not(self.name()?),
            "aggregate" => {
                let sel = self.name()?;
                self.expect_punct(",")?;
                let values = self.name()?;
                let default = if self.is_word("default") {
                    self.bump();
                    Some(self.value()?)
                } else {
                    None
                };
                Op::Aggregate { sel, values, default }
            }
            "width" => Op::Width(self.name()?),
            other => {
                return Err(Diagnostic::error(
                    codes::UNEXPECTED,
                    kw_span,
                    format!("unknown instruction `{other}`"),
                )
                .with_hint("instructions: tokens indices length const map seqmap select and or not aggregate width"))
            }
        })
    }

    fn func(&mut self) -> PResult<Func> {
        if self.is_punct("{") {
            self.bump();
            let e = self.expr()?;
            self.expect_punct("}")?;
            Ok(Func::Expr(e))
        } else if self.is_word("table") {
            self.bump();
            self.expect_punct("{")?;
            let mut rows = Vec::new();
            if !self.is_punct("}") {
                loop {
                    let inputs = if self.is_punct("(") {
                        self.bump();
                        let a = self.value()?;
                        self.expect_punct(",")?;
                        let b = self.value()?;
                        self.expect_punct(")")?;
                        vec![a, b]
                    } else {
                        vec![self.value()?]
                    };
                    self.expect_punct("->")?;
                    let out = self.value()?;
                    rows.push((inputs, out));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
            }
            self.expect_punct("}")?;
            Ok(Func::Table(rows))
        } else {
            Err(self.unexpected("a function `{ expr }` or `table { ... }`"))
        }
    }

    fn pred(&mut self) -> PResult<Pred> {
        if self.eat_punct(",") {
            let span = self.span();
            return match self.peek().clone() {
                Tok::Word(w) => match CmpPred::from_keyword(&w) {
                    Some(c) => {
                        self.bump();
                        Ok(Pred::Cmp(c))
                    }
                    None => Err(Diagnostic::error(
                        codes::UNEXPECTED,
                        span,
                        format!("unknown predicate `{w}`"),
                    )
                    .with_hint("predicates: eq lt le gt ge ne true false, or `{ expr over k, q }`")),
                },
                _ => Err(self.unexpected("a predicate (eq lt le gt ge ne true false)")),
            };
        }
        if self.is_punct("{") {
            self.bump();
            let e = self.expr()?;
            self.expect_punct("}")?;
            return Ok(Pred::Expr(e));
        }
        if self.is_word("table") {
            self.bump();
            self.expect_punct("{")?;
            let mut pairs = Vec::new();
            if !self.is_punct("}") {
                loop {
                    self.expect_punct("(")?;
                    let k = self.value()?;
                    self.expect_punct(",")?;
                    let q = self.value()?;
                    self.expect_punct(")")?;
                    pairs.push((k, q));
                    if !self.eat_punct(",") {
                        break;
                    }
                }
            }
            self.expect_punct("}")?;
            return Ok(Pred::Table(pairs));
        }
        Err(self.unexpected("`, PREDICATE`, `{ expr }` or `table { (key, query), ... }`"))
    }

    /// A value in a set, table, `const` or `default`.
    fn value(&mut self) -> PResult<Value> {
        let neg = self.eat_punct("-");
        let span = self.span();
        match self.peek().clone() {
            Tok::Number(text) => {
                self.bump();
                let r = parse_rat(&text).ok_or_else(|| {
                    Diagnostic::error(codes::BAD_NUMBER, span, format!("`{text}` is not a number"))
                })?;
                Ok(Value::Num(if neg { -r } else { r }))
            }
            _ if neg => Err(self.unexpected("a number after `-`")),
            Tok::Str(s) => {
                self.bump();
                Ok(Value::Sym(s))
            }
            Tok::Word(w) => {
                if crate::value::RESERVED_WORDS.contains(&w.as_str()) {
                    return Err(Diagnostic::error(
                        codes::UNEXPECTED,
                        span,
                        format!("`{w}` is a keyword, not a value"),
                    )
                    .with_hint(format!("write the symbol quoted: \"{w}\"")));
                }
                self.bump();
                Ok(Value::Sym(w))
            }
            _ => Err(self.unexpected("a value (a number or a symbol)")),
        }
    }

    /// `{ item, ... }` with integer ranges expanded, in written order.
    fn set(&mut self) -> PResult<Vec<Value>> {
        self.expect_punct("{")?;
        let mut out = Vec::new();
        if !self.is_punct("}") {
            loop {
                let start = self.span();
                let v = self.value()?;
                if self.is_punct("..") {
                    self.bump();
                    let hi = self.value()?;
                    let span = start.to(self.prev_span());
                    let (lo, hi) = match (v.as_num(), hi.as_num()) {
                        (Some(a), Some(b)) if a.is_integer() && b.is_integer() => {
                            (a.to_integer(), b.to_integer())
                        }
                        _ => {
                            return Err(Diagnostic::error(
                                codes::UNEXPECTED,
                                span,
                                "a range `a..b` needs two integers",
                            ))
                        }
                    };
                    let count = &hi - &lo + 1;
                    if count > BigInt::from(MAX_RANGE) {
                        return Err(Diagnostic::error(
                            codes::SET_TOO_LARGE,
                            span,
                            format!("range of {count} values is larger than the limit of {MAX_RANGE}"),
                        ));
                    }
                    // Each range is bounded, and so is the whole set: many
                    // ranges must not add up to billions of values.
                    if count > BigInt::from(MAX_RANGE - out.len()) {
                        return Err(set_too_large(span));
                    }
                    let mut x = lo;
                    while x <= hi {
                        out.push(Value::Num(crate::value::Rat::from_integer(x.clone())));
                        x += 1;
                    }
                } else {
                    if out.len() >= MAX_RANGE {
                        return Err(set_too_large(start.to(self.prev_span())));
                    }
                    out.push(v);
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct("}")?;
        Ok(out)
    }

    fn loop_stmt(&mut self) -> PResult<Loop> {
        let start = self.expect_word("loop")?;
        self.expect_punct("{")?;
        let mut state = Vec::new();
        while self.is_word("state") {
            let s0 = self.bump().1;
            let name = self.name()?;
            self.expect_punct(":")?;
            let enc = self.encoding()?;
            self.expect_word("in")?;
            let values = self.set()?;
            self.expect_punct("=")?;
            let init = if let Tok::Name(_) = self.peek() {
                Init::Value(self.name()?)
            } else {
                Init::Const(self.value()?)
            };
            state.push(StateVar { name, enc, values, init, span: s0.to(self.prev_span()) });
        }
        if state.is_empty() {
            return Err(self.unexpected("a state declaration `state %s : cat in {...} = init`"));
        }
        let stop = if self.is_word("iterations") {
            self.bump();
            Stop::Fixed(self.int("an iteration count")?.0)
        } else if self.is_word("until") {
            self.bump();
            let halt = self.name()?;
            self.expect_word("max")?;
            let max = self.int("the most iterations allowed")?.0;
            Stop::Until { halt, max }
        } else {
            return Err(self.unexpected("`iterations N` or `until %halt max N` after the state"));
        };
        let body = self.stmts(true)?;
        let mut next = Vec::new();
        while self.is_word("next") {
            self.bump();
            let s = self.name()?;
            self.expect_punct("=")?;
            let v = self.name()?;
            next.push((s, v));
        }
        if next.is_empty() {
            return Err(self.unexpected("an instruction or `next %state = %value`"));
        }
        let end = self.expect_punct("}")?;
        Ok(Loop { state, stop, body, next, span: start.to(end) })
    }

    // ---- expressions ----

    fn expr(&mut self) -> PResult<Expr> {
        Ok(self.binary(1)?.0)
    }

    fn binop(&self) -> Option<BinOp> {
        let Tok::Punct(p) = self.peek() else { return None };
        Some(match *p {
            "||" => BinOp::Or,
            "&&" => BinOp::And,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            "<" => BinOp::Lt,
            "<=" => BinOp::Le,
            ">" => BinOp::Gt,
            ">=" => BinOp::Ge,
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            _ => return None,
        })
    }

    /// Precedence climbing; comparisons (level 3) do not chain. Returns
    /// the expression and the depth of its tree.
    ///
    /// The recursion for a right operand raises `min_prec`, so it nests at
    /// most five deep between two levels of written nesting (`enter`).
    fn binary(&mut self, min_prec: u8) -> PResult<(Expr, usize)> {
        let (mut lhs, mut depth) = self.unary()?;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_span = self.bump().1;
            let (rhs, rdepth) = self.binary(prec + 1)?;
            depth = self.node_depth(depth.max(rdepth), op_span)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
            if prec == 3 {
                if let Some(next) = self.binop() {
                    if next.precedence() == 3 {
                        return Err(Diagnostic::error(
                            codes::UNEXPECTED,
                            self.span(),
                            "comparisons do not chain",
                        )
                        .with_hint("write `a < b && b < c`"));
                    }
                }
            }
        }
        Ok((lhs, depth))
    }

    fn unary(&mut self) -> PResult<(Expr, usize)> {
        let span = self.span();
        if self.is_punct("-") || self.is_punct("!") {
            let op = if self.is_punct("-") { UnOp::Neg } else { UnOp::Not };
            self.bump();
            // `-3` is one literal, not a level of nesting (nor a recursion
            // that needs bounding).
            let literal = op == UnOp::Neg && matches!(self.peek(), Tok::Number(_));
            if !literal {
                self.enter()?;
            }
            let (inner, depth) = self.unary()?;
            if !literal {
                self.leave();
            }
            let span = span.to(inner.span);
            // `-` on a literal number is that negative literal, so that
            // printing `-3` and parsing it back gives the same tree.
            if op == UnOp::Neg {
                if let ExprKind::Lit(Value::Num(r)) = &inner.kind {
                    if matches!(self.toks[self.pos - 1].0, Tok::Number(_)) {
                        return Ok((Expr { kind: ExprKind::Lit(Value::Num(-r.clone())), span }, depth));
                    }
                }
            }
            let depth = self.node_depth(depth, span)?;
            return Ok((Expr { kind: ExprKind::Unary(op, Box::new(inner)), span }, depth));
        }
        self.atom()
    }

    fn atom(&mut self) -> PResult<(Expr, usize)> {
        let span = self.span();
        match self.peek().clone() {
            Tok::Number(text) => {
                self.bump();
                let r = parse_rat(&text).ok_or_else(|| {
                    Diagnostic::error(codes::BAD_NUMBER, span, format!("`{text}` is not a number"))
                })?;
                Ok((Expr { kind: ExprKind::Lit(Value::Num(r)), span }, 1))
            }
            Tok::Str(s) => {
                self.bump();
                Ok((Expr { kind: ExprKind::Lit(Value::Sym(s)), span }, 1))
            }
            Tok::Punct("(") => {
                self.bump();
                self.enter()?;
                let (e, depth) = self.binary(1)?;
                self.leave();
                let end = self.expect_punct(")")?;
                // Parentheses leave no node behind; the span widens.
                Ok((Expr { kind: e.kind, span: span.to(end) }, depth))
            }
            Tok::Word(w) => {
                self.bump();
                let var = match w.as_str() {
                    "x" => Some(Var::X),
                    "y" => Some(Var::Y),
                    "k" => Some(Var::K),
                    "q" => Some(Var::Q),
                    _ => None,
                };
                if let Some(v) = var {
                    return Ok((Expr { kind: ExprKind::Var(v), span }, 1));
                }
                let Some(f) = Builtin::from_name(&w) else {
                    return Err(Diagnostic::error(
                        codes::UNEXPECTED,
                        span,
                        format!("unknown word `{w}` in an expression"),
                    )
                    .with_hint(format!(
                        "variables are x, y (map/seqmap) and k, q (select); functions are min max abs div mod if; a symbol is quoted: \"{w}\""
                    )));
                };
                self.expect_punct("(")?;
                let mut args = Vec::new();
                let mut depth = 0;
                self.enter()?;
                if !self.is_punct(")") {
                    loop {
                        let (arg, d) = self.binary(1)?;
                        args.push(arg);
                        depth = depth.max(d);
                        if !self.eat_punct(",") {
                            break;
                        }
                    }
                }
                self.leave();
                let end = self.expect_punct(")")?;
                if args.len() != f.arity() {
                    return Err(Diagnostic::error(
                        codes::UNEXPECTED,
                        span.to(end),
                        format!("`{}` takes {} argument(s), found {}", f.name(), f.arity(), args.len()),
                    ));
                }
                let depth = self.node_depth(depth, span)?;
                Ok((Expr { kind: ExprKind::Call(f, args), span: span.to(end) }, depth))
            }
            _ => Err(self.unexpected("an expression")),
        }
    }
}

fn set_too_large(span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::SET_TOO_LARGE,
        span,
        format!("set of more than {MAX_RANGE} values is larger than the limit"),
    )
    .with_hint("no vocabulary or value set can be that large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> &'static str {
        parse(src).unwrap_err().code
    }

    #[test]
    fn parses_the_docs_example() {
        let src = r#"
            ; sort distinct tokens ascending
            program sort_unique {
              vocab {1, 2, 3, 4, 5}
              max_len 5
              distinct_tokens
              %tok  = tokens
              %idx  = indices
              %lt   = select %tok, %tok, lt
              %tgt  = width %lt
              %pick = select %tgt, %idx, eq
              %out  = aggregate %pick, %tok default 0 : cat
              output %out
            }"#;
        let p = parse(src).unwrap();
        assert_eq!(p.vocab.len(), 5);
        assert!(p.distinct && !p.causal);
        assert_eq!(p.body.len(), 6);
        assert_eq!(p.output.text, "out");
    }

    #[test]
    fn ranges_expand_and_negatives_parse() {
        let p = parse("program p { vocab {-2..1, a, \"(\"} max_len 2 %t = tokens output %t }").unwrap();
        assert_eq!(
            p.vocab,
            vec![Value::int(-2), Value::int(-1), Value::int(0), Value::int(1), Value::sym("a"), Value::sym("(")]
        );
    }

    #[test]
    fn expressions_respect_precedence() {
        let p = parse("program p { vocab {1} max_len 1 %t = tokens %m = map %t { 1 + x * 2 == 3 || !x } : num output %m }").unwrap();
        let Stmt::Let(l) = &p.body[1] else { panic!() };
        let Op::Map { func: Func::Expr(e), .. } = &l.op else { panic!() };
        // ((1 + (x * 2)) == 3) || (!x)
        let ExprKind::Binary(BinOp::Or, lhs, _) = &e.kind else { panic!("{e:?}") };
        let ExprKind::Binary(BinOp::Eq, sum, _) = &lhs.kind else { panic!() };
        assert!(matches!(&sum.kind, ExprKind::Binary(BinOp::Add, _, _)));
    }

    #[test]
    fn syntax_errors_have_codes() {
        assert_eq!(err(""), codes::EMPTY);
        assert_eq!(err("; only a comment\n"), codes::EMPTY);
        assert_eq!(err("program p { max_len 3 %t = tokens output %t }"), codes::HEADER);
        assert_eq!(err("program p { vocab {1} vocab {2} max_len 3 output %t }"), codes::HEADER);
        assert_eq!(err("program p { vocab {1} max_len 3 %t = tokens output %t"), codes::UNEXPECTED);
        assert_eq!(err("program p { vocab {\"a} max_len 3 }"), codes::BAD_STRING);
        assert_eq!(err("program p { vocab {1/0} max_len 3 }"), codes::BAD_NUMBER);
        assert_eq!(err("program p { vocab {1} max_len 3 # }"), codes::BAD_CHAR);
        assert_eq!(
            err("program p { vocab {1} max_len 3 %t = tokens %m = map %t { x < 1 < 2 } : num output %m }"),
            codes::UNEXPECTED
        );
        let deep = format!(
            "program p {{ vocab {{1}} max_len 3 %t = tokens %m = map %t {{ {}x{} }} : num output %m }}",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert_eq!(err(&deep), codes::TOO_DEEP);
        let nested = "program p { vocab {1} max_len 3 loop { state %s : cat in {0} = 0 iterations 1 loop {";
        assert_eq!(err(nested), codes::NESTED_LOOP);
    }

    #[test]
    fn bytes_are_checked_before_parsing() {
        assert_eq!(parse_bytes(&[0xff, 0xfe]).unwrap_err().code, codes::NOT_UTF8);
        assert_eq!(parse_bytes(&vec![b' '; MAX_SOURCE_BYTES + 1]).unwrap_err().code, codes::TOO_LARGE);
    }
}
