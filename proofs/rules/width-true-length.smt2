; rule `width-true-length` (compiler/src/optimize/rules.rs): width s => length
; side condition: s selects every key on the value sets (selector-all-true)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
; width at query i counts the visible keys s selects: W(0) = 0,
; W(n+1) = W(n) + ite(s(n), 1, 0) over the n visible keys, which are the m
; tokens (or the i + 1 keys j <= i under causal, exactly what `length` is
; there). By induction on n, W(n) = n when s is true everywhere: base and
; step below; so width = number of visible keys = length.
(set-logic QF_LIA)
(declare-const n Int)
(declare-const Wn Int)
(declare-const sn Bool)
(assert (>= n 0))
(assert (not (and
  ; base
  (= 0 0)
  ; step: W(n) = n and s(n) holds => W(n+1) = n + 1
  (=> (and (= Wn n) sn) (= (+ Wn (ite sn 1 0)) (+ n 1)))
)))
(check-sat)
