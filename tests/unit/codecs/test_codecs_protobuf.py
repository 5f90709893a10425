"""Protobuf without generated classes: .proto parsing, message -> dict, message indexes, local
files and descriptor sets."""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry.serde import SchemaId
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from bridge.codecs import build_decoder
from bridge.codecs.protobuf import new_pool, proto_file, read_indexes
from bridge.codecs.protodict import _timestamp
from bridge.codecs.protoparse import parse_proto
from bridge.errors import ConfigError, DecodeError
from bridge.settings import CodecSettings

SITE = Path(descriptor_pb2.__file__).resolve().parents[2]  # where google/ is installed
EVENTS_PROTO = """
syntax = "proto3";
package acme.users;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Plan { PLAN_UNSPECIFIED = 0; FREE = 1; PRO = 2; }

message SignedUp {
  string user_id = 1;
  string email = 2;
  int64 big = 3;
  uint64 unsigned = 4;
  sint32 small = 5;
  Plan plan = 6;
  bytes avatar = 7;
  google.protobuf.Timestamp time = 8;
  map<string, int64> counters = 9;
  map<int32, Address> by_number = 10;
  oneof contact { string phone = 11; Address address = 12; }
  optional string nickname = 13;
  repeated string tags = 14;
  google.protobuf.Int64Value limit = 15;
  double score = 16;
  bool active = 17;
  message Address { string city = 1; }
}
"""


def _message_class(text: str, name: str, file: str = "acme/users.proto") -> Any:
    pool = new_pool()
    pool.Add(parse_proto(text, file))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def _signed_up() -> Any:
    cls = _message_class(EVENTS_PROTO, "acme.users.SignedUp")
    msg = cls(user_id="usr_1", email="a@example.com", big=2**62, unsigned=2**64 - 1, small=-5)
    msg.plan = 2
    msg.avatar = b"\x00\xffpng"
    msg.time.FromJsonString("2026-03-02T09:00:00Z")
    msg.counters["logins"] = 2**40
    msg.by_number[7].city = "Oslo"
    msg.address.city = "Bergen"
    msg.tags.extend(["a", "b"])
    msg.limit.value = 2**50
    msg.score = 0.5
    return msg


def test_a_message_comes_out_as_json_shaped_data_with_ints_kept() -> None:
    msg = _signed_up()
    data = proto_file_reader(msg)
    assert data == {
        "user_id": "usr_1",
        "email": "a@example.com",
        "big": 2**62,
        "unsigned": 2**64 - 1,
        "small": -5,
        "plan": "PRO",
        "avatar": "AP9wbmc=",
        "time": "2026-03-02T09:00:00Z",
        "counters": {"logins": 2**40},
        "by_number": {"7": {"city": "Oslo"}},
        "address": {"city": "Bergen"},
        "tags": ["a", "b"],
        "limit": 2**50,
        "score": 0.5,
        "active": False,
    }


def test_unset_fields_with_presence_are_absent_and_others_take_defaults() -> None:
    cls = _message_class(EVENTS_PROTO, "acme.users.SignedUp")
    msg = cls(nickname="")
    msg.plan = 9  # a number the schema does not name
    data = proto_file_reader(msg)
    assert data["nickname"] == ""  # proto3 optional, set to its default: present
    assert data["plan"] == 9
    assert (data["big"], data["tags"], data["counters"]) == (0, [], {})
    for absent in ("time", "phone", "address", "limit"):
        assert absent not in data


def proto_file_reader(msg: Any) -> dict[str, Any]:
    """Decode `msg` the way the registry path does: its file as the registry's base64."""
    import base64

    file = descriptor_pb2.FileDescriptorProto()
    msg.DESCRIPTOR.file.CopyToProto(file)
    schema = base64.b64encode(file.SerializeToString()).decode()
    index = [m.name for m in file.message_type].index(msg.DESCRIPTOR.name)
    return proto_file(schema, {}).reader((index,)).read(msg.SerializeToString())


def test_text_and_serialized_schemas_read_the_same_message() -> None:
    msg = _signed_up()
    from_text = proto_file(EVENTS_PROTO, {}).reader((0,)).read(msg.SerializeToString())
    assert from_text == proto_file_reader(msg)


def test_nested_message_indexes_name_the_nested_message() -> None:
    text = 'syntax = "proto3"; package p; message A { message B { int64 n = 1; } } message C {}'
    cls = _message_class(text, "p.A.B", "p.proto")
    reader = proto_file(text, {}).reader((0, 0))
    assert reader.descriptor.full_name == "p.A.B"
    assert reader.read(cls(n=3).SerializeToString()) == {"n": 3}
    with pytest.raises(DecodeError, match="message index 5"):
        proto_file(text, {}).reader((5,))


def test_a_body_that_is_not_the_message_is_a_decode_error() -> None:
    reader = proto_file(EVENTS_PROTO, {}).reader((0,))
    with pytest.raises(DecodeError, match=r"acme\.users\.SignedUp"):
        reader.read(b"\xff\xff\xff")


