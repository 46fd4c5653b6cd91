"""AWS Signature Version 4: parsing the Authorization header or a presigned query, and checking it.

In dev mode (the API listens on loopback only) any well-formed credentials are accepted:
the signature is parsed for its scope (region, service) but not checked. Otherwise the
access key must be in the credentials file and the signature must match.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from cachefleet.api.errors import ApiError

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = dt.timedelta(minutes=15)
_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Caller:
    """Who signed a request, and for which region and service (from the SigV4 credential scope)."""

    access_key: str
    region: str
    service: str


@dataclass(frozen=True)
class _Parsed:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    amz_date: str
    presigned: bool
    expires: int | None


def load_credentials(path: Path) -> dict[str, str]:
    """Access key -> secret key, from a file in the AWS credentials format (any number of profiles)."""
    parser = configparser.ConfigParser()
    parser.read_string(path.read_text())
    secrets: dict[str, str] = {}
    for section in parser.sections():
        key = parser.get(section, "aws_access_key_id", fallback=None)
        secret = parser.get(section, "aws_secret_access_key", fallback=None)
        if key and secret:
            secrets[key.strip()] = secret.strip()
    if not secrets:
        raise ValueError(f"{path} holds no aws_access_key_id / aws_secret_access_key pair")
    return secrets


class Authenticator:
    """Checks SigV4 signatures (headers and presigned URLs) against the access keys allowed in."""

    def __init__(self, secrets: Mapping[str, str] | None) -> None:
        """``secrets`` None means dev mode: any well-formed credentials are accepted."""
        self._secrets = secrets

    @property
    def dev_mode(self) -> bool:
        return self._secrets is None

    def authenticate(
        self,
        *,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        now: dt.datetime | None = None,
    ) -> Caller:
        parsed = self._parse(query, headers)
        if self._secrets is not None:
            self._verify(parsed, method=method, path=path, query=query, headers=headers, body=body, now=now)
        return Caller(parsed.access_key, parsed.region, parsed.service)

    @staticmethod
    def _parse(query: Sequence[tuple[str, str]], headers: Mapping[str, str]) -> _Parsed:
        header = headers.get("authorization")
        params = dict(query)
        if header:
            match = _AUTH_HEADER.match(header.strip())
            if not match:
                raise ApiError(
                    "IncompleteSignature",
                    "The Authorization header is not a well-formed AWS4-HMAC-SHA256 signature "
                    "(Credential=..., SignedHeaders=..., Signature=...).",
                )
            credential, signed, signature = match.group("credential", "headers", "signature")
            amz_date = headers.get("x-amz-date", "")
            presigned = False
            expires = None
        elif "X-Amz-Signature" in params:
            if params.get("X-Amz-Algorithm") != ALGORITHM:
                raise ApiError("IncompleteSignature", f"X-Amz-Algorithm must be {ALGORITHM}.")
            credential = params.get("X-Amz-Credential", "")
            signed = params.get("X-Amz-SignedHeaders", "")
            signature = params["X-Amz-Signature"]
            amz_date = params.get("X-Amz-Date", "")
            presigned = True
            try:
                expires = int(params.get("X-Amz-Expires", "900"))
            except ValueError:
                raise ApiError("IncompleteSignature", "X-Amz-Expires must be a number of seconds.") from None
        else:
            raise ApiError(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token: sign it with AWS Signature Version 4 "
                "(any access key works against a Cachefleet listening on loopback).",
            )
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
            raise ApiError(
                "IncompleteSignature",
                f"Credential '{credential}' must have the form <access-key>/<yyyymmdd>/<region>/<service>/aws4_request.",
            )
        access_key, date, region, service, _ = parts
        if not re.fullmatch(r"[0-9]{8}", date) or not region or not service:
            raise ApiError("IncompleteSignature", f"Credential scope '{credential}' is malformed.")
        if not amz_date:
            raise ApiError("IncompleteSignature", "The request must carry X-Amz-Date.")
        return _Parsed(
            access_key=access_key,
            date=date,
            region=region,
            service=service,
            signed_headers=signed.lower().split(";"),
            signature=signature,
            amz_date=amz_date,
            presigned=presigned,
            expires=expires,
        )

    def _verify(
        self,
        parsed: _Parsed,
        *,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        now: dt.datetime | None,
    ) -> None:
        assert self._secrets is not None
        secret = self._secrets.get(parsed.access_key)
        if secret is None:
            raise ApiError("InvalidClientTokenId", "The security token included in the request is invalid.")
        try:
            signed_at = dt.datetime.strptime(parsed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise ApiError("IncompleteSignature", f"X-Amz-Date '{parsed.amz_date}' is not yyyymmddThhmmssZ.") from None
        now = now or dt.datetime.now(dt.UTC)
        if parsed.presigned:
            if parsed.expires is not None and now > signed_at + dt.timedelta(seconds=parsed.expires):
                raise ApiError("RequestExpired", f"Request has expired: it was signed at {parsed.amz_date}.")
        elif abs(now - signed_at) > MAX_SKEW:
            raise ApiError(
                "SignatureDoesNotMatch",
                f"Signature expired: {parsed.amz_date} is more than 15 minutes from the server time "
                f"{now.strftime('%Y%m%dT%H%M%SZ')}.",
            )
        if "host" not in parsed.signed_headers:
            raise ApiError("SignatureDoesNotMatch", "The Host header must be signed.")
        # Presigned URLs of most services hash the (empty) body; S3-style ones say UNSIGNED-PAYLOAD.
        payloads = [headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()]
        if parsed.presigned:
            payloads.append(UNSIGNED_PAYLOAD)
        scope = f"{parsed.date}/{parsed.region}/{parsed.service}/aws4_request"
        for payload in payloads:
            canonical = canonical_request(
                method=method,
                path=path,
                query=[(k, v) for k, v in query if not (parsed.presigned and k == "X-Amz-Signature")],
                headers=headers,
                signed_headers=parsed.signed_headers,
                payload_hash=payload,
            )
            expected = signature(secret, parsed.date, parsed.region, parsed.service, parsed.amz_date, scope, canonical)
            if hmac.compare_digest(expected, parsed.signature):
                return
        raise ApiError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_request(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    canonical_path = quote(unquote(path) or "/", safe="/~")
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_uri_encode(key), _uri_encode(value)) for key, value in query)
    )
    lines = []
    for name in signed_headers:
        value = headers.get(name, "")
        lines.append(f"{name}:{' '.join(value.split())}")
    return "\n".join(
        [method.upper(), canonical_path, canonical_query, "\n".join(lines) + "\n", ";".join(signed_headers), payload_hash]
    )


def signature(secret: str, date: str, region: str, service: str, amz_date: str, scope: str, canonical: str) -> str:
    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    key = sign(sign(sign(sign(("AWS4" + secret).encode(), date), region), service), "aws4_request")
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
