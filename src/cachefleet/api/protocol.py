"""The AWS Query protocol, driven by botocore's service models.

One generic parser turns the flat form parameters of a request (``Tags.Tag.1.Key=...``)
into a dict that follows the operation's input shape, checking types, required members,
enums and ranges. One generic serializer walks an operation's output shape and writes
the XML response. Nothing else in Cachefleet writes XML for an API response.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from cachefleet.api.errors import ApiError

_INDEX = re.compile(r"^[1-9][0-9]*$")
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
_INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# Characters XML 1.0 cannot carry (a client may send them; they must not break the response).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


class QueryParser:
    """Parses Query-protocol parameters into a dict shaped like an operation's input."""

    def parse(self, operation: OperationModel, params: Mapping[str, str]) -> dict[str, Any]:
        shape = operation.input_shape
        if shape is None:
            return {}
        parsed = self._structure(shape, _Keys(params), prefix="")
        return parsed or {}

    # Each method returns None when nothing of that member is present.
    def _value(self, shape: Shape, keys: _Keys, name: str) -> Any:
        if isinstance(shape, StructureShape):
            return self._structure(shape, keys, prefix=name + ".")
        if isinstance(shape, ListShape):
            return self._list(shape, keys, name)
        if isinstance(shape, MapShape):
            return self._map(shape, keys, name)
        if name not in keys.params:
            return None
        return self._scalar(shape, keys.params[name], name)

    def _structure(self, shape: StructureShape, keys: _Keys, prefix: str) -> dict[str, Any] | None:
        if prefix and not keys.has_under(prefix[:-1]):
            return None
        result: dict[str, Any] = {}
        for member_name, member in shape.members.items():
            wire_name = member.serialization.get("name", member_name)
            value = self._value(member, keys, prefix + wire_name)
            if value is not None:
                result[member_name] = value
        for required in shape.required_members:
            if required not in result:
                raise ApiError(
                    "MissingParameter",
                    f"The request must contain the parameter {prefix}{required}.",
                )
        return result

    def _list(self, shape: ListShape, keys: _Keys, name: str) -> list[Any] | None:
        member = shape.member
        if shape.serialization.get("flattened"):
            item_name = member.serialization.get("name")
            base = ".".join(name.split(".")[:-1] + [item_name]) if item_name else name
        else:
            base = name + "." + member.serialization.get("name", "member")
        indexes = keys.indexes(base)
        if not indexes:
            if keys.params.get(name) == "":  # an explicitly empty list
                check_range(shape, 0, name, what="number of items")
                return []
            return None
        items = []
        for index in indexes:
            value = self._value(member, keys, f"{base}.{index}")
            if value is not None:
                items.append(value)
        check_range(shape, len(items), name, what="number of items")
        return items

    def _map(self, shape: MapShape, keys: _Keys, name: str) -> dict[str, Any] | None:
        base = name if shape.serialization.get("flattened") else name + ".entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        indexes = keys.indexes(base)
        if not indexes:
            return None
        result = {}
        for index in indexes:
            key = self._value(shape.key, keys, f"{base}.{index}.{key_name}")
            if key is None:
                raise ApiError("MissingParameter", f"The request must contain the parameter {base}.{index}.{key_name}.")
            result[key] = self._value(shape.value, keys, f"{base}.{index}.{value_name}")
        return result

    def _scalar(self, shape: Shape, raw: str, name: str) -> Any:
        kind = shape.type_name
        if kind == "string":
            check_string(shape, raw, name)
            return raw
        if kind in ("integer", "long"):
            # Python's int() also takes " 7", "1_000" and other scripts' digits ("\u0667" is 7);
            # a client sending those made a mistake, as it does with 2**31 for a 32-bit integer.
            low, high = _INTEGER_RANGES[kind]
            if not _INTEGER.fullmatch(raw) or not low <= (value := int(raw)) <= high:
                raise ApiError(
                    "InvalidParameterValue",
                    f"Value '{raw}' for parameter {name} is not a valid integer (digits from {low} to {high}).",
                )
            check_range(shape, value, name, what="value")
            return value
        if kind in ("double", "float"):
            try:
                return float(raw)
            except ValueError:
                raise ApiError("InvalidParameterValue", f"Value '{raw}' for parameter {name} is not a valid number.") from None
        if kind == "boolean":
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ApiError("InvalidParameterValue", f"Value '{raw}' for parameter {name} must be true or false.")
            return lowered == "true"
        if kind == "timestamp":
            return parse_timestamp(raw, name)
        if kind == "blob":
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:
                raise ApiError("InvalidParameterValue", f"Value for parameter {name} is not valid base64.") from None
        raise ApiError("InvalidParameterValue", f"Parameter {name} has an unsupported type {kind}.")



