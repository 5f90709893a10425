"""What every settings model is built from: `doc`, a field's meaning (rendered into
docs/configuration.md), and `SecretStr`. Imports nothing else of the bridge."""

from __future__ import annotations


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying the setting's meaning (rendered into the configuration doc)."""
    return {"doc": text}


class SecretStr:
    """A secret that never shows itself in repr, str, logs or exceptions."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
