"""The AWS JSON 1.0/1.1 and Smithy RPC v2 CBOR protocols, driven by botocore's service models.

Both carry the same document: a map shaped like the operation's input or output shape. One
generic reader checks a decoded request document against the input shape (types, required
members, enums, ranges: the same rules and messages as the Query parser), and one generic
writer turns a handler's result into a document following the output shape. Only the
encoding differs: JSON (timestamps as epoch seconds, blobs as base64) or CBOR (timestamps as
tag 1, blobs as byte strings).

Which protocol a request speaks is told by the request itself: ``X-Amz-Target`` for JSON,
``POST /service/<targetPrefix>/operation/<Operation>`` with ``smithy-protocol: rpc-v2-cbor``
for CBOR. Services that moved from Query keep their Query error codes through the
``x-amzn-query-error`` header (``awsQueryCompatible`` in the model).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from cachefleet.api.errors import ApiError
from cachefleet.api.protocol import check_range, check_string

JSON = "json"
CBOR = "cbor"
_SURROGATES = re.compile("[\ud800-\udfff]")


def decode_body(body: bytes, encoding: str) -> Any:
    if not body:
        return {}
    if encoding == JSON:
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise ApiError("SerializationException", "The request body is not valid JSON.") from None
        except RecursionError:
            raise ApiError("SerializationException", "The request body is not valid JSON: it is nested too deeply.") from None
    try:
        return cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError):
        raise ApiError("SerializationException", "The request body is not valid CBOR.") from None


def encode_body(document: Mapping[str, Any], encoding: str) -> bytes:
    if encoding == JSON:
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    return cbor2.dumps(document, datetime_as_timestamp=True, timezone=dt.UTC)


class DocumentReader:
    """Reads a decoded request document into a dict shaped like an operation's input."""

    def parse(self, operation: OperationModel, document: Any, encoding: str) -> dict[str, Any]:
        shape = operation.input_shape
        if shape is None:
            return {}
        if document is None:
            document = {}
        parsed = self._value(shape, document, "", encoding)
        return parsed or {}

    def _value(self, shape: Shape, value: Any, name: str, encoding: str) -> Any:
        if value is None:
            return None
        if isinstance(shape, StructureShape):
            return self._structure(shape, value, name, encoding)
        if isinstance(shape, ListShape):
            if not isinstance(value, list):
                raise _wrong_type(name, "a list")
            items = [self._value(shape.member, item, f"{name}.member.{i + 1}", encoding) for i, item in enumerate(value)]
            check_range(shape, len(items), name, what="number of items")
            return items
        if isinstance(shape, MapShape):
            if not isinstance(value, dict):
                raise _wrong_type(name, "a map")
            return {
                self._value(shape.key, key, f"{name}.key", encoding): self._value(shape.value, item, f"{name}.{key}", encoding)
                for key, item in value.items()
            }
        return self._scalar(shape, value, name, encoding)

    def _structure(self, shape: StructureShape, value: Any, name: str, encoding: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _wrong_type(name or shape.name, "a structure")
        prefix = name + "." if name else ""
        result: dict[str, Any] = {}
        for member_name, member in shape.members.items():
            item = self._value(member, value.get(member_name), prefix + member_name, encoding)
            if item is not None:
                result[member_name] = item
        for required in shape.required_members:
            if required not in result:
                raise ApiError("MissingParameter", f"The request must contain the parameter {prefix}{required}.")
        return result

    @staticmethod
    def _scalar(shape: Shape, value: Any, name: str, encoding: str) -> Any:
        kind = shape.type_name
        if kind == "string":
            if not isinstance(value, str):
                raise _wrong_type(name, "a string")
            if _SURROGATES.search(value):  # JSON can escape one ("\\udced"); no store or answer can hold it
                raise ApiError("SerializationException", f"Parameter {name} is not valid Unicode text (a lone surrogate).")
            check_string(shape, value, name)
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not value.is_integer()):
                raise ApiError("InvalidParameterValue", f"Value '{value}' for parameter {name} is not a valid integer.")
            number = int(value)
            check_range(shape, number, name, what="value")
            return number
        if kind in ("double", "float"):
            if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
                return float(value)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApiError("InvalidParameterValue", f"Value '{value}' for parameter {name} is not a valid number.")
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ApiError("InvalidParameterValue", f"Value '{value}' for parameter {name} must be true or false.")
            return value
        if kind == "timestamp":
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ApiError("InvalidParameterValue", f"Value '{value}' for parameter {name} is not a valid timestamp.")
            try:
                return dt.datetime.fromtimestamp(value, tz=dt.UTC)
            except (OverflowError, OSError, ValueError):
                raise ApiError("InvalidParameterValue", f"Value '{value}' for parameter {name} is out of range.") from None
        if kind == "blob":
            if isinstance(value, bytes):
                return value
            if encoding == JSON and isinstance(value, str):
                try:
                    return base64.b64decode(value, validate=True)
                except (ValueError, binascii.Error):
                    raise ApiError("InvalidParameterValue", f"Value for parameter {name} is not valid base64.") from None
            raise _wrong_type(name, "binary data")
        raise ApiError("InvalidParameterValue", f"Parameter {name} has an unsupported type {kind}.")