def check_string(shape: Shape, raw: str, name: str) -> None:
    """A string member's enum, length and pattern, as every protocol checks them."""
    enum = shape.metadata.get("enum")
    if enum and raw not in enum:
        raise ApiError(
            "InvalidParameterValue",
            f"Invalid value '{raw}' for parameter {name}: valid values are {', '.join(enum)}.",
        )
    check_range(shape, len(raw), name, what="length")
    pattern = shape.metadata.get("pattern")
    if pattern and not re.fullmatch(pattern, raw):
        raise ApiError("InvalidParameterValue", f"Value '{raw}' for parameter {name} must match {pattern}.")


def check_range(shape: Shape, value: int, name: str, *, what: str) -> None:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and value < low:
        raise ApiError("InvalidParameterValue", f"The {what} of parameter {name} must be at least {low}.")
    if high is not None and value > high:
        raise ApiError("InvalidParameterValue", f"The {what} of parameter {name} must be at most {high}.")


class _Keys:
    """The parameter names of one request, indexed by their dotted prefixes.

    Looking up what lies under a prefix costs the size of the answer, not of the request: a
    scan of every key per list or structure made parsing quadratic, and one 250 KB request with
    4,000 list items held the event loop for 4.5 s.
    """

    # No model nests deeper than this; parts past it never match a member, so they are not indexed.
    _DEPTH = 16

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = params
        self._children: dict[str, set[str]] = {}
        for key in params:
            parts = key.split(".", self._DEPTH)
            head = ""
            for depth, part in enumerate(parts[: self._DEPTH]):
                self._children.setdefault(head, set()).add(part)
                head = f"{head}.{part}" if depth else part

    def has_under(self, head: str) -> bool:
        """Whether a parameter is named ``head.<something>``."""
        return head in self._children

    def indexes(self, head: str) -> list[int]:
        """The list indexes N of parameters named ``head.N`` or ``head.N.<something>``, in order."""
        return sorted(int(part) for part in self._children.get(head, ()) if _INDEX.match(part))


