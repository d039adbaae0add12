//! Reading the residual basis: which dimensions hold which program value.
//!
//! The verifier trusts the basis labels and nothing else of the
//! compiler's bookkeeping, and it checks the labels against the program:
//! `one`, `bos`, `tokens:<v>`, `indices:<i>`, `%name:<v>` (one-hot),
//! `%name` (a number) and `scratch.<k>` (a width head's 1/(w+1)). A label
//! naming a value the program does not have, a value outside the value's
//! set, or a one-hot group that misses a value of the set is an error.

use std::collections::BTreeMap;
use tfc_ir::ast::{Encoding, Op};
use tfc_ir::check::{all_lets, Checked};
use tfc_ir::value::parse_value;
use tfc_ir::{Value, ValueSet};

/// The dimensions of one program value.
#[derive(Clone, Debug, PartialEq)]
pub enum Group {
    /// One-hot: a dimension per value.
    Cat(BTreeMap<Value, usize>),
    /// One dimension holding the number.
    Num(usize),
}

impl Group {
    /// Every dimension of the group.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Group::Cat(m) => m.values().copied().collect(),
            Group::Num(d) => vec![*d],
        }
    }
    /// The residual entries encoding `v` (empty for a value with no dimension).
    pub fn enc(&self, v: &Value) -> Vec<(usize, tfc_ir::Rat)> {
        match self {
            Group::Cat(m) => m.get(v).map(|d| vec![(*d, tfc_ir::Rat::from_integer(1.into()))]).unwrap_or_default(),
            Group::Num(d) => match v.as_num() {
                Some(r) if *r != tfc_ir::Rat::default() => vec![(*d, r.clone())],
                _ => vec![],
            },
        }
    }
}

/// The parsed basis.
#[derive(Clone, Debug)]
pub struct Basis {
    /// The `one` dimension.
    pub one: usize,
    /// The `bos` dimension.
    pub bos: usize,
    /// Dimensions of each program value, by IR name (without `%`). The
    /// `tokens:` and `indices:` groups are listed under every IR name
    /// defined as `tokens` / `indices`.
    pub groups: BTreeMap<String, Group>,
    /// Scratch dimensions.
    pub scratch: Vec<usize>,
    /// Which group (IR name) or role owns each dimension.
    pub owner: Vec<String>,
}

/// Parses and checks the basis against the program.
pub fn read_basis(labels: &[String], checked: &Checked) -> Result<Basis, String> {
    let mut one = None;
    let mut bos = None;
    let mut raw: BTreeMap<String, (Option<Encoding>, BTreeMap<Value, usize>)> = BTreeMap::new();
    let mut scratch = Vec::new();
    let mut owner = Vec::with_capacity(labels.len());
    for (d, label) in labels.iter().enumerate() {
        if label == "one" {
            one = Some(d);
            owner.push("one".into());
            continue;
        }
        if label == "bos" {
            bos = Some(d);
            owner.push("bos".into());
            continue;
        }
        if label.starts_with("scratch.") {
            scratch.push(d);
            owner.push(label.clone());
            continue;
        }
        let (group, value) = if let Some(rest) = label.strip_prefix('%') {
            match rest.split_once(':') {
                Some((n, v)) => (n.to_string(), Some(v)),
                None => (rest.to_string(), None),
            }
        } else if let Some(v) = label.strip_prefix("tokens:") {
            ("@tokens".to_string(), Some(v))
        } else if let Some(v) = label.strip_prefix("indices:") {
            ("@indices".to_string(), Some(v))
        } else {
            return Err(format!("dimension {d} has label `{label}`, which names no program value"));
        };
        owner.push(group.clone());
        let entry = raw.entry(group.clone()).or_insert((None, BTreeMap::new()));
        match value {
            Some(v) => {
                let v = parse_value(v).ok_or_else(|| format!("dimension {d}: cannot read the value in `{label}`"))?;
                if entry.0 == Some(Encoding::Num) {
                    return Err(format!("`{group}` has both a numeric dimension and one-hot dimensions"));
                }
                entry.0 = Some(Encoding::Cat);
                if entry.1.insert(v, d).is_some() {
                    return Err(format!("dimension {d}: label `{label}` is used twice"));
                }
            }
            None => {
                if entry.0.is_some() {
                    return Err(format!("`%{group}` has more than one numeric dimension, or one-hot ones too"));
                }
                entry.0 = Some(Encoding::Num);
                entry.1.insert(Value::int(0), d);
            }
        }
    }
    let one = one.ok_or("the basis has no `one` dimension")?;
    let bos = bos.ok_or("the basis has no `bos` dimension")?;
    // Map raw groups to IR names and check them against the value sets.
    let lets = all_lets(&checked.program.body);
    let mut groups = BTreeMap::new();
    for (g, (enc, dims)) in raw {
        let names: Vec<String> = match g.as_str() {
            "@tokens" => lets.iter().filter(|l| l.op == Op::Tokens).map(|l| l.name.text.clone()).collect(),
            "@indices" => lets.iter().filter(|l| l.op == Op::Indices).map(|l| l.name.text.clone()).collect(),
            other => vec![other.to_string()],
        };
        let names = if names.is_empty() && g == "@indices" {
            // A causal `length` may be computed from positions the program never names.
            vec!["@indices".to_string()]
        } else {
            names
        };
        for name in names {
            let (set, info_enc): (ValueSet, Encoding) = if name == "@indices" {
                ((0..checked.program.max_len).map(|i| Value::int(i as i64)).collect(), Encoding::Cat)
            } else {
                let info = checked.get(&name).ok_or_else(|| format!("the basis names `%{name}`, which the program does not define"))?;
                match (info.set(), info.enc()) {
                    (Some(s), Some(e)) => (s.clone(), e),
                    _ => return Err(format!("the basis gives dimensions to `%{name}`, a selector")),
                }
            };
            let enc = enc.expect("set on insert");
            if enc != info_enc {
                return Err(format!("`%{name}` is `{info_enc}` in the program but `{enc}` in the basis"));
            }
            let group = match enc {
                Encoding::Cat => {
                    let have: ValueSet = dims.keys().cloned().collect();
                    if have != set {
                        let missing: Vec<String> = set.difference(&have).take(4).map(|v| v.to_string()).collect();
                        let extra: Vec<String> = have.difference(&set).take(4).map(|v| v.to_string()).collect();
                        return Err(format!(
                            "the one-hot dimensions of `%{name}` do not match its value set (missing: [{}], extra: [{}])",
                            missing.join(", "),
                            extra.join(", ")
                        ));
                    }
                    Group::Cat(dims.clone())
                }
                Encoding::Num => Group::Num(*dims.values().next().expect("one dim")),
            };
            groups.insert(name, group);
        }
    }
    Ok(Basis { one, bos, groups, scratch, owner })
}
