//! tfc's two IRs and their meaning.
//!
//! The **program IR** is a list of SSA instructions over sequences
//! ([`ast`]), written in a small text format ([`parse`], [`print`]),
//! checked for names, encodings and value sets ([`check`]), and given its
//! meaning by an exact interpreter ([`interp`]). The **model IR** is the
//! transformer: a labelled residual basis and exact rational weights
//! ([`model`]), with one forward pass generic over the scalar
//! ([`forward`]).
//!
//! **Architecture invariant:** nothing here depends on `egg` or `z3`, and
//! the program IR never uses floating point.

#![warn(missing_docs)]

pub mod ast;
pub mod check;
pub mod diag;
pub mod eval;
pub mod forward;
pub mod interp;
pub mod lexer;
pub mod model;
pub mod parser;
pub mod printer;
pub mod value;

pub use ast::*;
pub use check::{check, Checked};
pub use diag::{Diagnostic, Severity};
pub use parser::{parse, parse_bytes};
pub use printer::print;
pub use value::{Rat, Value, ValueSet};
