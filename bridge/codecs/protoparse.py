""".proto text -> FileDescriptorProto, without protoc.

A registry that stores Protobuf schemas as text (Apicurio, and Confluent's registry for schemas a
Java producer registered, when asked without `format=serialized`) and local `.proto` files give
the bridge source text, while protobuf's runtime builds message types only from descriptors. The
`protobuf` package has no .proto parser, and the one that does (protoc, shipped in grpcio-tools)
is a native compiler working on files; proto-schema-parser is a maintained pure-Python parser
that gives a syntax tree, and this module turns the tree into the descriptor protoc would make.

Type names are left as written: the descriptor pool resolves them by protobuf's scoping rules and
tells messages from enums, as it does for descriptors from any other parser. Covered: proto2
and proto3 syntax, packages, imports, nested messages and enums, maps, oneofs, proto3 `optional`,
enum `allow_alias`, proto2 defaults. Left out (they do not change how a message decodes to a
dict): services, options other than those, extensions. Refused: groups and editions.
"""

from __future__ import annotations

from typing import Any

from antlr4.error.ErrorListener import ErrorListener
from google.protobuf import descriptor_pb2
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FDP.TYPE_DOUBLE,
    "float": FDP.TYPE_FLOAT,
    "int64": FDP.TYPE_INT64,
    "uint64": FDP.TYPE_UINT64,
    "int32": FDP.TYPE_INT32,
    "fixed64": FDP.TYPE_FIXED64,
    "fixed32": FDP.TYPE_FIXED32,
    "bool": FDP.TYPE_BOOL,
    "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES,
    "uint32": FDP.TYPE_UINT32,
    "sfixed32": FDP.TYPE_SFIXED32,
    "sfixed64": FDP.TYPE_SFIXED64,
    "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
}
LABELS = {
    ast.FieldCardinality.OPTIONAL: FDP.LABEL_OPTIONAL,
    ast.FieldCardinality.REQUIRED: FDP.LABEL_REQUIRED,
    ast.FieldCardinality.REPEATED: FDP.LABEL_REPEATED,
}


class _Raise(ErrorListener):  # type: ignore[misc]  # antlr4 has no type hints
    """ANTLR prints syntax errors and recovers by default; a schema with one is refused."""

    def syntaxError(  # noqa: PLR0917 (ANTLR calls it with these positional arguments)
        self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise ValueError(f"line {line}:{column}: {msg}")


def _quiet(recognizer: Any) -> None:
    recognizer.removeErrorListeners()
    recognizer.addErrorListener(_Raise())


_PARSER = Parser(setup_lexer=_quiet, setup_parser=_quiet)


def parse_proto(text: str, name: str) -> Any:
    """The descriptor of one .proto file; `name` is its import path. Raises ValueError."""
    tree = _PARSER.parse(text)
    if tree.edition is not None:
        raise ValueError(f"{name}: Protobuf editions are not supported")
    syntax = tree.syntax or "proto2"
    out = descriptor_pb2.FileDescriptorProto(name=name)
    if syntax == "proto3":
        out.syntax = "proto3"
    for element in tree.file_elements:
        if isinstance(element, ast.Package):
            out.package = element.name
        elif isinstance(element, ast.Import):
            out.dependency.append(element.name)
        elif isinstance(element, ast.Message):
            _message(element, out.message_type.add(), proto3=syntax == "proto3")
        elif isinstance(element, ast.Enum):
            _enum(element, out.enum_type.add())
    return out


def _message(node: ast.Message, out: Any, *, proto3: bool) -> None:
    out.name = node.name
    synthetic: list[str] = []  # proto3 `optional` fields: their oneofs come after the real ones
    for element in node.elements:
        if isinstance(element, ast.Field):
            field = _field(element, out.field.add(), proto3=proto3)
            if field.proto3_optional:
                synthetic.append(field.name)
        elif isinstance(element, ast.MapField):
            _map(element, out)
        elif isinstance(element, ast.OneOf):
            _oneof(element, out, proto3=proto3)
        elif isinstance(element, ast.Message):
            _message(element, out.nested_type.add(), proto3=proto3)
        elif isinstance(element, ast.Enum):
            _enum(element, out.enum_type.add())
        elif isinstance(element, ast.Group):
            raise ValueError(f"message {node.name}: groups are not supported")
    for name in synthetic:
        index = len(out.oneof_decl)
        out.oneof_decl.add(name=f"_{name}")
        next(f for f in out.field if f.name == name).oneof_index = index


def _field(node: ast.Field, out: Any, *, proto3: bool) -> Any:
    out.name, out.number = node.name, node.number
    out.label = LABELS[node.cardinality] if node.cardinality else FDP.LABEL_OPTIONAL
    if proto3 and node.cardinality == ast.FieldCardinality.OPTIONAL:
        out.proto3_optional = True
    scalar = SCALARS.get(node.type)
    if scalar is not None:
        out.type = scalar
    else:
        out.type_name = node.type  # message or enum: the pool resolves it in scope
    for option in node.options:
        if option.name == "default":
            out.default_value = _scalar_text(option.value)
    return out


def _map(node: ast.MapField, out: Any) -> None:
    entry = out.nested_type.add(name="".join(p[:1].upper() + p[1:] for p in node.name.split("_")))
    entry.name += "Entry"
    entry.options.map_entry = True
    key = entry.field.add(name="key", number=1, label=FDP.LABEL_OPTIONAL)
    key.type = SCALARS[node.key_type]
    value = entry.field.add(name="value", number=2, label=FDP.LABEL_OPTIONAL)
    if node.value_type in SCALARS:
        value.type = SCALARS[node.value_type]
    else:
        value.type_name = node.value_type
    field = out.field.add(name=node.name, number=node.number, label=FDP.LABEL_REPEATED)
    field.type, field.type_name = FDP.TYPE_MESSAGE, entry.name


def _oneof(node: ast.OneOf, out: Any, *, proto3: bool) -> None:
    index = len(out.oneof_decl)
    out.oneof_decl.add(name=node.name)
    for element in node.elements:
        if isinstance(element, ast.Field):
            _field(element, out.field.add(), proto3=proto3).oneof_index = index
        elif isinstance(element, ast.Group):
            raise ValueError(f"oneof {node.name}: groups are not supported")


def _enum(node: ast.Enum, out: Any) -> None:
    out.name = node.name
    for element in node.elements:
        if isinstance(element, ast.EnumValue):
            out.value.add(name=element.name, number=element.number)
        elif isinstance(element, ast.Option) and element.name == "allow_alias":
            out.options.allow_alias = element.value is True or element.value == "true"


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ast.Identifier):
        return value.name
    return str(value)
