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
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from cachefleet.api.errors import ApiError

_INDEX = re.compile(r"^[1-9][0-9]*$")
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
        parsed = self._structure(shape, params, prefix="")
        return parsed or {}

    # Each method returns None when nothing of that member is present.
    def _value(self, shape: Shape, params: Mapping[str, str], name: str) -> Any:
        if isinstance(shape, StructureShape):
            return self._structure(shape, params, prefix=name + ".")
        if isinstance(shape, ListShape):
            return self._list(shape, params, name)
        if isinstance(shape, MapShape):
            return self._map(shape, params, name)
        if name not in params:
            return None
        return self._scalar(shape, params[name], name)

    def _structure(self, shape: StructureShape, params: Mapping[str, str], prefix: str) -> dict[str, Any] | None:
        if prefix and not any(key.startswith(prefix) for key in params):
            return None
        result: dict[str, Any] = {}
        for member_name, member in shape.members.items():
            wire_name = member.serialization.get("name", member_name)
            value = self._value(member, params, prefix + wire_name)
            if value is not None:
                result[member_name] = value
        for required in shape.required_members:
            if required not in result:
                raise ApiError(
                    "MissingParameter",
                    f"The request must contain the parameter {prefix}{required}.",
                )
        return result

    def _list(self, shape: ListShape, params: Mapping[str, str], name: str) -> list[Any] | None:
        member = shape.member
        if shape.serialization.get("flattened"):
            item_name = member.serialization.get("name")
            base = ".".join(name.split(".")[:-1] + [item_name]) if item_name else name
        else:
            base = name + "." + member.serialization.get("name", "member")
        indexes = _indexes(params, base + ".")
        if not indexes:
            if params.get(name) == "":  # an explicitly empty list
                self._check_range(shape, 0, name, what="number of items")
                return []
            return None
        items = []
        for index in indexes:
            value = self._value(member, params, f"{base}.{index}")
            if value is not None:
                items.append(value)
        self._check_range(shape, len(items), name, what="number of items")
        return items

    def _map(self, shape: MapShape, params: Mapping[str, str], name: str) -> dict[str, Any] | None:
        base = name if shape.serialization.get("flattened") else name + ".entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        indexes = _indexes(params, base + ".")
        if not indexes:
            return None
        result = {}
        for index in indexes:
            key = self._value(shape.key, params, f"{base}.{index}.{key_name}")
            if key is None:
                raise ApiError("MissingParameter", f"The request must contain the parameter {base}.{index}.{key_name}.")
            result[key] = self._value(shape.value, params, f"{base}.{index}.{value_name}")
        return result

    def _scalar(self, shape: Shape, raw: str, name: str) -> Any:
        kind = shape.type_name
        if kind == "string":
            enum = shape.metadata.get("enum")
            if enum and raw not in enum:
                raise ApiError(
                    "InvalidParameterValue",
                    f"Invalid value '{raw}' for parameter {name}: valid values are {', '.join(enum)}.",
                )
            self._check_range(shape, len(raw), name, what="length")
            pattern = shape.metadata.get("pattern")
            if pattern and not re.fullmatch(pattern, raw):
                raise ApiError("InvalidParameterValue", f"Value '{raw}' for parameter {name} must match {pattern}.")
            return raw
        if kind in ("integer", "long"):
            try:
                value = int(raw)
            except ValueError:
                raise ApiError("InvalidParameterValue", f"Value '{raw}' for parameter {name} is not a valid integer.") from None
            self._check_range(shape, value, name, what="value")
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

    @staticmethod
    def _check_range(shape: Shape, value: int, name: str, *, what: str) -> None:
        low = shape.metadata.get("min")
        high = shape.metadata.get("max")
        if low is not None and value < low:
            raise ApiError("InvalidParameterValue", f"The {what} of parameter {name} must be at least {low}.")
        if high is not None and value > high:
            raise ApiError("InvalidParameterValue", f"The {what} of parameter {name} must be at most {high}.")


def _indexes(params: Mapping[str, str], prefix: str) -> list[int]:
    found = set()
    for key in params:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if _INDEX.match(head):
                found.add(int(head))
    return sorted(found)


def parse_timestamp(raw: str, name: str) -> dt.datetime:
    text = raw.strip()
    try:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
            return dt.datetime.fromtimestamp(float(text), tz=dt.UTC)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
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


class XmlSerializer:
    """Writes Query-protocol XML responses by walking an operation's output shape."""

    def __init__(self, service: ServiceModel) -> None:
        self._namespace = service.metadata.get("xmlNamespace", "")

    def response(self, operation: OperationModel, result: Mapping[str, Any] | None, request_id: str) -> str:
        name = operation.name
        parts = [f'<{name}Response xmlns="{self._namespace}">']
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            parts.append(f"<{wrapper}>")
            self._members(shape, result or {}, parts)
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

    def _members(self, shape: StructureShape, value: Mapping[str, Any], parts: list[str]) -> None:
        unknown = set(value) - set(shape.members)
        if unknown:
            # A handler that returns a member the model does not have is a bug of ours.
            raise ValueError(f"{shape.name} has no members {sorted(unknown)}")
        for member_name, member in shape.members.items():
            item = value.get(member_name)
            if item is None:
                continue
            self._element(member, member.serialization.get("name", member_name), item, parts)

    def _element(self, shape: Shape, tag: str, value: Any, parts: list[str]) -> None:
        if isinstance(shape, StructureShape):
            parts.append(f"<{tag}>")
            self._members(shape, value, parts)
            parts.append(f"</{tag}>")
        elif isinstance(shape, ListShape):
            item_tag = shape.member.serialization.get("name", "member")
            if shape.serialization.get("flattened"):
                for item in value:
                    self._element(shape.member, item_tag if item_tag != "member" else tag, item, parts)
            else:
                parts.append(f"<{tag}>")
                for item in value:
                    self._element(shape.member, item_tag, item, parts)
                parts.append(f"</{tag}>")
        elif isinstance(shape, MapShape):
            key_tag = shape.key.serialization.get("name", "key")
            value_tag = shape.value.serialization.get("name", "value")
            if not shape.serialization.get("flattened"):
                parts.append(f"<{tag}>")
            for key, item in value.items():
                parts.append("<entry>" if not shape.serialization.get("flattened") else f"<{tag}>")
                self._element(shape.key, key_tag, key, parts)
                self._element(shape.value, value_tag, item, parts)
                parts.append("</entry>" if not shape.serialization.get("flattened") else f"</{tag}>")
            if not shape.serialization.get("flattened"):
                parts.append(f"</{tag}>")
        else:
            parts.append(f"<{tag}>{self._scalar(shape, value)}</{tag}>")

    @staticmethod
    def _scalar(shape: Shape, value: Any) -> str:
        kind = shape.type_name
        if kind == "boolean":
            return "true" if value else "false"
        if kind == "timestamp":
            return format_timestamp(value)
        if kind == "blob":
            return base64.b64encode(value).decode()
        if kind in ("double", "float"):
            return repr(float(value))
        return xml_text(str(value))