def _wrong_type(name: str, expected: str) -> ApiError:
    return ApiError("SerializationException", f"Parameter {name or 'body'} must be {expected}.")


Convert = Callable[[Any], Any]


class DocumentWriter:
    """Turns a handler's result into a document following an operation's output shape.

    As for XML, each shape is compiled once into a converter function: a GetMetricData answer
    of 10,800 datapoints costs list comprehensions, not a walk of botocore's model per value.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._converters: dict[str, Convert] = {}

    def response(self, operation: OperationModel, result: Mapping[str, Any] | None) -> bytes:
        shape = operation.output_shape
        document = self._converter(shape)(result or {}) if shape is not None else {}
        return encode_body(document, self._encoding)

    def error(self, *, code: str, type_name: str, message: str) -> bytes:
        # A message may quote what the client sent: header bytes that were not UTF-8 come as surrogates,
        # which CBOR text (UTF-8) cannot carry.
        return encode_body({"__type": type_name, "message": _SURROGATES.sub("\ufffd", message)}, self._encoding)

    def _converter(self, shape: Shape) -> Convert:
        found = self._converters.get(shape.name)
        if found is None:
            # Placeholder first: recursive shapes refer to themselves.
            self._converters[shape.name] = lambda value: self._converters[shape.name](value)
            found = self._compile(shape)
            self._converters[shape.name] = found
        return found

    def _compile(self, shape: Shape) -> Convert:
        if isinstance(shape, StructureShape):
            members = {name: self._converter(member) for name, member in shape.members.items()}
            known = frozenset(members)
            shape_name = shape.name

            def structure(value: Mapping[str, Any]) -> dict[str, Any]:
                if not value.keys() <= known:
                    # A handler that returns a member the model does not have is a bug of ours.
                    raise ValueError(f"{shape_name} has no members {sorted(value.keys() - known)}")
                return {name: members[name](item) for name, item in value.items() if item is not None}

            return structure
        if isinstance(shape, ListShape):
            member = self._converter(shape.member)
            if shape.member.type_name in ("string", "integer", "long", "boolean"):
                return list
            return lambda value: [member(item) for item in value]
        if isinstance(shape, MapShape):
            convert = self._converter(shape.value)
            return lambda value: {key: convert(item) for key, item in value.items()}
        kind = shape.type_name
        if kind == "timestamp":
            return _epoch if self._encoding == JSON else _aware
        if kind == "blob":
            return (lambda value: base64.b64encode(value).decode()) if self._encoding == JSON else bytes
        if kind in ("double", "float"):
            return _double
        if kind in ("integer", "long"):
            return int
        return _same


def _same(value: Any) -> Any:
    return value


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _epoch(value: dt.datetime) -> float:
    return _aware(value).timestamp()


def _double(value: Any) -> Any:
    number = float(value)
    if number - number == 0.0:  # finite
        return number
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
