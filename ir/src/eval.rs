//! Evaluation of the expression language, tables and predicates, exactly.
//!
//! The checker uses this to push value sets through functions, the
//! interpreter to compute values, and later stages to tabulate the
//! functions they lower. One evaluator means one meaning.

use crate::ast::{BinOp, Builtin, CmpPred, Expr, ExprKind, Func, Pred, UnOp, Var};
use crate::value::{Rat, Value};
use num_integer::Integer;
use num_traits::{Signed, Zero};
use std::fmt;

/// Why an expression has no value on some input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// Division (`/`, `div`, `mod`) by zero.
    DivByZero,
    /// Arithmetic or ordering on a symbol.
    NotANumber(Value),
    /// `div`/`mod` of a non-integer.
    NotAnInteger(Value),
    /// A variable the context does not bind.
    Unbound(Var),
    /// A table without an entry for these inputs.
    NoEntry(Vec<Value>),
    /// A builtin called with the wrong number of arguments (only a program
    /// built in code, not parsed, can have one).
    Arity(Builtin),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::DivByZero => write!(f, "division by zero"),
            EvalError::NotANumber(v) => write!(f, "`{v}` is not a number"),
            EvalError::NotAnInteger(v) => write!(f, "`{v}` is not an integer"),
            EvalError::Unbound(v) => write!(f, "variable `{}` is not bound here", v.letter()),
            EvalError::Arity(b) => write!(f, "`{}` takes {} argument(s)", b.name(), b.arity()),
            EvalError::NoEntry(args) => {
                let args: Vec<String> = args.iter().map(|v| v.to_string()).collect();
                write!(f, "the table has no entry for ({})", args.join(", "))
            }
        }
    }
}

/// Values of the expression variables; unbound ones are `None`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Env<'a> {
    /// `x`
    pub x: Option<&'a Value>,
    /// `y`
    pub y: Option<&'a Value>,
    /// `k`
    pub k: Option<&'a Value>,
    /// `q`
    pub q: Option<&'a Value>,
}

fn num(v: Value) -> Result<Rat, EvalError> {
    match v {
        Value::Num(r) => Ok(r),
        other => Err(EvalError::NotANumber(other)),
    }
}

fn int(v: Value) -> Result<Rat, EvalError> {
    let r = num(v)?;
    if r.is_integer() {
        Ok(r)
    } else {
        Err(EvalError::NotAnInteger(Value::Num(r)))
    }
}

