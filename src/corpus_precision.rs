//! The corpus's precision expectations (docs/PRECISION.md, "Corpus lines").
//!
//! `; precision: f32=5/none f16=0/none bf16=0/2 fp8e4m3=0/1 fp8e5m2=0/1`
//! names, per format, the analytic safe length and the observed first
//! failing length (`none`: no run failed up to max_len) of the default
//! model at softmax β = 100, as `tfc precision --random 20` reports them.
//! `; precision-target: bf16=5` names the length `tfc compile --target
//! bf16` certifies. Like `; stats:`, these figures are measurements that
//! `--bless` fills in from the tool: they guard against regressions. What
//! makes them more than a recording is the check made on every line
//! regardless of its figures: the analytic length must be below the
//! observed failure (a bound beaten by a run is a failure, blessed or not),
//! and a target length may not be shorter than the default one.

use std::collections::BTreeMap;
use tfc_ir::forward::Format;
use tfc_ir::Checked;

/// A format's figures on a `; precision:` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// The analytic safe length.
    pub analytic: usize,
    /// The observed first failing length (`None`: no run failed).
    pub observed: Option<usize>,
}

/// Random inputs per length the corpus lines are measured with.
pub const RANDOM: usize = 20;
/// The inverse temperature of the default lines.
pub const BETA: f64 = 100.0;

fn format_of(name: &str) -> Result<Format, String> {
    match name.parse::<Format>() {
        Ok(Format::Exact) | Ok(Format::F64) | Err(_) => Err(format!("precision: `{name}` is not one of f32, f16, bf16, fp8e4m3, fp8e5m2")),
        Ok(f) => Ok(f),
    }
}

/// Reads `f32=5/none bf16=0/2 …`.
pub fn parse_line(text: &str) -> Result<BTreeMap<String, Figures>, String> {
    let mut out = BTreeMap::new();
    for item in text.split_whitespace() {
        let (k, v) = item.split_once('=').ok_or(format!("precision: `{item}` is not FORMAT=ANALYTIC/OBSERVED"))?;
        format_of(k)?;
        let (a, o) = v.split_once('/').ok_or(format!("precision: `{v}` is not ANALYTIC/OBSERVED"))?;
        let analytic = a.parse().map_err(|_| format!("precision: `{a}` is not a length"))?;
        let observed = if o == "none" { None } else { Some(o.parse().map_err(|_| format!("precision: `{o}` is not a length or `none`"))?) };
        if out.insert(k.to_string(), Figures { analytic, observed }).is_some() {
            return Err(format!("precision: `{k}` given twice"));
        }
    }
    if out.is_empty() {
        return Err("precision: names no format (`--bless` fills them in)".into());
    }
    Ok(out)
}

/// Reads `bf16=5 f16=10`.
pub fn parse_target_line(text: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut out = BTreeMap::new();
    for item in text.split_whitespace() {
        let (k, v) = item.split_once('=').ok_or(format!("precision-target: `{item}` is not FORMAT=LENGTH"))?;
        format_of(k)?;
        let n = v.parse().map_err(|_| format!("precision-target: `{v}` is not a length"))?;
        if out.insert(k.to_string(), n).is_some() {
            return Err(format!("precision-target: `{k}` given twice"));
        }
    }
    if out.is_empty() {
        return Err("precision-target: names no format".into());
    }
    Ok(out)
}

const ALL: [Format; 5] = [Format::F32, Format::F16, Format::Bf16, Format::Fp8E4M3, Format::Fp8E5M2];

/// The figures of the default model in every format.
pub fn measure(checked: &Checked, model: &tfc_ir::model::Model) -> Result<BTreeMap<String, Figures>, String> {
    let r = tfc_verifier::precision::report(checked, model, &ALL, BETA, RANDOM)?;
    Ok(r.formats.iter().map(|f| (f.format.clone(), Figures { analytic: f.analytic_max_len, observed: f.observed_first_failure.as_ref().map(|o| o.len) })).collect())
}

/// The length `--target FORMAT` certifies at `opt_level`.
pub fn measure_target(checked: &Checked, format: &str, opt_level: u8) -> Result<usize, String> {
    let f = format_of(format)?;
    let opts = tfc_compiler::CompileOptions { opt_level, ..Default::default() };
    let c = crate::target::certify(checked, &opts, f).map_err(|e| e.to_string())?;
    Ok(c.safe_len)
}

/// The line `--bless` writes.
pub fn line(figs: &BTreeMap<String, Figures>) -> String {
    let items: Vec<String> = ALL
        .iter()
        .filter_map(|f| figs.get(f.name()).map(|x| (f.name(), x)))
        .map(|(k, x)| format!("{k}={}/{}", x.analytic, x.observed.map_or("none".to_string(), |o| o.to_string())))
        .collect();
    format!("; precision: {}", items.join(" "))
}

/// The target line `--bless` writes.
pub fn target_line(figs: &BTreeMap<String, usize>) -> String {
    let items: Vec<String> = ALL.iter().filter_map(|f| figs.get(f.name()).map(|n| format!("{}={n}", f.name()))).collect();
    format!("; precision-target: {}", items.join(" "))
}

/// The checks every measured line must pass whatever its figures: the
/// bound is never beaten by a run.
pub fn invariant(figs: &BTreeMap<String, Figures>) -> Vec<String> {
    figs.iter()
        .filter_map(|(k, x)| match x.observed {
            Some(o) if x.analytic >= o => Some(format!("precision: {k}: the analytic safe length {} is not below the observed failure at {o}", x.analytic)),
            _ => None,
        })
        .collect()
}