@given(st.lists(st.integers(min_value=0, max_value=2**31 - 1), min_size=1, max_size=6))
def test_message_indexes_read_what_confluents_serialiser_writes(indexes: list[int]) -> None:
    framed = SchemaId("PROTOBUF", 7, message_indexes=indexes).id_to_bytes() + b"body"
    parsed, start = read_indexes(framed, 5)
    expected = SchemaId("PROTOBUF")
    rest = expected.from_bytes(io.BytesIO(framed))
    assert list(parsed) == expected.message_indexes
    assert framed[start:] == rest.read() == b"body"


def test_truncated_message_indexes_are_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="end early"):
        read_indexes(b"\x00\x00\x00\x00\x07\x04\x82", 5)


def test_a_proto_syntax_error_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_proto("message { oops", "bad.proto")


# Files protoc compiled (their _pb2 modules) beside their .proto text: the parser must make the
# same messages as protoc.
COMPILED = [
    "google/type/date.proto",
    "google/type/money.proto",
    "google/type/datetime.proto",
    "google/type/postal_address.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "google/api/http.proto",
    "google/api/distribution.proto",
]


def _fields(descriptor: Any) -> list[tuple[Any, ...]]:
    return [
        (
            f.name,
            f.number,
            f.type,
            f.is_repeated,
            f.has_presence,
            f.message_type.full_name if f.message_type else None,
            f.enum_type.full_name if f.enum_type else None,
            f.containing_oneof.name if f.containing_oneof else None,
        )
        for f in descriptor.fields
    ]


def _messages(descriptor: Any) -> list[Any]:
    out = [descriptor]
    for nested in descriptor.nested_types:
        out += _messages(nested)
    return out


@pytest.mark.parametrize("path", COMPILED)
def test_the_parser_makes_the_messages_protoc_made(path: str) -> None:
    if not (SITE / path).exists():
        pytest.skip(f"{path} is not installed")
    compiled = importlib.import_module(path.removesuffix(".proto").replace("/", ".") + "_pb2")
    pool = descriptor_pool.DescriptorPool()
    for dependency in compiled.DESCRIPTOR.dependencies:
        _add_compiled(pool, dependency)
    pool.Add(parse_proto((SITE / path).read_text(), path))
    ours = pool.FindFileByName(path)
    for name, theirs in compiled.DESCRIPTOR.message_types_by_name.items():
        for expected in _messages(theirs):
            got = pool.FindMessageTypeByName(expected.full_name)
            assert _fields(got) == _fields(expected), expected.full_name
        assert name in ours.message_types_by_name


def _add_compiled(pool: Any, file: Any) -> None:
    for dependency in file.dependencies:
        _add_compiled(pool, dependency)
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.AddSerializedFile(file.serialized_pb)


def test_local_proto_files_and_descriptor_sets_decode_raw_topics(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "common.proto").write_text(
        'syntax = "proto3"; package acme; message Address { string city = 1; }'
    )
    (tmp_path / "users.proto").write_text(
        'syntax = "proto3"; package acme.users; import "acme/common.proto";'
        " message Moved { string user_id = 1; acme.Address to = 2; }"
    )
    other = descriptor_pb2.FileDescriptorSet()
    other.file.add().CopyFrom(parse_proto('syntax = "proto3"; message Ping { int64 n = 1; }', "p"))
    (tmp_path / "ping.desc").write_bytes(other.SerializeToString())
    settings = CodecSettings(
        schemas_dir=str(tmp_path), topic_schemas={"moves": "acme.users.Moved", "pings": "Ping"}
    )
    decoder = build_decoder(settings)
    moved = _message_class(
        (tmp_path / "acme" / "common.proto").read_text(), "acme.Address", "acme/common.proto"
    )
    body = b"\x0a\x05usr_9" + b"\x12\x06" + moved(city="Oslo").SerializeToString()
    env = decoder.decode(
        topic="moves", partition=0, offset=1, key=None, value=body, headers=None, timestamp=7
    )
    assert (env.type, env.data) == (
        "acme.users.Moved",
        {"user_id": "usr_9", "to": {"city": "Oslo"}},
    )
    ping = decoder.decode(
        topic="pings", partition=0, offset=2, key=None, value=b"\x08\x05", headers=(), timestamp=7
    )
    assert (ping.type, ping.data) == ("Ping", {"n": 5})


def test_a_topic_schema_that_names_nothing_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a.proto").write_text('syntax = "proto3"; message A {}')
    settings = CodecSettings(schemas_dir=str(tmp_path), topic_schemas={"t": "acme.Missing"})
    with pytest.raises(ConfigError, match=r"codec.topic_schemas.t: no Avro or Protobuf schema"):
        build_decoder(settings)
    json_only = CodecSettings(schemas_dir=str(tmp_path), topic_schemas={"t": "A"}, format="avro")
    with pytest.raises(ConfigError, match=r"'A' is protobuf, and codec\.format is avro"):
        build_decoder(json_only)


@given(
    st.integers(min_value=-62135596800, max_value=253402300799),  # the years 1 to 9999
    st.one_of(
        st.just(0),
        st.integers(0, 999).map(lambda n: n * 1_000_000),
        st.integers(0, 999_999).map(lambda n: n * 1_000),
        st.integers(0, 999_999_999),
    ),
)
def test_timestamps_are_written_as_protobufs_json_mapping_writes_them(
    seconds: int, nanos: int
) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    assert _timestamp(stamp) == stamp.ToJsonString()
