//! `tfc`: compile small programs into transformer weights, and prove them.
//!
//! This is the CLI edge: argument parsing, reading files, rendering
//! diagnostics and choosing exit codes. Everything else lives in the
//! `tfc-ir`, `tfc-compiler` and `tfc-verifier` crates.
//!
//! Exit codes (also in README.md):
//! 0 success; 1 a proof refuted or a test failed; 2 bad input or usage
//! (including programs that do not check); 3 a verdict is unknown
//! (timeout, limit); 4 the program failed on the given input at run time.

mod corpus;
mod corpus_precision;
mod pipeline;
mod render;
mod show;
mod target;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tfc_ir::value::{fmt_seq, parse_value};
use tfc_ir::{check, interp, Checked, Diagnostic, Value};

/// The default softmax inverse temperature for floating-point runs.
pub(crate) const DEFAULT_BETA: f64 = 100.0;

/// `-O0` / `-O1`, taken by every command that compiles (docs/OPTIMIZER.md).
#[derive(clap::Args, Clone, Copy, Debug)]
struct OptLevel {
    /// Optimization level: -O0 off, -O1 the e-graph optimizer (default).
    #[arg(short = 'O', default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    opt_level: u8,
}

/// Exit codes, as documented.
mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const UNKNOWN: u8 = 3;
    pub const RUNTIME: u8 = 4;
}

