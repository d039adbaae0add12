//! Values: exact rationals and symbols.
//!
//! Every value a program computes is a [`Value`]: an exact rational
//! (`BigRational`; there is no floating point anywhere in the IR) or a
//! symbol such as `a` or `"("`. Booleans are the numbers 0 and 1.
//! Values are totally ordered (numbers before symbols, numbers by size,
//! symbols by text) so that value sets are deterministic `BTreeSet`s.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use std::collections::BTreeSet;
use std::fmt;

/// An exact rational number.
pub type Rat = BigRational;

/// A finite set of values, in value order.
pub type ValueSet = BTreeSet<Value>;

/// One value at one position.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// An exact rational.
    Num(Rat),
    /// A symbol.
    Sym(String),
}

/// The symbol reserved for the beginning-of-sequence position.
pub const BOS_SYMBOL: &str = "BOS";

impl Value {
    /// The integer `n`.
    pub fn int(n: i64) -> Value {
        Value::Num(Rat::from_integer(BigInt::from(n)))
    }
    /// The rational `num/den` (`den` nonzero).
    pub fn ratio(num: i64, den: i64) -> Value {
        Value::Num(Rat::new(BigInt::from(num), BigInt::from(den)))
    }
    /// The symbol `s`.
    pub fn sym(s: impl Into<String>) -> Value {
        Value::Sym(s.into())
    }
    /// 1 for true, 0 for false.
    pub fn bool(b: bool) -> Value {
        Value::int(b as i64)
    }
    /// The number, if this is one.
    pub fn as_num(&self) -> Option<&Rat> {
        match self {
            Value::Num(r) => Some(r),
            Value::Sym(_) => None,
        }
    }
    /// Whether this is a number.
    pub fn is_num(&self) -> bool {
        matches!(self, Value::Num(_))
    }
    /// Truth: a nonzero number. Symbols are not truth values.
    pub fn truthy(&self) -> Option<bool> {
        self.as_num().map(|r| !r.is_zero())
    }
}

impl From<Rat> for Value {
    fn from(r: Rat) -> Value {
        Value::Num(r)
    }
}

/// Whether `s` can be written as a bare symbol (an identifier that is not a
/// keyword of the value syntax).
pub fn is_bare_symbol(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = match chars.next() {
        Some(c) => c.is_ascii_alphabetic() || c == '_',
        None => false,
    };
    first_ok
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED_WORDS.contains(&s)
}

/// Words that can never be bare symbols because the grammar uses them
/// where a value may stand.
pub const RESERVED_WORDS: &[&str] = &[
    "table", "default", "in", "true", "false", "x", "y", "k", "q", "min", "max", "abs", "div",
    "mod", "if", "cat", "num",
];

/// Writes a rational as `n` or `n/d` (lowest terms, sign on the numerator).
pub fn fmt_rat(r: &Rat, f: &mut impl fmt::Write) -> fmt::Result {
    if r.denom().is_one() {
        write!(f, "{}", r.numer())
    } else {
        write!(f, "{}/{}", r.numer(), r.denom())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(r) => fmt_rat(r, f),
            Value::Sym(s) if is_bare_symbol(s) => f.write_str(s),
            Value::Sym(s) => write_quoted(s, f),
        }
    }
}

/// Writes `s` as a quoted symbol, escaping `"` and `\`.
pub fn write_quoted(s: &str, f: &mut impl fmt::Write) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// A value written in quoted form when it is a symbol (as expressions need).
pub struct ExprValue<'a>(pub &'a Value);

impl fmt::Display for ExprValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Num(r) if r.is_negative() => {
                f.write_str("(")?;
                fmt_rat(r, f)?;
                f.write_str(")")
            }
            Value::Num(r) => fmt_rat(r, f),
            Value::Sym(s) => write_quoted(s, f),
        }
    }
}

/// Parses one value as written on the command line or in a table: an
/// integer, `p/q`, a decimal such as `0.25` (exact), a quoted symbol, or
/// a bare symbol.
pub fn parse_value(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(r) = parse_rat(t) {
        return Some(Value::Num(r));
    }
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        return unquote(&t[1..t.len() - 1]).map(Value::Sym);
    }
    if is_bare_symbol(t) || t.chars().all(|c| !c.is_whitespace() && c != ',' && c != '"') {
        return Some(Value::Sym(t.to_string()));
    }
    None
}

/// Undoes [`write_quoted`]'s escapes.
pub fn unquote(body: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                _ => return None,
            }
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses `-3`, `7/2`, `-0.125` exactly; `None` for anything else.
pub fn parse_rat(t: &str) -> Option<Rat> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if body.is_empty() {
        return None;
    }
    let r = if let Some((n, d)) = body.split_once('/') {
        let n = parse_digits(n)?;
        let d = parse_digits(d)?;
        if d.is_zero() {
            return None;
        }
        Rat::new(n, d)
    } else if let Some((i, frac)) = body.split_once('.') {
        if i.is_empty() || frac.is_empty() {
            return None;
        }
        let whole = parse_digits(&format!("{i}{frac}"))?;
        let scale = num_traits::pow(BigInt::from(10), frac.len());
        Rat::new(whole, scale)
    } else {
        Rat::from_integer(parse_digits(body)?)
    };
    Some(if neg { -r } else { r })
}

fn parse_digits(s: &str) -> Option<BigInt> {
    if s.is_empty() || s.len() > 4096 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Writes a sequence of values space-separated.
pub fn fmt_seq(values: &[Value]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rationals_print_in_lowest_terms() {
        assert_eq!(Value::ratio(6, -4).to_string(), "-3/2");
        assert_eq!(Value::ratio(4, 2).to_string(), "2");
        assert_eq!(parse_rat("0.25"), Some(Rat::new(1.into(), 4.into())));
        assert_eq!(parse_rat("1/0"), None);
    }

    #[test]
    fn symbols_quote_when_not_bare() {
        assert_eq!(Value::sym("a").to_string(), "a");
        assert_eq!(Value::sym("(").to_string(), "\"(\"");
        assert_eq!(Value::sym("table").to_string(), "\"table\"");
        assert_eq!(parse_value("\"(\""), Some(Value::sym("(")));
        assert_eq!(parse_value("("), Some(Value::sym("(")));
    }

    #[test]
    fn numbers_order_before_symbols() {
        let mut v = vec![Value::sym("a"), Value::int(3), Value::ratio(-1, 2)];
        v.sort();
        assert_eq!(v, vec![Value::ratio(-1, 2), Value::int(3), Value::sym("a")]);
    }
}
