; rule `seqmap-drop-left` (compiler/src/optimize/rules.rs): seqmap g a b => map g[y:=x] b
; side condition: the body of g does not read x: g(x, y) = h(y), and g[y:=x] is h
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun h (V) V)
(define-fun g ((x V) (y V)) V (h y))
(declare-const a V)
(declare-const b V)
(assert (not (= (g a b) (h b))))
(check-sat)