#[derive(Parser)]
#[command(name = "tfc", version, about = "Compile small programs into transformer weights, and prove them right")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse and check programs; print diagnostics like a compiler.
    Check {
        /// The `.ir` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a program on one input with the exact reference interpreter.
    Run {
        /// The `.ir` file.
        file: PathBuf,
        /// The input tokens, space-separated (BOS is added for you).
        #[arg(long, allow_hyphen_values = true)]
        input: String,
        /// Print every value at every position.
        #[arg(long)]
        trace: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Print this value instead of the program's output (`%name` or `name`).
        #[arg(long)]
        output: Option<String>,
        /// Run the compiled transformer instead of the interpreter.
        #[arg(long)]
        compiled: bool,
        /// Arithmetic for the compiled run: exact (hard attention), f64, f32, f16, bf16 (softmax).
        #[arg(long, default_value = "exact")]
        format: String,
        /// Softmax inverse temperature for floating-point runs [default: the model's own (set by
        /// `tfc compile --target`), else 100].
        #[arg(long)]
        beta: Option<f64>,
        /// Run this stored model (JSON from `tfc compile -o`) instead of compiling the program.
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        opt: OptLevel,
    },
    /// Compile a program to transformer weights.
    Compile {
        /// The `.ir` file.
        file: PathBuf,
        /// Write the model as JSON (exact rationals as strings).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print sizes: layers, heads, MLPs, d_model, hidden widths, parameters.
        #[arg(long)]
        stats: bool,
        /// With --stats: as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        opt: OptLevel,
        /// Print egg's explanation of the rewrite chain from the source to the optimized program.
        #[arg(long)]
        explain: bool,
        /// Certified lowering: choose the width decoders and the softmax inverse temperature so that
        /// the analytic precision bound holds in this format (f32, f16, bf16, fp8e4m3, fp8e5m2) up to
        /// the longest length, and say how far that is (exit 1 if short of max_len).
        #[arg(long, value_name = "FORMAT")]
        target: Option<String>,
        /// Compile with this max_len instead of the program's.
        #[arg(long)]
        max_len: Option<usize>,
    },
    /// Compile (or load) and prove every block step-equivalent to the program.
    Verify {
        /// The `.ir` file.
        file: PathBuf,
        /// Verify this stored model instead of compiling the program.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Write every solver query as an SMT-LIB2 file into this directory.
        #[arg(long)]
        emit_smt: Option<PathBuf>,
        /// Timeout per solver query, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u32,
        /// Most value combinations one block check enumerates.
        #[arg(long, default_value_t = 200_000)]
        enum_limit: usize,
        /// Inputs for the differential run (evidence, reported apart from proofs).
        #[arg(long, default_value_t = 2_000)]
        evidence_inputs: usize,
        /// The most seconds the differential run may take.
        #[arg(long, default_value_t = 10.0)]
        evidence_seconds: f64,
        /// At -O1: prove the optimized program equal to the source by running both on every
        /// input when there are at most this many (docs/VERIFY.md, "Optimized models").
        #[arg(long, default_value_t = pipeline::DEFAULT_LINK_INPUTS)]
        link_inputs: usize,
        #[command(flatten)]
        opt: OptLevel,
    },
    /// Print one stage of the pipeline readably.
    Show {
        /// The `.ir` file.
        file: PathBuf,
        /// program (the one lowered: optimized at -O1), plan, schedule, layout or weights.
        #[arg(long, default_value = "schedule")]
        stage: String,
        #[command(flatten)]
        opt: OptLevel,
    },
    /// Run every corpus file's expectations.
    Test {
        /// Files or directories (default: corpus/).
        paths: Vec<PathBuf>,
        /// Rewrite the outputs of `; run:` lines that disagree (deliberate changes only).
        #[arg(long)]
        bless: bool,
        /// The level the `; run:` and `; verify:` lines are checked at (`; stats:` is always
        /// -O1's figures, `; stats-O0:` -O0's).
        #[command(flatten)]
        opt: OptLevel,
    },
    /// Precision report: where softmax in each float format stops matching hard attention.
    Precision {
        /// The `.ir` file.
        file: PathBuf,
        /// Formats, comma-separated.
        #[arg(long, default_value = "f32,f16,bf16,fp8e4m3,fp8e5m2")]
        formats: String,
        /// Softmax inverse temperature [default: the model's own (set by --target), else 100].
        #[arg(long)]
        beta: Option<f64>,
        /// Compile with this max_len instead of the program's.
        #[arg(long)]
        max_len: Option<usize>,
        /// Report on the model `tfc compile --target FORMAT` builds instead of the default lowering.
        #[arg(long, value_name = "FORMAT")]
        target: Option<String>,
        /// Random inputs per length for the observed runs.
        #[arg(long, default_value_t = 50)]
        random: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Write an SVG plot of output errors against length.
        #[arg(long)]
        plot: Option<PathBuf>,
        #[command(flatten)]
        opt: OptLevel,
    },
    /// Export the compiled model: dense f32 safetensors plus a JSON config.
    Export {
        /// The `.ir` file.
        file: PathBuf,
        /// Write `model.safetensors` and `config.json` into this directory (created if missing).
        #[arg(long, value_name = "OUT_DIR")]
        safetensors: PathBuf,
        /// The softmax inverse temperature recorded in the config.
        #[arg(long, default_value_t = DEFAULT_BETA)]
        beta: f64,
        #[command(flatten)]
        opt: OptLevel,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Check { files, json } => cmd_check(&files, json),
        Cmd::Run { file, input, trace, json, output, compiled, format, beta, model, opt } => {
            if compiled || model.is_some() || format != "exact" {
                cmd_run_compiled(&file, &input, json, &format, beta, model.as_deref(), opt.opt_level)
            } else {
                cmd_run(&file, &input, trace, json, output.as_deref())
            }
        }
        Cmd::Compile { file, output, stats, json, opt, explain, target, max_len } => {
            cmd_compile(&file, output.as_deref(), stats, json, opt.opt_level, explain, target.as_deref(), max_len)
        }
        Cmd::Show { file, stage, opt } => cmd_show(&file, &stage, opt.opt_level),
        Cmd::Verify { file, model, json, emit_smt, timeout_ms, enum_limit, evidence_inputs, evidence_seconds, link_inputs, opt } => {
            let opts = tfc_verifier::Options { timeout_ms, enum_limit, emit_smt, evidence_inputs, evidence_seconds };
            cmd_verify(&file, model.as_deref(), json, &opts, opt.opt_level, link_inputs)
        }
        Cmd::Test { paths, bless, opt } => cmd_test(paths, bless, opt.opt_level),
        Cmd::Export { file, safetensors, beta, opt } => cmd_export(&file, &safetensors, beta, opt.opt_level),
        Cmd::Precision { file, formats, beta, max_len, target, random, json, plot, opt } => {
            cmd_precision(&file, &formats, beta, max_len, target.as_deref(), random, json, plot.as_deref(), opt.opt_level)
        }
    };
    ExitCode::from(code)
}

/// A source file read, parsed and checked, or the diagnostics that stopped it.
struct Loaded {
    path: String,
    src: String,
    result: Result<Checked, Vec<Diagnostic>>,
}

fn load(path: &Path) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    match tfc_ir::parse_bytes(&bytes) {
        Err(d) => Ok(Loaded { path: shown, src: String::from_utf8_lossy(&bytes).into_owned(), result: Err(vec![d]) }),
        Ok((src, prog)) => Ok(Loaded { path: shown, src, result: check(&prog) }),
    }
}

