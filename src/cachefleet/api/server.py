"""The HTTP front door: AWS Query requests in, XML responses out.

POST form bodies and GET query strings are both accepted, as AWS does. The service and
region come from the SigV4 credential scope; the action's parameters are parsed against
botocore's model, handed to the handler of the same (snake_case) name, and the result is
serialized against the operation's output shape.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import botocore.session
from aiohttp import web
from botocore import xform_name
from botocore.model import ServiceModel

from cachefleet.api import handlers
from cachefleet.api.errors import ApiError, ErrorCatalog
from cachefleet.api.protocol import QueryParser, XmlSerializer
from cachefleet.api.sigv4 import Authenticator
from cachefleet.domain.errors import CachefleetError
from cachefleet.domain.identifiers import REGION_PATTERN
from cachefleet.domain.model import Region
from cachefleet.domain.service import ElastiCache

log = logging.getLogger(__name__)

Handler = Callable[[handlers.Context, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ServiceApi:
    model: ServiceModel
    serializer: XmlSerializer
    handlers: Any  # module whose functions are named after the operations


def load_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


class ApiServer:
    def __init__(self, *, service: ElastiCache, authenticator: Authenticator) -> None:
        self._service = service
        self._auth = authenticator
        elasticache = load_model("elasticache")
        self._apis = {"elasticache": ServiceApi(elasticache, XmlSerializer(elasticache), handlers)}
        self._errors = ErrorCatalog(elasticache)
        self._parser = QueryParser()
        self.requests = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_route("POST", "/", self.handle)
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("GET", "/healthz", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "pid": os.getpid()})

    async def handle(self, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        self.requests += 1
        api = self._apis["elasticache"]
        action = "?"
        try:
            body = await request.read()
            query = parse_qsl(request.query_string, keep_blank_values=True)
            params = dict(query)
            if request.method == "POST" and body:
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
            if not REGION_PATTERN.match(caller.region):
                raise ApiError("InvalidParameterValue", f"'{caller.region}' is not a valid AWS region name.")
            action = params.pop("Action", "")
            version = params.pop("Version", None)
            if not action:
                raise ApiError("MissingAction", "The request must contain the parameter Action.")
            if action not in api.model.operation_names:
                raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")
            if version is not None and version != api.model.api_version:
                raise ApiError(
                    "InvalidAction",
                    f"Could not find operation {action} for version {version}; this service speaks {api.model.api_version}.",
                )
            handler: Handler | None = getattr(api.handlers, xform_name(action), None)
            if handler is None:
                raise ApiError("InvalidAction", f"The action {action} is not supported by Cachefleet yet.")
            operation = api.model.operation_model(action)
            for auth_param in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                               "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"):
                params.pop(auth_param, None)
            parsed = self._parser.parse(operation, params)
            context = handlers.Context(service=self._service, region=Region(caller.region), request_id=request_id)
            result = handler(context, parsed)
            text = api.serializer.response(operation, result, request_id)
            log.debug("%s %s %.1f ms", action, request_id, (time.perf_counter() - started) * 1000)
            return web.Response(text=text, content_type="text/xml", headers={"x-amzn-RequestId": request_id})
        except CachefleetError as error:
            return self._error(api, self._errors.from_domain(error), request_id, action)
        except ApiError as error:
            return self._error(api, error, request_id, action)
        except Exception:
            log.exception("internal failure in %s (request %s)", action, request_id)
            failure = ApiError("InternalFailure", f"Cachefleet failed to process {action}; see the server log (request {request_id}).")
            return self._error(api, failure, request_id, action)

    def _error(self, api: ServiceApi, error: ApiError, request_id: str, action: str) -> web.Response:
        kind = self._errors.kind(error.code)
        log.info("%s -> %s: %s", action, error.code, error.message)
        text = api.serializer.error(code=error.code, message=error.message, sender_fault=kind.sender_fault, request_id=request_id)
        return web.Response(
            text=text, status=kind.status, content_type="text/xml", headers={"x-amzn-RequestId": request_id}
        )
