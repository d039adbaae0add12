; rule `narrow-to-set` (compiler/src/optimize/rules.rs), table form
; map/seqmap f a [b] in class C => map/seqmap t a [b], t(x, y) = f(x, y) if it is in S, else s0
; side condition: every value of C is in S (the e-class's analysis set),
; and f's value is C's value
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values are the uninterpreted sort V; f is uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun f (V V) V)
(declare-fun inS (V) Bool)
(declare-const s0 V)
(define-fun t ((x V) (y V)) V (ite (inS (f x y)) (f x y) s0))
(declare-const x V)
(declare-const y V)
(assert (inS (f x y)))
(assert (not (= (t x y) (f x y))))
(check-sat)