/// Loads and checks, rendering diagnostics; `Err(exit code)` when it does not check.
fn load_checked(path: &Path) -> Result<(Loaded, Checked), u8> {
    let loaded = load(path).map_err(|e| {
        eprintln!("error: {e}");
        exit::BAD_INPUT
    })?;
    match &loaded.result {
        Ok(c) => {
            render::emit(&loaded.path, &loaded.src, &c.warnings);
            let c = c.clone();
            Ok((loaded, c))
        }
        Err(ds) => {
            render::emit(&loaded.path, &loaded.src, ds);
            let n = ds.iter().filter(|d| d.is_error()).count();
            eprintln!("error: {} does not check ({n} error{})", loaded.path, if n == 1 { "" } else { "s" });
            Err(exit::BAD_INPUT)
        }
    }
}

fn cmd_check(files: &[PathBuf], json: bool) -> u8 {
    let mut worst = exit::OK;
    let mut all = Vec::new();
    for f in files {
        let loaded = match load(f) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                worst = exit::BAD_INPUT;
                continue;
            }
        };
        let (diags, ok) = match &loaded.result {
            Ok(c) => (c.warnings.clone(), true),
            Err(ds) => (ds.clone(), false),
        };
        if !ok {
            worst = exit::BAD_INPUT;
        }
        if json {
            all.push(serde_json::json!({
                "file": loaded.path,
                "ok": ok,
                "diagnostics": diags.iter().map(|d| render::to_json(&loaded.path, &loaded.src, d)).collect::<Vec<_>>(),
            }));
        } else {
            render::emit(&loaded.path, &loaded.src, &diags);
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.len() - errors;
            if ok {
                let c = loaded.result.as_ref().expect("ok");
                println!("{}: ok ({} definitions, {warnings} warning{})", loaded.path, c.order.len(), plural(warnings));
            } else {
                println!("{}: {errors} error{}, {warnings} warning{}", loaded.path, plural(errors), plural(warnings));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).expect("json"));
    }
    worst
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads `--input` as tokens of the program's vocabulary.
fn read_input(text: &str, vocab: &[Value]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let v = parse_value(word).ok_or_else(|| format!("cannot read `{word}` as a token"))?;
        // A word like `1` reads as a number; a vocabulary of quoted symbols may mean the symbol.
        let v = if !vocab.contains(&v) && vocab.contains(&Value::sym(word)) { Value::sym(word) } else { v };
        out.push(v);
    }
    Ok(out)
}

fn cmd_run(file: &Path, input: &str, trace: bool, json: bool, output: Option<&str>) -> u8 {
    let (loaded, checked) = match load_checked(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let prog = &checked.program;
    let tokens = match read_input(input, &prog.vocab) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error[E0601]: {e}");
            return exit::BAD_INPUT;
        }
    };
    let wanted = output.map(|o| o.trim_start_matches('%').to_string());
    if let Some(name) = &wanted {
        let is_value = checked.get(name).is_some_and(|i| i.set().is_some() && !matches!(i.scope, tfc_ir::check::Scope::LoopBody(_)));
        if !is_value {
            let names: Vec<String> = checked
                .order
                .iter()
                .filter(|n| checked.get(n).is_some_and(|i| i.set().is_some() && !matches!(i.scope, tfc_ir::check::Scope::LoopBody(_))))
                .map(|n| format!("%{n}"))
                .collect();
            eprintln!("error: `%{name}` is not a value of {}; the values are: {}", loaded.path, names.join(", "));
            return exit::BAD_INPUT;
        }
    }
    let run = match interp::run(prog, &tokens, &interp::RunOptions { trace }) {
        Ok(r) => r,
        Err(d) => {
            // Runtime errors point into the program; show the input too.
            render::emit(&loaded.path, &loaded.src, std::slice::from_ref(&d));
            eprintln!("  on input: {}", fmt_seq(&tokens));
            return if d.code == tfc_ir::diag::codes::BAD_INPUT { exit::BAD_INPUT } else { exit::RUNTIME };
        }
    };
    let shown = match &wanted {
        None => run.output.clone(),
        Some(name) => match run.values.get(name) {
            Some(v) => v.clone(),
            None => {
                eprintln!("error: `%{name}` is local to a loop body; ask for a state variable or a top-level value");
                return exit::BAD_INPUT;
            }
        },
    };
    if json {
        let seq = |v: &[Value]| v.iter().map(|x| serde_json::Value::String(x.to_string())).collect::<Vec<_>>();
        let mut obj = serde_json::json!({
            "program": prog.name,
            "input": seq(&tokens),
            "output": seq(&shown),
            "output_name": wanted.clone().unwrap_or_else(|| prog.output.text.clone()),
            "loop_iterations": run.iterations,
        });
        if trace {
            obj["trace"] = run
                .trace
                .iter()
                .map(|t| serde_json::json!({"name": t.name, "iteration": t.iteration, "values": seq(&t.values)}))
                .collect();
        }
        println!("{}", serde_json::to_string_pretty(&obj).expect("json"));
    } else {
        if trace {
            print_trace(&tokens, &run.trace);
        }
        println!("{}", fmt_seq(&shown));
    }
    exit::OK
}

