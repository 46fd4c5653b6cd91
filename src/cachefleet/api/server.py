"""The HTTP front door: AWS requests in, responses in the same protocol out.

The service and region come from the SigV4 credential scope: ``elasticache`` (ElastiCache),
``monitoring`` (CloudWatch) and ``logs`` (CloudWatch Logs) share one endpoint. The protocol
comes from the request: the Query protocol (POST form bodies and GET query strings, XML
answers), AWS JSON (``X-Amz-Target``) or Smithy RPC v2 CBOR (``/service/.../operation/...``),
whichever the service's model lists. The action's parameters are parsed against botocore's
model, the caller's identity policy (a credentials-file key may carry one: api/policy.py) is
asked whether it allows the action on the resource the request names (AccessDenied otherwise,
in IAM's words), the parameters are handed to the handler of the same (snake_case) name, and
the result is serialized against the operation's output shape.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import botocore.session
from aiohttp import web
from botocore import xform_name
from botocore.model import ServiceModel

from cachefleet.api import cloudwatch as cloudwatch_handlers
from cachefleet.api import elasticache
from cachefleet.api import logs as logs_handlers
from cachefleet.api.context import Context
from cachefleet.api.errors import ApiError, ErrorCatalog
from cachefleet.api.jsonrpc import CBOR, JSON, DocumentReader, DocumentWriter, decode_body
from cachefleet.api.policy import authorize, iam_action, principal_arn, request_resources
from cachefleet.api.protocol import QueryParser, XmlSerializer
from cachefleet.api.sigv4 import Authenticator
from cachefleet.domain.cloudwatch import CloudWatch
from cachefleet.domain.elasticache import ElastiCache
from cachefleet.domain.errors import CachefleetError
from cachefleet.domain.identifiers import REGION_PATTERN, Region
from cachefleet.domain.logs import LogReader

log = logging.getLogger(__name__)

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]


QUERY = "query"
_PROTOCOL_NAMES = {QUERY: ("query",), JSON: ("json",), CBOR: ("smithy-rpc-v2-cbor",)}
_AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token")


@dataclass(frozen=True)
class ServiceApi:
    """One AWS service served here: its botocore model, its XML serializer and its handlers."""

    model: ServiceModel
    serializer: XmlSerializer
    handlers: dict[str, Handler]  # operation name -> its handler
    # Writers compile per shape name, and shape names mean different things in different
    # services (CloudWatch Logs' Timestamp is a long): one writer per service and encoding.
    writers: dict[str, DocumentWriter] = field(default_factory=lambda: {JSON: DocumentWriter(JSON), CBOR: DocumentWriter(CBOR)})

    def speaks(self, protocol: str) -> bool:
        spoken = self.model.metadata.get("protocols") or [self.model.metadata.get("protocol")]
        return any(name in spoken for name in _PROTOCOL_NAMES[protocol])

    @property
    def query_compatible(self) -> bool:
        return "awsQueryCompatible" in self.model.metadata


@dataclass(frozen=True)
class Call:
    """What a request asks for, before it is authenticated: protocol, target prefix, action."""

    protocol: str
    action: str = ""
    prefix: str = ""


def load_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def handlers_of(model: ServiceModel, modules: tuple[ModuleType, ...]) -> dict[str, Handler]:
    """Each operation of the model that one of ``modules`` handles (a function of its snake_case name)."""
    found: dict[str, Handler] = {}
    for operation in model.operation_names:
        for module in modules:
            handler = getattr(module, xform_name(operation), None)
            if handler is None:
                continue
            if operation in found:
                raise RuntimeError(f"{operation} is handled twice ({module.__name__})")
            found[operation] = handler
    return found


class ApiServer:
    """The HTTP front door: authenticates, parses, dispatches to one handler and answers in the request's protocol."""

    def __init__(
        self,
        *,
        service: ElastiCache,
        authenticator: Authenticator,
        cloudwatch: CloudWatch | None = None,
        log_reader: LogReader | None = None,
    ) -> None:
        self._service = service
        self._cloudwatch = cloudwatch
        self._log_reader = log_reader
        self._auth = authenticator
        models = {name: load_model(name) for name in ("elasticache", "cloudwatch", "logs")}
        modules = {"elasticache": elasticache.FAMILIES, "cloudwatch": (cloudwatch_handlers,), "logs": (logs_handlers,)}
        self._apis = {
            service: ServiceApi(models[name], XmlSerializer(models[name]), handlers_of(models[name], modules[name]))
            for service, name in (("elasticache", "elasticache"), ("monitoring", "cloudwatch"), ("logs", "logs"))
        }
        self._errors = ErrorCatalog(*models.values())
        self._parser = QueryParser()
        self._reader = DocumentReader()
        self.requests = 0
        self.errors = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/", self.handle)
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/service/{prefix}/operation/{operation}", self.handle)
        app.router.add_route("GET", "/healthz", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "pid": os.getpid()})

    @staticmethod
    def _call_of(request: web.Request) -> Call:
        if request.path.startswith("/service/"):
            return Call(CBOR, request.match_info.get("operation", ""), request.match_info.get("prefix", ""))
        target = request.headers.get("X-Amz-Target")
        if target is not None:
            prefix, _, action = target.rpartition(".")
            return Call(JSON, action, prefix)
        return Call(QUERY)

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        self.requests += 1
        api = self._apis["elasticache"]
        call = Call(QUERY)
        action = "?"
        try:
            call = self._call_of(request)
            action = call.action or "?"
            try:
                body = await request.read()
            except web.RequestPayloadError as error:  # e.g. Content-Encoding: gzip on a body that is not gzip
                reason = str(error.__cause__ or error).strip().splitlines()[-1].strip()
                raise ApiError("MalformedQueryString", f"The request body cannot be read: {reason}.") from None
            query = parse_qsl(request.query_string, keep_blank_values=True)
            params = dict(query)
            if call.protocol == QUERY and request.method == "POST" and body:
                try:
                    params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
                except UnicodeDecodeError:
                    raise ApiError("MalformedQueryString", "The request body is not UTF-8 form data.") from None
            caller = self._auth.authenticate(
                method=request.method, path=request.path, query=query, headers=request.headers, body=body
            )
            api = self._apis.get(caller.service) or api
            if caller.service not in self._apis:
                raise ApiError(
                    "InvalidAction",
                    f"Requests signed for service '{caller.service}' are not served here; sign them for "
                    f"{' or '.join(sorted(self._apis))}.",
                )
            if not api.speaks(call.protocol):
                raise ApiError(
                    "InvalidAction",
                    f"The {caller.service} service does not speak the {call.protocol} protocol here.",
                )
            if not REGION_PATTERN.match(caller.region):
                raise ApiError("InvalidParameterValue", f"'{caller.region}' is not a valid AWS region name.")
            if call.protocol == QUERY:
                action = params.pop("Action", "")
                version = params.pop("Version", None)
                if not action:
                    raise ApiError("MissingAction", "The request must contain the parameter Action.")
                if version is not None and version != api.model.api_version:
                    raise ApiError(
                        "InvalidAction",
                        f"Could not find operation {action} for version {version}; this service speaks {api.model.api_version}.",
                    )
            elif call.prefix != api.model.metadata.get("targetPrefix"):
                raise ApiError(
                    "InvalidAction",
                    f"Operation {call.prefix}.{call.action} is not an operation of the {caller.service} service.",
                )
            if action not in api.model.operation_names:
                raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")
            handler = api.handlers.get(action)
            if handler is None:
                raise ApiError("InvalidAction", f"The action {action} is not supported by Cachefleet yet.")
            operation = api.model.operation_model(action)
            if call.protocol == QUERY:
                for auth_param in _AUTH_PARAMS:
                    params.pop(auth_param, None)
                parsed = self._parser.parse(operation, params)
            else:
                parsed = self._reader.parse(operation, decode_body(body, call.protocol), call.protocol)
            authorize(
                caller.policy,
                principal=principal_arn(caller.user),
                service=caller.service,
                action=iam_action(caller.service, action),
                resources=request_resources(caller.service, action, parsed, caller.region),
            )
            context = Context(
                elasticache=self._service,
                region=Region(caller.region),
                request_id=request_id,
                cloudwatch=self._cloudwatch,
                log_reader=self._log_reader,
            )
            result = handler(context, parsed)
            log.debug("%s %s %.1f ms", action, request_id, (time.perf_counter() - started) * 1000)
            if call.protocol == QUERY:
                text = api.serializer.response(operation, result, request_id)
                return web.Response(text=text, content_type="text/xml", headers={"x-amzn-RequestId": request_id})
            return web.Response(
                body=api.writers[call.protocol].response(operation, result),
                headers=self._document_headers(api, call, request_id),
            )
        except CachefleetError as error:
            return self._error(api, call, self._errors.from_domain(error), request_id, action)
        except ApiError as error:
            return self._error(api, call, error, request_id, action)
        except web.HTTPRequestEntityTooLarge as error:
            too_large = ApiError("RequestEntityTooLargeException", f"The request is too large: {error.text}.")
            return self._error(api, call, too_large, request_id, action)
        except Exception:
            log.exception("internal failure in %s (request %s)", action, request_id)
            failure = ApiError("InternalFailure", f"Cachefleet failed to process {action}; see the server log (request {request_id}).")
            return self._error(api, call, failure, request_id, action)

    @staticmethod
    def _document_headers(api: ServiceApi, call: Call, request_id: str) -> dict[str, str]:
        if call.protocol == CBOR:
            return {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": request_id}
        version = api.model.metadata.get("jsonVersion", "1.0")
        return {"Content-Type": f"application/x-amz-json-{version}", "x-amzn-RequestId": request_id}

    def _error(self, api: ServiceApi, call: Call, error: ApiError, request_id: str, action: str) -> web.Response:
        self.errors += 1
        try:
            return self._error_response(api, call, error, request_id, action)
        except Exception:
            # Whatever went wrong, the client still gets an AWS error, not aiohttp's plain-text 500.
            log.exception("could not answer %s with %s (request %s)", action, error.code, request_id)
            text = self._apis["elasticache"].serializer.error(
                code="InternalFailure", message="Cachefleet failed to answer this request; see the server log.",
                sender_fault=False, request_id=request_id,
            )
            return web.Response(text=text, status=500, content_type="text/xml", headers={"x-amzn-RequestId": request_id})

    def _error_response(self, api: ServiceApi, call: Call, error: ApiError, request_id: str, action: str) -> web.Response:
        kind = self._errors.kind(error.code)
        log.info("%s -> %s: %s", action, error.code, error.message)
        if call.protocol == QUERY:
            text = api.serializer.error(code=error.code, message=error.message, sender_fault=kind.sender_fault, request_id=request_id)
            return web.Response(
                text=text, status=kind.status, content_type="text/xml", headers={"x-amzn-RequestId": request_id}
            )
        headers = self._document_headers(api, call, request_id)
        if api.query_compatible:
            headers["x-amzn-query-error"] = f"{error.code};{'Sender' if kind.sender_fault else 'Receiver'}"
        body = api.writers[call.protocol].error(
            code=error.code, type_name=self._errors.shape_name(error.code), message=error.message
        )
        return web.Response(body=body, status=kind.status, headers=headers)
