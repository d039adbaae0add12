; rule `narrow-to-set` (compiler/src/optimize/rules.rs): the analysis fact
; it narrows widths to (compiler/src/optimize/mod.rs, `Data::diag`)
; width s where s = select a, a, p (and and/or/not of such) with p(v, v) = d
; for every v in set(a): at query i the key at i itself is visible (causal
; or not) and selected exactly when d, so width >= 1 when d, and width <=
; max_len - 1 when not d
; expected: unsat
; The width at query i is own + others: own = ite(d, 1, 0) for the key at
; i, others = the count over the other visible keys, 0 <= others <= vis - 1,
; with 1 <= vis <= max_len visible keys (i itself among them).
(set-logic QF_LIA)
(declare-const d Bool)
(declare-const others Int)
(declare-const vis Int)
(declare-const n Int)
(assert (and (<= 1 vis) (<= vis n)))
(assert (and (<= 0 others) (<= others (- vis 1))))
(define-fun w () Int (+ (ite d 1 0) others))
(assert (not (and (=> d (and (>= w 1) (<= w n))) (=> (not d) (and (>= w 0) (<= w (- n 1)))))))
(check-sat)
