; rule `selector-all-false` (compiler/src/optimize/rules.rs): s => select %tok, %tok, false
; side condition: s is false on every (key, query) pair of set(keys) x set(queries) (for and/or/not: of their operands, by the analysis)
; The negation of LHS == RHS; unsat means the rule is sound for every value
; in its domain. Values (rationals or symbols) are the uninterpreted sort V
; where the rule does no arithmetic; function bodies are uninterpreted.
; expected: unsat
(set-logic UF)
(declare-sort V 0)
(declare-fun p (V V) Bool)
(declare-fun inK (V) Bool)
(declare-fun inQ (V) Bool)
(assert (forall ((k V) (q V)) (=> (and (inK k) (inQ q)) (not (p k q)))))
; any key value and query value that occur
(declare-const kj V)
(declare-const qi V)
(assert (inK kj))
(assert (inQ qi))
(assert (not (= (p kj qi) false)))
(check-sat)