fn print_trace(tokens: &[Value], trace: &[interp::TraceEntry]) {
    let label = |t: &interp::TraceEntry| match t.iteration {
        Some(i) => format!("%{}[iter {i}]", t.name),
        None => format!("%{}", t.name),
    };
    let width = trace.iter().map(|t| label(t).len()).max().unwrap_or(0).max(8);
    let cells: Vec<usize> = (0..tokens.len())
        .map(|i| {
            trace
                .iter()
                .map(|t| t.values.get(i).map_or(0, |v| v.to_string().len()))
                .max()
                .unwrap_or(0)
                .max(tokens[i].to_string().len())
                .max(format!("{i}").len())
        })
        .collect();
    let row = |name: &str, vals: Vec<String>| {
        let mut s = format!("{name:<width$} | {:<3}", if name == "position" { "0" } else if name == "input" { "BOS" } else { "" });
        for (i, v) in vals.iter().enumerate() {
            s.push_str(&format!(" {:>w$}", v, w = cells[i]));
        }
        println!("{}", s.trim_end());
    };
    row("position", (1..=tokens.len()).map(|i| i.to_string()).collect());
    row("input", tokens.iter().map(|t| t.to_string()).collect());
    for t in trace {
        row(&label(t), t.values.iter().map(|v| v.to_string()).collect());
    }
}

