; rule `seqmap-const-right` (compiler/src/optimize/rules.rs): seqmap g a b => map g(_, c) a
; side condition: set(b) = {c}, so b = c at every position
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun g (V V) V)
(declare-const c V)
(define-fun h ((x V)) V (g x c))
(declare-const a V)
(declare-const b V)
(assert (= b c))
(assert (not (= (g a b) (h a))))
(check-sat)
