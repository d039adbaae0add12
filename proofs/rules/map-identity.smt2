; rule `map-identity` (compiler/src/optimize/rules.rs): map { x } a => a
; side condition: the map and a have the same encoding
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(define-fun f ((x V)) V x)
(declare-const a V)
(assert (not (= (f a) a)))
(check-sat)