fn cmd_test(paths: Vec<PathBuf>, bless: bool, opt_level: u8) -> u8 {
    let paths = if paths.is_empty() { vec![PathBuf::from("corpus")] } else { paths };
    for p in &paths {
        if !p.exists() {
            eprintln!("error: {} does not exist", p.display());
            return exit::BAD_INPUT;
        }
    }
    let files = corpus::collect(&paths);
    if files.is_empty() {
        eprintln!("error: no .ir files under {}", paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
        return exit::BAD_INPUT;
    }
    let (mut passed, mut failed, mut checks) = (0, 0, 0);
    for f in &files {
        let rep = corpus::run_file(f, bless, opt_level);
        checks += rep.checks_passed;
        if let Some(new) = &rep.blessed {
            match std::fs::write(f, new) {
                Ok(()) => println!("blessed {}", f.display()),
                Err(e) => eprintln!("error: cannot bless {}: {e}", f.display()),
            }
        }
        if rep.failures.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            for (line, msg) in &rep.failures {
                println!("FAIL {}:{line}: {msg}", f.display());
            }
        }
    }
    println!("{checks} expectations held across {} files", files.len());
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// Loads, checks and compiles at `opt_level` (every command that compiles
/// goes through here): the loaded file, the source program, and the
/// compiled model with the program it computes (`CompiledWith::checked`:
/// the optimized program at -O1, unless the optimizer kept the source).
fn load_and_compile(file: &Path, opt_level: u8) -> Result<(Loaded, Checked, tfc_compiler::CompiledWith), u8> {
    let (loaded, checked) = load_checked(file)?;
    let with = pipeline::compile_at(&loaded.path, &checked, opt_level, false)?;
    Ok((loaded, checked, with))
}

#[allow(clippy::too_many_arguments)]
fn cmd_compile(file: &Path, out: Option<&Path>, stats: bool, json: bool, opt_level: u8, explain: bool, target: Option<&str>, max_len: Option<usize>) -> u8 {
    let (loaded, checked) = match load_checked(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let checked = match with_max_len(&loaded, checked, max_len) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let target = match target.map(parse_float_format).transpose() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut code = exit::OK;
    let with = match target {
        None => match pipeline::compile_at(&loaded.path, &checked, opt_level, explain) {
            Ok(c) => c,
            Err(code) => return code,
        },
        Some(f) => {
            let opts = tfc_compiler::CompileOptions { opt_level, explain, ..Default::default() };
            let c = match target::certify(&checked, &opts, f) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error[{}]: {}: {e}", e.code(), loaded.path);
                    return exit::BAD_INPUT;
                }
            };
            let max = c.with.compiled.model.max_len;
            let how = format!("softmax beta {}, width decoder {}, -O{}", c.beta, format!("{:?}", c.decoder).to_lowercase(), c.opt_level);
            if stats && !json {
                let row: Vec<String> = c.candidates.iter().map(|(d, b, n, _)| format!("{d:?}/{b}:{n}").to_lowercase()).collect();
                println!("target {}: analytic safe length per decoder/beta: {}", c.format.name(), row.join(" "));
            }
            if c.safe_len >= max {
                eprintln!("target {}: certified correct up to max_len {max} ({how})", f.name());
            } else {
                eprintln!("target {}: cannot certify up to max_len {max}: the best choice ({how}) is proved only up to length {}", f.name(), c.safe_len);
                if let Some(why) = &c.limited_by {
                    eprintln!("  = limited by {why}");
                }
                eprintln!("  = the model is still exact under hard attention and is written as asked");
                code = exit::FAILED;
            }
            c.with
        }
    };
    if let Some(r) = &with.report {
        if explain {
            match &r.explanation {
                Some(x) => {
                    println!("; rewrite chain (egg explanation), source output to optimized output:");
                    println!("{x}");
                    for l in &r.legend {
                        println!(";   {l}");
                    }
                }
                None => println!("; no explanation: {}", r.fallback.as_deref().unwrap_or("nothing was rewritten")),
            }
        }
        if stats && !json {
            let rules: Vec<String> = r.rules.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            println!(
                "optimizer: {}; {}; stop: {}; {} iterations, {} e-nodes, saturation {:.2} ms, total {:.2} ms; instructions {} -> {}; rules [{}]",
                if r.optimized { "optimized" } else { "kept the source" },
                r.fallback.as_deref().unwrap_or(&r.validation),
                r.stop,
                r.iterations,
                r.egraph_nodes,
                r.saturation_ms,
                r.total_ms,
                r.instructions.0,
                r.instructions.1,
                rules.join(", ")
            );
            let (b, a) = (&with.before, &with.after);
            println!(
                "before (-O0): layers {}, heads {}, mlps {}, d_model {}, params {}; after: layers {}, heads {}, mlps {}, d_model {}, params {}",
                b.layers, b.heads, b.mlps, b.d_model, b.params, a.layers, a.heads, a.mlps, a.d_model, a.params
            );
        }
    }
    let compiled = with.compiled;
    let m = &compiled.model;
    if let Some(o) = out {
        if let Err(e) = std::fs::write(o, m.to_json()) {
            eprintln!("error: cannot write {}: {e}", o.display());
            return exit::BAD_INPUT;
        }
    }
    if stats || out.is_none() {
        let s = m.stats();
        if json {
            println!("{}", serde_json::to_string_pretty(&s).expect("json"));
        } else {
            println!(
                "{}: layers {}, heads {}, mlps {}, d_model {}, hidden [{}], params {}",
                m.program,
                s.layers,
                s.heads,
                s.mlps,
                s.d_model,
                s.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                s.params
            );
        }
    }
    code
}

/// A float format named on the command line.
fn parse_float_format(f: &str) -> Result<tfc_ir::forward::Format, u8> {
    use tfc_ir::forward::Format;
    match f.trim().parse::<Format>() {
        Ok(Format::Exact) | Err(_) => {
            eprintln!("error: `{f}` is not a float format (f64, f32, f16, bf16, fp8e4m3, fp8e5m2)");
            Err(exit::BAD_INPUT)
        }
        Ok(x) => Ok(x),
    }
}

/// The program re-checked with another max_len (`--max-len`).
fn with_max_len(loaded: &Loaded, checked: Checked, max_len: Option<usize>) -> Result<Checked, u8> {
    let Some(n) = max_len else { return Ok(checked) };
    let mut prog = checked.program.clone();
    prog.max_len = n;
    check(&prog).map_err(|ds| {
        render::emit(&loaded.path, &loaded.src, &ds);
        exit::BAD_INPUT
    })
}

