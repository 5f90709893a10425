"""The one error tree: every exception class of the bridge lives in bridge.errors and is drawn in
its docstring under its real parent."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import bridge
from bridge import errors

# The sandbox stands in for Meisa: its HTTP error response is not a bridge error.
# A transport raises httpx's errors: the engines' refused certificate is one, which the client
# turns into TlsError. The h1 engine's Stale (a kept-alive connection closed before any byte of
# the answer) never leaves the engine: it retries once or raises httpx's error instead.
OUTSIDE_THE_TREE = {
    "bridge.sandbox.model.ApiError",
    "bridge.meisa.wire.TlsConnectError",
    "bridge.meisa.h1conn.Stale",
}


def _all_modules() -> list[object]:
    names = [m.name for m in pkgutil.walk_packages(bridge.__path__, "bridge.")]
    return [importlib.import_module(n) for n in names if not n.endswith("__main__")]


def _tree() -> dict[str, str]:
    """Class name -> parent name, from the docstring's drawing (indentation gives the parent)."""
    doc = errors.__doc__ or ""
    drawing = doc[doc.index("    BridgeError") :].split("\n\n")[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        m = re.match(r"^([\s│├└─]*)([A-Z][A-Za-z]+)\b", line)
        if m is None:
            continue  # a continuation line of a description
        depth, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_every_exception_class_of_the_bridge_is_defined_in_errors() -> None:
    strays = {
        f"{module.__name__}.{name}"  # type: ignore[attr-defined]
        for module in _all_modules()
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == module.__name__  # type: ignore[attr-defined]
        and obj.__module__.startswith("bridge.")
        and obj.__module__ != "bridge.errors"
    }
    assert strays == OUTSIDE_THE_TREE


def test_the_docstring_draws_every_class_under_its_real_parent() -> None:
    classes = {
        name: obj
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, errors.BridgeError)
    }
    drawn = _tree()
    assert set(drawn) | {"BridgeError"} == set(classes)
    for name, parent in drawn.items():
        assert classes[name].__mro__[1].__name__ == parent, name


def test_internal_errors_stay_value_errors_for_their_callers() -> None:
    for cls in (errors.ExpressionError, errors.EvaluationError, errors.FieldValueError):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, errors.InternalError)
    assert issubclass(errors.OffsetOrderError, ValueError)


def test_each_skip_outcome_names_its_own_reason() -> None:
    # The reason is the metrics label and the DLQ-admin outcome: one per kind of skip.
    skips = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, errors.SkipOutcome)
    ]
    reasons = {cls.__name__: cls.reason for cls in skips}
    assert reasons == {
        "SkipOutcome": "skipped",
        "Unsubscribed": "unsubscribed",
        "StaleEvent": "stale",
        "Suppressed": "suppressed",
        "AlreadyEnrolled": "already_enrolled",
        "AlreadySent": "already_sent",
    }
    assert not issubclass(errors.AlreadyEnrolled, errors.PoisonError)
