"""What metrics and labels a PromQL expression reads, with just enough parsing for our own
dashboard and alerts: selectors with their label matchers, and `by (...)` groupings (in prefix
form, `sum by (x) (...)`) applied to the selectors inside their argument."""

from __future__ import annotations

import re
from collections import defaultdict

TOKEN = re.compile(
    r'"(?:\\.|[^"\\])*"|[A-Za-z_:$][A-Za-z0-9_:]*|\d+(?:\.\d+)?[a-z]*|=~|!~|!=|==|>=|<=|[(){}\[\],=<>*/+-]'
)
GROUPING = ("by", "without")
PREFIX = "meisa_bridge_"


def references(expr: str) -> dict[str, set[str]]:
    """metric name -> the label names the expression matches on or groups by."""
    tokens = TOKEN.findall(expr)
    refs: dict[str, set[str]] = defaultdict(set)
    spans: list[tuple[int, int, set[str]]] = []  # (start, end) token span of a by() argument
    for i, tok in enumerate(tokens):
        if tok.startswith(PREFIX):
            refs[tok] |= _matcher_labels(tokens, i + 1)
        elif tok in GROUPING and i + 1 < len(tokens) and tokens[i + 1] == "(":
            labels, after = _label_list(tokens, i + 2)
            if after >= len(tokens) or tokens[after] != "(":
                raise AssertionError(f"write by() before the argument: {expr}")
            spans.append((after, _closing(tokens, after), labels))
    for start, end, labels in spans:
        for tok in tokens[start:end]:
            if tok.startswith(PREFIX):
                refs[tok] |= labels
    return dict(refs)


def _matcher_labels(tokens: list[str], i: int) -> set[str]:
    if i >= len(tokens) or tokens[i] != "{":
        return set()
    labels: set[str] = set()
    i += 1
    while tokens[i] != "}":
        if tokens[i] not in (",",):
            labels.add(tokens[i])
            i += 3  # name, operator, "value"
        else:
            i += 1
    return labels


def _label_list(tokens: list[str], i: int) -> tuple[set[str], int]:
    labels: set[str] = set()
    while tokens[i] != ")":
        if tokens[i] != ",":
            labels.add(tokens[i])
        i += 1
    return labels, i + 1


def _closing(tokens: list[str], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[j], 0)
        if depth == 0:
            return j
    raise AssertionError(f"unbalanced parentheses in {' '.join(tokens)}")