fn cmd_run_compiled(file: &Path, input: &str, json: bool, format: &str, beta: Option<f64>, model: Option<&Path>, opt_level: u8) -> u8 {
    use tfc_ir::forward::{run_model_in, Attention, Format};
    let (loaded, checked) = match load_checked(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let fmt: Format = match format.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if beta.is_some_and(|b| !(b.is_finite() && b > 0.0)) {
        eprintln!("error: --beta must be a positive finite number");
        return exit::BAD_INPUT;
    }
    let m = match model {
        Some(p) => match read_model(p) {
            Ok(m) if m.program != checked.program.name || m.vocab != checked.program.vocab || m.max_len != checked.program.max_len => {
                eprintln!(
                    "error: {} is a model of `{}` (vocab of {}, max_len {}), not of {} (`{}`)",
                    p.display(),
                    m.program,
                    m.vocab.len(),
                    m.max_len,
                    loaded.path,
                    checked.program.name
                );
                return exit::BAD_INPUT;
            }
            Ok(m) => m,
            Err(code) => return code,
        },
        None => match pipeline::compile_at(&loaded.path, &checked, opt_level, false) {
            Ok(w) => w.compiled.model,
            Err(code) => return code,
        },
    };
    let tokens = match read_input(input, &checked.program.vocab) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error[E0601]: {e}");
            return exit::BAD_INPUT;
        }
    };
    let beta = beta.or(m.softmax_beta.as_ref().and_then(num_traits::ToPrimitive::to_f64)).unwrap_or(DEFAULT_BETA);
    let attn = if fmt == Format::Exact { Attention::Hard } else { Attention::Softmax { beta } };
    match run_model_in(fmt, &m, &tokens, attn) {
        Ok(r) => {
            if json {
                let seq = |v: &[Value]| v.iter().map(|x| serde_json::Value::String(x.to_string())).collect::<Vec<_>>();
                let obj = serde_json::json!({
                    "program": m.program, "format": fmt.name(), "beta": if fmt == Format::Exact { None } else { Some(beta) },
                    "input": seq(&tokens), "output": seq(&r.outputs), "loop_iterations": r.loop_iterations,
                });
                println!("{}", serde_json::to_string_pretty(&obj).expect("json"));
            } else {
                println!("{}", fmt_seq(&r.outputs));
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: the model failed on input `{}`: {e}", fmt_seq(&tokens));
            exit::RUNTIME
        }
    }
}

fn cmd_show(file: &Path, stage: &str, opt_level: u8) -> u8 {
    let (_, _, with) = match load_and_compile(file, opt_level) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let compiled = &with.compiled;
    match stage {
        "program" => print!("{}", tfc_ir::print(&with.checked.program)),
        "plan" => print!("{}", compiled.plan),
        "schedule" => print!("{}", tfc_compiler::schedule::describe(&compiled.plan, &compiled.schedule)),
        "layout" => print!("{}", compiled.layout),
        "weights" => print!("{}", show::weights(&compiled.model, &with.checked)),
        other => {
            eprintln!("error: unknown stage `{other}` (program, plan, schedule, layout, weights)");
            return exit::BAD_INPUT;
        }
    }
    exit::OK
}

fn cmd_export(file: &Path, dir: &Path, beta: f64, opt_level: u8) -> u8 {
    if !(beta.is_finite() && beta > 0.0) {
        eprintln!("error: --beta must be a positive finite number");
        return exit::BAD_INPUT;
    }
    let (loaded, checked, with) = match load_and_compile(file, opt_level) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let compiled = with.compiled;
    let rules = tfc_compiler::export::InputRules::of(&checked.program);
    match tfc_compiler::export::export_safetensors_with(&compiled.model, beta, rules, dir) {
        Ok(s) => {
            println!(
                "{}: wrote {} ({} tensors, {} f32 parameters) and {}",
                compiled.model.program,
                s.weights.display(),
                s.tensors,
                s.params,
                s.config.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {}: {e}", loaded.path);
            exit::BAD_INPUT
        }
    }
}

/// Reads a stored model and checks that it belongs to the program.
fn read_model(p: &Path) -> Result<tfc_ir::model::Model, u8> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", p.display());
        exit::BAD_INPUT
    })?;
    tfc_ir::model::Model::from_json(&text).map_err(|e| {
        eprintln!("error: {}: {e}", p.display());
        exit::BAD_INPUT
    })
}

