; rule `or-false` (compiler/src/optimize/rules.rs): or s t => s (or t, symmetrically)
; side condition: t (or s) is false on every (key, query) pair of the value sets
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic QF_UF)
(declare-const s Bool)
(declare-const t Bool)
(assert (not t))
(assert (not (= (or s t) s)))
(check-sat)
