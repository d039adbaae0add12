; rule `not-not` (compiler/src/optimize/rules.rs): not (not s) => s
; side condition: none
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic QF_UF)
(declare-const s Bool)
(assert (not (= (not (not s)) s)))
(check-sat)
