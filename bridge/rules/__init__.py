"""Declarative rules: YAML -> compiled RuleSet -> Envelope -> [MeisaCall].

loader.py       `load_rules(path)`: YAML -> RuleSet, every error with file, line, rule and field
yamlio.py       YAML with line numbers and `${VAR}` interpolation
expressions.py  literals, `{{ expr }}` expressions and templates, compiled once
fields.py       each action's body fields, as the Meisa spec defines them
models.py       compiled rules and actions, evaluated per event
engine.py       `RuleSet.map(envelope)`: the calls, in rule then action order
commands.py     `validate`, `plan` (plan.py, table.py) and `schema` (schema.py)
testcommand.py  `test`: rule tests (testfile.py reads *.test.yaml, ruletest.py compares)
"""
