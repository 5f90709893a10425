"""Declarative rules: YAML -> compiled RuleSet -> Envelope -> [MeisaCall].

loader.py       `compile_rules(node)`: YAML -> RuleSet, every error with file, line, rule and field
                (bridge.config.load_rules loads a file; bridge.yamlio reads the YAML)
expressions.py  literals, `{{ expr }}` expressions and templates, compiled once
fields.py       each action's body fields, as the Meisa spec defines them
models.py       compiled rules and actions, evaluated per event
engine.py       `RuleSet.map(envelope)`: the calls, in rule then action order
commands.py     `validate`, `plan` (plan.py, table.py) and `schema` (schema.py)
testcommand.py  `test`: rule tests (testfile.py reads *.test.yaml, ruletest.py compares)
"""