fn cmd_verify(file: &Path, model: Option<&Path>, json: bool, opts: &tfc_verifier::Options, opt_level: u8, link_inputs: usize) -> u8 {
    use tfc_verifier::Verdict;
    let (loaded, checked) = match load_checked(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // The model: stored, or compiled at the requested level.
    let (stored, compiled) = match model {
        Some(p) => match read_model(p) {
            Ok(m) => (Some(m), None),
            Err(code) => return code,
        },
        None => match pipeline::compile_at(&loaded.path, &checked, opt_level, false) {
            Ok(w) => (None, Some(w)),
            Err(code) => return code,
        },
    };
    let layers = stored.as_ref().or(compiled.as_ref().map(|w| &w.compiled.model)).map_or(0, |m| m.layers.len());
    // A spinner on long runs, on a terminal only (never in pipes or CI logs).
    let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!("verifying {} ({layers} layers)", checked.program.name));
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    });
    let result = match (&stored, &compiled) {
        (Some(m), _) => pipeline::verify_stored(&checked, m, opt_level, opts, link_inputs),
        (None, Some(w)) => pipeline::verify_compiled(&checked, w, opt_level, opts, link_inputs),
        (None, None) => unreachable!("a model is stored or compiled"),
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    let sv = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let report = &sv.report;
    if json {
        println!("{}", serde_json::to_string_pretty(&sv).expect("json"));
    } else {
        let level = match (sv.opt_level, &compiled) {
            (Some(l), Some(w)) => match &w.report {
                Some(r) if r.optimized => format!("-O{l}, optimized: {}", r.validation),
                Some(r) => format!("-O{l}, the optimizer kept the source: {}", r.fallback.as_deref().unwrap_or("no change")),
                None => format!("-O{l}"),
            },
            _ => "stored model".to_string(),
        };
        let against = if sv.proved_against == "source" { "the source program" } else { "the optimized program" };
        println!("verify {} ({}) [{level}]", loaded.path, report.program);
        println!("blocks checked against {against}:");
        for b in &report.blocks {
            let layer = b.layer.map_or("-".to_string(), |l| l.to_string());
            println!(
                "  layer {layer:>2}  {:<10} {:<28} {:<12} {:<8} {:>8.1} ms  {}",
                b.kind,
                truncate(&b.instructions.join(", "), 28),
                truncate(&b.method, 12),
                b.verdict.to_string(),
                b.time_ms,
                b.detail
            );
        }
        if let Some(c) = &report.counterexample {
            println!("counterexample:");
            println!("  input       {}", c.input.join(" "));
            println!("  position    {}", c.position);
            println!("  expected    {} (interpreter)", c.expected);
            println!("  actual      {} (model)", c.actual);
            println!("  block       {} [{}]", c.block, c.instruction);
            println!("  failed      {}", c.check);
        }
        let ev = &report.evidence;
        println!(
            "evidence: {} inputs run against the interpreter ({}), {} mismatches, {} skipped",
            ev.inputs,
            if ev.exhaustive { "all admitted inputs" } else { "sampled" },
            ev.mismatches,
            ev.skipped
        );
        let smt = report.smt_files.len() + sv.source_smt_files.len();
        if smt > 0 {
            println!("smt: {smt} queries written");
        }
        println!("source: {}", sv.link);
        let (p, r, u) = report.counts();
        println!("{} against {against}: {p} proved, {r} refuted, {u} unknown", report.verdict);
        println!("{}: {}", sv.verdict, match sv.verdict {
            Verdict::Proved => "the model computes the source program on every input",
            Verdict::Refuted => "the model does not compute the source program",
            Verdict::Unknown => "not proved for the source program (unknown is never success)",
        });
        // The precision summary, of the model against the program it computes.
        use tfc_ir::forward::Format;
        let formats = [Format::F32, Format::F16, Format::Bf16, Format::Fp8E4M3, Format::Fp8E5M2];
        let line = match (&stored, &compiled) {
            (_, Some(w)) => precision_summary(&w.checked, &w.compiled.model, &formats),
            (Some(m), None) => {
                let direct = precision_summary(&checked, m, &formats);
                if direct.starts_with("precision: not analysed") && opt_level == 1 {
                    let o = tfc_compiler::optimize::optimize(&checked, &tfc_compiler::optimize::Limits::from_env(), false);
                    precision_summary(&o.checked, m, &formats)
                } else {
                    direct
                }
            }
            (None, None) => unreachable!("a model is stored or compiled"),
        };
        println!("{line}");
    }
    match sv.verdict {
        Verdict::Proved => exit::OK,
        Verdict::Refuted => exit::FAILED,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

/// The one-line precision summary at the model's own β (set by `--target`), else the default.
fn precision_summary(c: &Checked, m: &tfc_ir::model::Model, formats: &[tfc_ir::forward::Format]) -> String {
    let beta = m.softmax_beta.as_ref().and_then(num_traits::ToPrimitive::to_f64).unwrap_or(DEFAULT_BETA);
    tfc_verifier::precision::summary_line(c, m, formats, beta)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[allow(clippy::too_many_arguments)]
fn cmd_precision(file: &Path, formats: &str, beta: Option<f64>, max_len: Option<usize>, target: Option<&str>, random: usize, json: bool, plot: Option<&Path>, opt_level: u8) -> u8 {
    let (loaded, checked) = match load_checked(file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let checked = match with_max_len(&loaded, checked, max_len) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut fmts = Vec::new();
    for f in formats.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match parse_float_format(f) {
            Ok(x) => fmts.push(x),
            Err(code) => return code,
        }
    }
    if let Some(b) = beta {
        if !(b.is_finite() && b > 0.0) {
            eprintln!("error: --beta must be finite and positive");
            return exit::BAD_INPUT;
        }
    }
    let target = match target.map(parse_float_format).transpose() {
        Ok(t) => t,
        Err(code) => return code,
    };
    // The report reads the model against the program it computes (the optimized one at -O1).
    let (checked, compiled) = match target {
        None => match pipeline::compile_at(&loaded.path, &checked, opt_level, false) {
            Ok(w) => (w.checked, w.compiled),
            Err(code) => return code,
        },
        Some(f) => match target::certify(&checked, &tfc_compiler::CompileOptions { opt_level, ..Default::default() }, f) {
            Ok(c) => (c.with.checked, c.with.compiled),
            Err(e) => {
                eprintln!("error[{}]: {}: {e}", e.code(), loaded.path);
                return exit::BAD_INPUT;
            }
        },
    };
    let model_beta = compiled.model.softmax_beta.as_ref().and_then(|b| num_traits::ToPrimitive::to_f64(b));
    let beta = beta.or(model_beta).unwrap_or(DEFAULT_BETA);
    let r = match tfc_verifier::precision::report(&checked, &compiled.model, &fmts, beta, random) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if let Some(p) = plot {
        if let Err(e) = std::fs::write(p, tfc_verifier::precision::plot_svg(&r)) {
            eprintln!("error: cannot write {}: {e}", p.display());
            return exit::BAD_INPUT;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
        return exit::OK;
    }
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |b| format!("{b:.3}"));
    println!("precision {} ({}), max_len {}, softmax beta {}", loaded.path, r.program, r.max_len, r.beta);
    if let Some(u) = &r.unsupported {
        println!("  analytic bounds not computed: {u}");
    }
    println!("heads:");
    println!("  {:<5} {:<4} {:<24} {:<6} {:>6} {:>8} {:>8} {:>5} {:>10} {:>5}  safe length per format", "layer", "head", "instruction", "kind", "gap", "max|s|", "max|v|", "keys", "min beta", "bits");
    for h in &r.heads {
        let per: Vec<String> = h.analytic_max_len.iter().map(|(f, n)| format!("{f}:{n}")).collect();
        println!(
            "  {:<5} {:<4} {:<24} {:<6} {:>6} {:>8} {:>8} {:>5} {:>10} {:>5}  {}",
            h.layer,
            h.head,
            truncate(&h.instruction, 24),
            format!("{:?}", h.kind).to_lowercase(),
            h.gap,
            h.max_score,
            h.max_value,
            h.max_keys,
            opt(h.min_beta),
            h.min_mantissa_bits.map_or("-".into(), |b| b.to_string()),
            per.join(" ")
        );
    }
    println!("formats:");
    println!("  {:<8} {:>4} {:>9} {:>10}  {:<40}  limited by", "format", "bits", "analytic", "min beta", "observed first failure");
    for f in &r.formats {
        let obs = match &f.observed_first_failure {
            None => "none".to_string(),
            Some(x) => format!("len {} on `{}` (pos {}: {} not {})", x.len, x.input.join(" "), x.position, x.actual, x.expected),
        };
        println!(
            "  {:<8} {:>4} {:>9} {:>10}  {:<40}  {}",
            f.format,
            f.mantissa_bits,
            f.analytic_max_len,
            opt(f.min_beta),
            obs,
            f.limited_by.as_deref().unwrap_or("-")
        );
    }
    println!(
        "model: weakest head {}; proved correct up to max_len in [{}]; observed correct in [{}]; min mantissa bits {}; min beta (exact arithmetic) {}",
        r.weakest_head.as_deref().unwrap_or("-"),
        r.analytic_ok.join(", "),
        r.observed_ok.join(", "),
        r.min_mantissa_bits.map_or("-".into(), |b| b.to_string()),
        opt(r.min_beta)
    );
    exit::OK
}