/// Evaluates `e` under `env`.
pub fn eval(e: &Expr, env: &Env) -> Result<Value, EvalError> {
    match &e.kind {
        ExprKind::Lit(v) => Ok(v.clone()),
        ExprKind::Var(var) => {
            let bound = match var {
                Var::X => env.x,
                Var::Y => env.y,
                Var::K => env.k,
                Var::Q => env.q,
            };
            bound.cloned().ok_or(EvalError::Unbound(*var))
        }
        ExprKind::Unary(UnOp::Neg, a) => Ok(Value::Num(-num(eval(a, env)?)?)),
        ExprKind::Unary(UnOp::Not, a) => Ok(Value::bool(num(eval(a, env)?)?.is_zero())),
        // `&&` and `||` short-circuit, so `x != 0 && 1 / x > 2` is defined at 0.
        ExprKind::Binary(BinOp::And, a, b) => {
            if num(eval(a, env)?)?.is_zero() {
                return Ok(Value::int(0));
            }
            Ok(Value::bool(!num(eval(b, env)?)?.is_zero()))
        }
        ExprKind::Binary(BinOp::Or, a, b) => {
            if !num(eval(a, env)?)?.is_zero() {
                return Ok(Value::int(1));
            }
            Ok(Value::bool(!num(eval(b, env)?)?.is_zero()))
        }
        ExprKind::Binary(op, a, b) => {
            let a = eval(a, env)?;
            let b = eval(b, env)?;
            binary(*op, a, b)
        }
        ExprKind::Call(f, args) if args.len() != f.arity() => Err(EvalError::Arity(*f)),
        // `if` evaluates only the branch it takes, so `if(x != 0, 1 / x, 0)` is defined at 0.
        ExprKind::Call(Builtin::If, args) => {
            if num(eval(&args[0], env)?)?.is_zero() {
                eval(&args[2], env)
            } else {
                eval(&args[1], env)
            }
        }
        ExprKind::Call(f, args) => {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(eval(a, env)?);
            }
            call(*f, vals)
        }
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, EvalError> {
    // Equality is defined on symbols too; everything else needs numbers.
    match op {
        BinOp::Eq => return Ok(Value::bool(a == b)),
        BinOp::Ne => return Ok(Value::bool(a != b)),
        _ => {}
    }
    let (a, b) = (num(a)?, num(b)?);
    Ok(match op {
        BinOp::Or | BinOp::And => unreachable!("short-circuit operators are evaluated in `eval`"),
        BinOp::Lt => Value::bool(a < b),
        BinOp::Le => Value::bool(a <= b),
        BinOp::Gt => Value::bool(a > b),
        BinOp::Ge => Value::bool(a >= b),
        BinOp::Add => Value::Num(a + b),
        BinOp::Sub => Value::Num(a - b),
        BinOp::Mul => Value::Num(a * b),
        BinOp::Div => {
            if b.is_zero() {
                return Err(EvalError::DivByZero);
            }
            Value::Num(a / b)
        }
        BinOp::Eq | BinOp::Ne => unreachable!("handled above"),
    })
}

fn call(f: Builtin, args: Vec<Value>) -> Result<Value, EvalError> {
    let mut it = args.into_iter();
    let mut next = || it.next().unwrap_or(Value::int(0));
    Ok(match f {
        Builtin::Min => {
            let (a, b) = (num(next())?, num(next())?);
            Value::Num(a.min(b))
        }
        Builtin::Max => {
            let (a, b) = (num(next())?, num(next())?);
            Value::Num(a.max(b))
        }
        Builtin::Abs => Value::Num(num(next())?.abs()),
        Builtin::IDiv | Builtin::Mod => {
            let (a, b) = (int(next())?, int(next())?);
            if b.is_zero() {
                return Err(EvalError::DivByZero);
            }
            let (a, b) = (a.to_integer(), b.to_integer());
            let r = if f == Builtin::IDiv { a.div_floor(&b) } else { a.mod_floor(&b) };
            Value::Num(Rat::from_integer(r))
        }
        Builtin::If => unreachable!("`if` is evaluated lazily in `eval`"),
    })
}

/// Applies a `map` (one argument) or `seqmap` (two) function.
pub fn apply(func: &Func, args: &[Value]) -> Result<Value, EvalError> {
    match func {
        Func::Expr(e) => {
            let env = Env { x: args.first(), y: args.get(1), ..Env::default() };
            eval(e, &env)
        }
        Func::Table(rows) => rows
            .iter()
            .find(|(inputs, _)| inputs.as_slice() == args)
            .map(|(_, out)| out.clone())
            .ok_or_else(|| EvalError::NoEntry(args.to_vec())),
    }
}

/// Whether the selector predicate holds for this key and query.
pub fn holds(pred: &Pred, key: &Value, query: &Value) -> Result<bool, EvalError> {
    match pred {
        Pred::Cmp(c) => cmp_holds(*c, key, query),
        Pred::Expr(e) => {
            let env = Env { k: Some(key), q: Some(query), ..Env::default() };
            let v = eval(e, &env)?;
            v.truthy().ok_or(EvalError::NotANumber(v))
        }
        Pred::Table(pairs) => Ok(pairs.iter().any(|(k, q)| k == key && q == query)),
    }
}

/// A named comparison, `key OP query`. Ordering needs numbers; equality
/// works on symbols too.
pub fn cmp_holds(c: CmpPred, key: &Value, query: &Value) -> Result<bool, EvalError> {
    let ord = || -> Result<std::cmp::Ordering, EvalError> {
        let k = key.as_num().ok_or_else(|| EvalError::NotANumber(key.clone()))?;
        let q = query.as_num().ok_or_else(|| EvalError::NotANumber(query.clone()))?;
        Ok(k.cmp(q))
    };
    use std::cmp::Ordering::*;
    Ok(match c {
        CmpPred::Eq => key == query,
        CmpPred::Ne => key != query,
        CmpPred::True => true,
        CmpPred::False => false,
        CmpPred::Lt => ord()? == Less,
        CmpPred::Le => ord()? != Greater,
        CmpPred::Gt => ord()? == Greater,
        CmpPred::Ge => ord()? != Less,
    })
}
