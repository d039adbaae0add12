; rule `width-lex-split` (compiler/src/optimize/rules.rs), step 1 of 2: at one (key, query) pair
; width (select k, k, p) with k = seqmap f a b
;   => seqmap { x + y } (width (select a, a, p1)) (width (and (select a, a, eq), (select b, b, p2)))
; side condition (checked by enumeration over set(a)^2 x set(b)^2, simplify::lex_split):
;   p(f(x, y), f(x', y')) == p1(x, x') || (x == x' && p2(y, y')), and !p1(x, x)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sorts A,
; B, V where the rule does no arithmetic; f, p, p1, p2 are uninterpreted.
; expected: unsat
; Here: a key (xk, yk) is selected by the query (xq, yq) under p exactly as
; often (0 or 1) as under the two new selectors together; they never both
; select it.
(set-logic UFLIA)
(declare-sort A 0)
(declare-sort B 0)
(declare-sort V 0)
(declare-fun f (A B) V)
(declare-fun p (V V) Bool)
(declare-fun p1 (A A) Bool)
(declare-fun p2 (B B) Bool)
(declare-fun inA (A) Bool)
(declare-fun inB (B) Bool)
(assert (forall ((x A) (x2 A) (y B) (y2 B))
  (=> (and (inA x) (inA x2) (inB y) (inB y2))
      (= (p (f x y) (f x2 y2)) (or (p1 x x2) (and (= x x2) (p2 y y2)))))))
(assert (forall ((x A)) (=> (inA x) (not (p1 x x)))))
(declare-const xk A)
(declare-const yk B)
(declare-const xq A)
(declare-const yq B)
(assert (and (inA xk) (inB yk) (inA xq) (inB yq)))
(assert (not (= (ite (p (f xk yk) (f xq yq)) 1 0)
                (+ (ite (p1 xk xq) 1 0) (ite (and (= xk xq) (p2 yk yq)) 1 0)))))
(check-sat)
