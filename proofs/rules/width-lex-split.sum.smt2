; rule `width-lex-split` (compiler/src/optimize/rules.rs), step 2 of 2: summed over the keys
; width (select k, k, p) => seqmap { x + y } (width s1) (width s2)
; side condition: at every (key, query) pair, [p] = [s1] + [s2] (step 1,
; width-lex-split.pointwise.smt2)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain.
; expected: unsat
; A width at query i counts the visible keys its selector selects: W(0) = 0,
; W(n+1) = W(n) + ite(s(n), 1, 0), over the same visible keys for all three
; selectors (the m tokens, or j <= i under causal). By induction on n,
; W(n) = W1(n) + W2(n): the base is 0 = 0 + 0, the step is below; so the
; width of p is the sum of the two widths, which `{ x + y }` adds.
(set-logic QF_LIA)
(declare-const W Int)
(declare-const W1 Int)
(declare-const W2 Int)
(declare-const i Int)
(declare-const i1 Int)
(declare-const i2 Int)
; the indicators of one key under p, s1, s2
(assert (and (or (= i 0) (= i 1)) (or (= i1 0) (= i1 1)) (or (= i2 0) (= i2 1))))
(assert (= i (+ i1 i2)))
(assert (not (and
  ; base
  (= 0 (+ 0 0))
  ; step
  (=> (= W (+ W1 W2)) (= (+ W i) (+ (+ W1 i1) (+ W2 i2)))))))
(check-sat)
