; rule `singleton-const` (compiler/src/optimize/rules.rs): v => const c
; side condition: set(v) = {c}: the analysis set is a sound over-approximation of v at every position of every input (the checker transfer functions, and intersections of sound sets)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun inset (V) Bool)
(declare-const c V)
(declare-const v V)
; set(v) = {c}
(assert (forall ((w V)) (= (inset w) (= w c))))
; v's value at some position is in its set
(assert (inset v))
(assert (not (= v c)))
(check-sat)
