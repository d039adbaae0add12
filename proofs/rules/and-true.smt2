; rule `and-true` (compiler/src/optimize/rules.rs): and s t => s (or t, symmetrically)
; side condition: t (or s) is true on every (key, query) pair of the value sets
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic QF_UF)
(declare-const s Bool)
(declare-const t Bool)
(assert t)
(assert (not (= (and s t) s)))
(check-sat)
