"""Every operation of botocore's ElastiCache model is answered: none says InvalidAction.

Each operation is called once through boto3 with only its required members, filled with plain
values of their shapes (names of nothing that exists): the answer may be a result or any
ElastiCache fault (NotFound, InvalidParameterValue, ...), but never InvalidAction, and never a
server error.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from helpers import Server, free_port, fresh_network

MODEL = botocore.session.get_session().get_service_model("elasticache")


def _minimal(shape: Any) -> Any:
    """A plain value of ``shape`` with only its required members."""
    if shape.type_name == "structure":
        return {name: _minimal(shape.members[name]) for name in shape.required_members}
    if shape.type_name == "list":
        return [_minimal(shape.member)]
    if shape.type_name == "map":
        return {"k": _minimal(shape.value)}
    if shape.type_name == "string":
        return shape.enum[0] if shape.enum else "every-op-x"
    if shape.type_name in ("integer", "long"):
        return 1
    if shape.type_name in ("double", "float"):
        return 1.0
    if shape.type_name == "boolean":
        return False
    if shape.type_name == "timestamp":
        return "2026-01-01T00:00:00Z"
    raise AssertionError(f"no plain value for {shape.type_name}")


@pytest.fixture(scope="module")
def own() -> Iterator[Any]:
    """A server of its own: the creates among the calls must not show up in other tests' lists."""
    root = Path(tempfile.mkdtemp(prefix="cachefleet-every-op-"))
    running = Server(data_dir=root / "data", network=fresh_network(), port=free_port()).start()
    try:
        yield running.client()
    finally:
        running.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_every_operation_is_answered(own: Any, operation: str) -> None:
    ec = own
    shape = MODEL.operation_model(operation).input_shape
    params = _minimal(shape) if shape is not None else {}
    try:
        getattr(ec, xform_name(operation))(**params)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        assert code != "InvalidAction", f"{operation}: {error.response['Error']['Message']}"
        assert status < 500, f"{operation} answered {status}: {error.response['Error']}"
