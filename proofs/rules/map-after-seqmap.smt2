; rule `map-after-seqmap` (compiler/src/optimize/rules.rs): map f (seqmap g a b) => seqmap (f . g) a b
; side condition: a or b is cat (a lowering limit, not a soundness one)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun f (V) V)
(declare-fun g (V V) V)
(define-fun fg ((x V) (y V)) V (f (g x y)))
(declare-const a V)
(declare-const b V)
(assert (not (= (f (g a b)) (fg a b))))
(check-sat)
