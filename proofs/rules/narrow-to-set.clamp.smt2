; rule `narrow-to-set` (compiler/src/optimize/rules.rs), interval form
; map/seqmap f ... in class C => map/seqmap clamp(f) ..., clamp(v) = min(max(v, lo), hi)
; (or only the max, or only the min, for the bounds f can pass)
; side condition: every value of C is in S = {lo, ..., hi} (the e-class's
; analysis set: the intersection of its nodes' sound sets), and f's value
; is C's value, so v = f(...) is in S
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain.
; expected: unsat
(set-logic QF_LRA)
(declare-const v Real)
(declare-const lo Real)
(declare-const hi Real)
(define-fun mx ((a Real) (b Real)) Real (ite (>= a b) a b))
(define-fun mn ((a Real) (b Real)) Real (ite (<= a b) a b))
(assert (and (<= lo v) (<= v hi)))
(assert (not (and (= (mn (mx v lo) hi) v) (= (mx v lo) v) (= (mn v hi) v))))
(check-sat)
