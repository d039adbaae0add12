; rule `linear-normalise` (compiler/src/optimize/rules.rs): a body e => its linear normal form lin(e) (compiler/src/optimize/simplify.rs)
; side condition: the original body is defined on its input set (the checker showed it); atoms are any non-linear sub-expressions
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; this file: step `neg` of lin
; expected: unsat
; lin reads a body as c + sum_i r_i * atom_i. Every step of lin is one of
; the identities of these files over two atoms u, v with symbolic coefficients (a
; linear form over more atoms is the same identity term by term); each
; file proves one of them valid over the rationals (its negation is
; unsat); the steps are add, sub, neg, scale, div, drop-zero, rebuild.
(set-logic QF_NRA)
(declare-const u Real)
(declare-const v Real)
(declare-const a1 Real) (declare-const b1 Real) (declare-const c1 Real)
(declare-const a2 Real) (declare-const b2 Real) (declare-const c2 Real)
(declare-const k Real)
(define-fun L1 () Real (+ (* a1 u) (* b1 v) c1))
(define-fun L2 () Real (+ (* a2 u) (* b2 v) c2))
(assert (not (= (- L1) (+ (* (- a1) u) (* (- b1) v) (- c1)))))
(check-sat)
