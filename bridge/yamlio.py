"""YAML that remembers where things were, with `${VAR}` / `${VAR:-default}` interpolation.

Mappings load as `YMap` (a dict that knows its own line and the line of each key) and sequences
as `YList` (a list that knows the line of each item), so every later error can name file and line.

Differences from plain `yaml.safe_load`, on purpose:
- only `true`/`false` are booleans (YAML 1.2): `on:`, `yes`, `no` stay strings, so a rule's
  `on:` key is the string "on";
- timestamps stay strings (YAML 1.2 has no timestamp type): `time: 2026-03-02T09:03:00Z` in an
  event or a rule body is that exact text, not a datetime that JSON would spell differently;
- duplicate keys are an error instead of "last one wins";
- `${VAR}` in a string is replaced by the environment variable, `${VAR:-default}` falls back to
  the default when VAR is unset or empty, and `$${` writes a literal `${`. Interpolation runs on
  the text, so an interpolated number is a string: the config loader converts it where a number
  is expected. `{{ ... }}` rule expressions are untouched (`${{` is not a variable).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class YMap(dict[str, Any]):
    """A mapping from YAML: `line` is where it starts, `key_lines[key]` where each key is."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line) if hasattr(self, "key_lines") else self.line


class YList(list[Any]):
    """A sequence from YAML: `line` is where it starts, `item_lines[i]` where each item is."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if 0 <= index < len(lines) else self.line


def line_of(container: Any, key: Any, default: int | None = None) -> int | None:
    """The line of `container[key]`, when the container came from YAML."""
    if isinstance(container, YMap) and isinstance(key, str):
        return container.line_of(key)
    if isinstance(container, YList) and isinstance(key, int):
        return container.line_of(key)
    return getattr(container, "line", default)


class _Resolver(yaml.resolver.Resolver):
    pass


# Copy the default implicit resolvers without booleans and timestamps, then narrow booleans to
# true/false (YAML 1.2).
_DROPPED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
_Resolver.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for ch, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.constructor.SafeConstructor,
    _Resolver,
):
    def __init__(self, text: str, *, file: str, env: Mapping[str, str], strict_env: bool) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        _Resolver.__init__(self)
        self.file = file
        self.env = env
        self.strict_env = strict_env
        self.errors: list[ConfigError] = []

    def interpolate(self, text: str, line: int) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            value = self.env.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value is None and self.strict_env:
                self.errors.append(
                    ConfigError(
                        f"environment variable {name} is not set and has no default "
                        f"(write ${{{name}:-default}} to give one)",
                        file=self.file,
                        line=line,
                    )
                )
            return ""

        return _VAR.sub(repl, text)

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        value = self.construct_scalar(node)
        assert isinstance(value, str)
        if "$" in value:
            return self.interpolate(value, node.start_mark.line + 1)
        return value

    def construct_ymap(self, node: yaml.MappingNode) -> Iterator[YMap]:
        data = YMap()
        data.line = node.start_mark.line + 1
        data.key_lines = {}
        yield data
        explicit = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
        self.flatten_mapping(node)  # puts the `<<:` merged pairs first
        merged = len(node.value) - explicit
        from_merge: set[str] = set()
        for i, (key_node, value_node) in enumerate(node.value):
            line = key_node.start_mark.line + 1
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.errors.append(
                    ConfigError(f"keys must be strings, got {key!r}", file=self.file, line=line)
                )
                key = str(key)
            if i < merged:  # YAML merge: keys given explicitly override these silently
                from_merge.add(key)
            elif key in from_merge:
                from_merge.discard(key)
            elif key in data.key_lines:
                self.errors.append(
                    ConfigError(
                        f"duplicate key (first at line {data.key_lines[key]})",
                        file=self.file,
                        line=line,
                        field=key,
                    )
                )
            data[key] = self.construct_object(value_node, deep=True)
            data.key_lines[key] = line

    def construct_ylist(self, node: yaml.SequenceNode) -> Iterator[YList]:
        data = YList()
        data.line = node.start_mark.line + 1
        data.item_lines = []
        yield data
        for item in node.value:
            data.append(self.construct_object(item, deep=True))
            data.item_lines.append(item.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:str", _Loader.construct_yaml_str)  # type: ignore[type-var]
_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_ymap)  # type: ignore[type-var]
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_ylist)  # type: ignore[type-var]


def parse_yaml(
    text: str,
    *,
    file: str,
    env: Mapping[str, str] | None = None,
    strict_env: bool = True,
) -> tuple[Any, list[ConfigError]]:
    """Parse one YAML document. Returns the data and every error found (syntax errors stop early).

    With `strict_env=False` an unset variable without a default becomes "" silently, so
    `validate` and `plan` work without the deployment's secrets in the environment.
    """
    loader = _Loader(text, file=file, env=os.environ if env is None else env, strict_env=strict_env)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "<stream end>" in problem and exc.context_mark is not None:
            mark = exc.context_mark  # the unclosed bracket or quote, not the end of the file
        elif "'\\t'" in problem:
            problem += " (indent with spaces: YAML does not allow tabs)"
        line = mark.line + 1 if mark is not None else None
        return None, [*loader.errors, ConfigError(f"YAML syntax: {problem}", file=file, line=line)]
    except yaml.YAMLError as exc:
        return None, [*loader.errors, ConfigError(f"YAML: {exc}", file=file)]
    finally:
        loader.dispose()
    return data, loader.errors


def load_yaml(
    path: str | Path, *, env: Mapping[str, str] | None = None, strict_env: bool = True
) -> tuple[Any, list[ConfigError]]:
    """Read and parse a YAML file; a missing or unreadable file is one ConfigError."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return None, [ConfigError(f"cannot read file: {exc.strerror}", file=name)]
    except UnicodeDecodeError:
        return None, [ConfigError("file is not UTF-8 text", file=name)]
    return parse_yaml(text, file=name, env=env, strict_env=strict_env)