def parse_timestamp(raw: str, name: str) -> dt.datetime:
    text = raw.strip()
    try:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            return dt.datetime.fromtimestamp(float(text), tz=dt.UTC)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):  # epoch seconds past the calendar or time_t (as jsonrpc.py)
        raise ApiError(
            "InvalidParameterValue",
            f"Value '{raw}' for parameter {name} is not a valid ISO 8601 timestamp.",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def format_timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Writer = Callable[[Any, list[str]], None]


class XmlSerializer:
    """Writes Query-protocol XML responses by walking an operation's output shape.

    Each shape is compiled once into a writer function, so that a response of a hundred
    replication groups costs list appends, not a walk of botocore's model.
    """

    def __init__(self, service: ServiceModel) -> None:
        self._namespace = service.metadata.get("xmlNamespace", "")
        self._writers: dict[str, Writer] = {}

    def response(self, operation: OperationModel, result: Mapping[str, Any] | None, request_id: str) -> str:
        name = operation.name
        parts = [f'<{name}Response xmlns="{self._namespace}">']
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            parts.append(f"<{wrapper}>")
            self._writer(shape)(result or {}, parts)
            parts.append(f"</{wrapper}>")
        parts.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>")
        parts.append(f"</{name}Response>")
        return "".join(parts)

    def error(self, *, code: str, message: str, sender_fault: bool, request_id: str) -> str:
        kind = "Sender" if sender_fault else "Receiver"
        return (
            f'<ErrorResponse xmlns="{self._namespace}"><Error><Type>{kind}</Type>'
            f"<Code>{xml_text(code)}</Code><Message>{xml_text(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )

    def _writer(self, shape: Shape) -> Writer:
        """The function that writes a value of ``shape`` (its content, without its own tag)."""
        writer = self._writers.get(shape.name)
        if writer is None:
            # Placeholder first: recursive shapes refer to themselves.
            self._writers[shape.name] = lambda value, parts: self._writers[shape.name](value, parts)
            writer = self._compile(shape)
            self._writers[shape.name] = writer
        return writer

    def _compile(self, shape: Shape) -> Writer:
        if isinstance(shape, StructureShape):
            return self._compile_structure(shape)
        if isinstance(shape, ListShape):
            return self._compile_list(shape)
        if isinstance(shape, MapShape):
            return self._compile_map(shape)
        return _scalar_writer(shape.type_name)

    def _compile_structure(self, shape: StructureShape) -> Writer:
        members = [
            (
                name,
                f"<{tag}>",
                f"</{tag}>",
                # A flattened list repeats the member's own tag for each item, with no wrapper.
                self._compile_list(member, item_tag=tag) if _flattened(member) else self._writer(member),
                _flattened(member),
            )
            for name, member in shape.members.items()
            for tag in [member.serialization.get("name", name)]
        ]
        known = frozenset(shape.members)
        shape_name = shape.name

        def write(value: Mapping[str, Any], parts: list[str]) -> None:
            unknown = value.keys() - known
            if unknown:
                # A handler that returns a member the model does not have is a bug of ours.
                raise ValueError(f"{shape_name} has no members {sorted(unknown)}")
            for name, open_tag, close_tag, inner, flattened in members:
                item = value.get(name)
                if item is None:
                    continue
                if flattened:
                    inner(item, parts)
                else:
                    parts.append(open_tag)
                    inner(item, parts)
                    parts.append(close_tag)

        return write

    def _compile_list(self, shape: Shape, item_tag: str | None = None) -> Writer:
        assert isinstance(shape, ListShape)
        item_tag = item_tag or shape.member.serialization.get("name", "member")
        open_tag, close_tag = f"<{item_tag}>", f"</{item_tag}>"
        inner = self._writer(shape.member)

        def write(value: list[Any], parts: list[str]) -> None:
            for item in value:
                parts.append(open_tag)
                inner(item, parts)
                parts.append(close_tag)

        return write

    def _compile_map(self, shape: MapShape) -> Writer:
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        entry = shape.name if shape.serialization.get("flattened") else "entry"
        write_key, write_value = self._writer(shape.key), self._writer(shape.value)

        def write(value: Mapping[str, Any], parts: list[str]) -> None:
            for key, item in value.items():
                parts.append(f"<{entry}><{key_tag}>")
                write_key(key, parts)
                parts.append(f"</{key_tag}><{value_tag}>")
                write_value(item, parts)
                parts.append(f"</{value_tag}></{entry}>")

        return write


def _flattened(shape: Shape) -> bool:
    return isinstance(shape, ListShape) and bool(shape.serialization.get("flattened"))


_SPECIAL = re.compile("[&<>]|" + _NOT_XML.pattern)


def _text(value: Any, parts: list[str]) -> None:
    text = str(value)
    parts.append(xml_text(text) if _SPECIAL.search(text) else text)


def _scalar_writer(kind: str) -> Writer:
    if kind == "boolean":
        return lambda value, parts: parts.append("true" if value else "false")
    if kind == "timestamp":
        return lambda value, parts: parts.append(format_timestamp(value))
    if kind == "blob":
        return lambda value, parts: parts.append(base64.b64encode(value).decode())
    if kind in ("double", "float"):
        return lambda value, parts: parts.append(repr(float(value)))
    if kind in ("integer", "long"):
        return lambda value, parts: parts.append(str(int(value)))
    return _text
