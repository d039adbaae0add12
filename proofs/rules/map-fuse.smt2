; rule `map-fuse` (compiler/src/optimize/rules.rs): map f (map g a) => map (f . g) a
; side condition: none; (f . g) is built by substituting g for x in f, or tabulated with the evaluator over set(a)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun f (V) V)
(declare-fun g (V) V)
(define-fun fg ((x V)) V (f (g x)))
(declare-const a V)
(assert (not (= (f (g a)) (fg a))))
(check-sat)
