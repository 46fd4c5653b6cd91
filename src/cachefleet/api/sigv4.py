"""AWS Signature Version 4: parsing the Authorization header or a presigned query, and checking it.

In dev mode (the API listens on loopback only) any well-formed credentials are accepted:
the signature is parsed for its scope (region, service) but not checked. Otherwise the
access key must be in the credentials file and the signature must match.

Every refusal answers AWS's error code and, where AWS has one, its wording: an unknown key
is InvalidClientTokenId, a wrong secret or tampered request SignatureDoesNotMatch, a clock
more than 15 minutes off SignatureDoesNotMatch ("Signature expired: ... is now earlier than
... (... - 15 min.)" / "Signature not yet current: ..."), a presigned URL past its
X-Amz-Expires RequestExpired ("Request has expired."), and a scope naming a region that is
not one, a service not served here, or another day than X-Amz-Date SignatureDoesNotMatch.

The credentials file is the AWS CLI's format (profiles with ``aws_access_key_id`` and
``aws_secret_access_key``). A profile may also carry an IAM-style identity policy for its key
(see ``api/policy.py``): ``policy`` holds the JSON itself (continuation lines indented, as
INI allows), or ``policy_file`` names a JSON file (relative to the credentials file). A
profile without either has full access, as before. The running server reads the file again
when it changes (``CredentialsFile``), so a key made with ``cachefleet credentials create``
works at once; a file that no longer loads keeps the keys it had, with an error in the log.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import secrets as random_secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from cachefleet.api.errors import ApiError
from cachefleet.api.policy import Policy, PolicyError
from cachefleet.domain.identifiers import REGION_PATTERN

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
# The signing names of the services one Cachefleet endpoint serves.
SERVICES = ("elasticache", "monitoring", "logs")
MAX_PRESIGNED_EXPIRES = 604800  # seven days, SigV4's limit for a presigned URL
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = dt.timedelta(minutes=15)
_AUTH_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class AccessKey:
    """One access key of the credentials file: its secret, the profile (user) it was given
    under, and the policy that limits it (None: full access)."""

    access_key: str
    secret: str = field(repr=False)
    user: str = ""
    policy: Policy | None = None


@dataclass(frozen=True)
class Caller:
    """Who signed a request (access key, IAM user, policy), and for which region and service."""

    access_key: str
    region: str
    service: str
    user: str = ""  # the credentials-file profile; the access key itself in dev mode
    policy: Policy | None = None  # None: no limit (a key without a policy, or dev mode)


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


def load_access_keys(path: Path) -> dict[str, AccessKey]:
    """Access key -> AccessKey (secret, profile, policy) from a file in the AWS credentials
    format with any number of profiles. A policy that cannot be evaluated exactly is a
    ValueError naming the profile: a key must never run with less protection than written."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text())
    keys: dict[str, AccessKey] = {}
    for section in parser.sections():
        key = parser.get(section, "aws_access_key_id", fallback=None)
        secret = parser.get(section, "aws_secret_access_key", fallback=None)
        if not (key and secret):
            continue
        inline = parser.get(section, "policy", fallback=None)
        named = parser.get(section, "policy_file", fallback=None)
        if inline is not None and named is not None:
            raise ValueError(f"profile [{section}] has both policy and policy_file; keep one")
        policy = None
        try:
            if inline is not None:
                policy = Policy.parse(inline)
            elif named is not None:
                policy_path = (path.parent / named.strip()).resolve()
                policy = Policy.parse(policy_path.read_text())
        except PolicyError as error:
            raise ValueError(f"profile [{section}]: {error}") from None
        except OSError as error:
            raise ValueError(f"profile [{section}]: policy_file {named}: {error.strerror or error}") from None
        keys[key.strip()] = AccessKey(access_key=key.strip(), secret=secret.strip(), user=section, policy=policy)
    if not keys:
        raise ValueError(f"{path} holds no aws_access_key_id / aws_secret_access_key pair")
    return keys


def load_credentials(path: Path) -> dict[str, str]:
    """Access key -> secret key (the keys' policies are in ``load_access_keys``)."""
    return {key: entry.secret for key, entry in load_access_keys(path).items()}


class CredentialsFile:
    """The access keys of a credentials file, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._keys = load_access_keys(path)  # a file that does not load stops the start (ValueError/OSError)

    def _stat(self) -> tuple[int, int]:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def keys(self) -> dict[str, AccessKey]:
        try:
            stamp = self._stat()
        except OSError:
            return self._keys
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._keys = load_access_keys(self.path)
                log.info("credentials file %s read again: %d access key(s)", self.path, len(self._keys))
            except (OSError, ValueError) as error:
                log.error("credentials file %s no longer loads (%s); keeping its previous keys", self.path, error)
        return self._keys


def new_access_key() -> tuple[str, str]:
    """An access key id (AKIA + 16 of IAM's base32 alphabet) and a 40-character secret."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    key_id = "AKIA" + "".join(random_secrets.choice(alphabet) for _ in range(16))
    secret = random_secrets.token_urlsafe(30)[:40]
    return key_id, secret


def append_access_key(path: Path, *, user: str | None = None, policy: str | None = None) -> AccessKey:
    """Makes a key pair and appends it to the credentials file (created 0600 if missing) under the
    profile ``user``, with ``policy`` (a JSON identity policy, checked first) inline."""
    parsed = Policy.parse(policy) if policy is not None else None  # PolicyError: nothing is written
    key_id, secret = new_access_key()
    profile = user or f"key-{key_id[-8:].lower()}"
    if not re.fullmatch(r"[A-Za-z0-9+=,.@_-]{1,64}", profile):
        raise ValueError(f"user name {profile!r}: use 1 to 64 letters, digits and +=,.@_- (an IAM user name)")
    existing = configparser.ConfigParser(interpolation=None)
    if path.exists():
        existing.read_string(path.read_text())
        if existing.has_section(profile):
            raise ValueError(f"{path} already has a profile [{profile}]; choose another --user")
    lines = [f"[{profile}]", f"aws_access_key_id = {key_id}", f"aws_secret_access_key = {secret}"]
    if policy is not None:
        lines.append("policy = " + json.dumps(json.loads(policy), separators=(",", ":")))
    text = ("\n" if path.exists() and path.read_text() and not path.read_text().endswith("\n") else "") + "\n".join(lines) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return AccessKey(access_key=key_id, secret=secret, user=profile, policy=parsed)


def _signature_mismatch(message: str) -> ApiError:
    return ApiError("SignatureDoesNotMatch", message)


class Authenticator:
    """Checks SigV4 signatures (headers and presigned URLs) against the access keys allowed in."""

    def __init__(
        self, secrets: Mapping[str, str] | Mapping[str, AccessKey] | CredentialsFile | None, *,
        services: Sequence[str] = SERVICES,
    ) -> None:
        """``secrets`` None means dev mode: any well-formed credentials are accepted. Otherwise
        access key -> secret, or -> AccessKey (with the profile and policy of the key), or a
        CredentialsFile (read again when it changes)."""
        self._file = secrets if isinstance(secrets, CredentialsFile) else None
        self._fixed: dict[str, AccessKey] | None = None
        if secrets is not None and not isinstance(secrets, CredentialsFile):
            self._fixed = {
                key: value if isinstance(value, AccessKey) else AccessKey(access_key=key, secret=value, user=key)
                for key, value in secrets.items()
            }
        self._services = tuple(services)

    @property
    def _keys(self) -> dict[str, AccessKey] | None:
        if self._file is not None:
            return self._file.keys()
        return self._fixed

    @property
    def dev_mode(self) -> bool:
        return self._file is None and self._fixed is None

    def authenticate(
        self,
        *,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        now: dt.datetime | None = None,
        expected_service: str | None = None,
    ) -> Caller:
        """The caller of a well-signed request. ``expected_service`` is the service the request
        itself names (an X-Amz-Target prefix, a CBOR path), when it names one."""
        parsed = self._parse(query, headers)
        self._check_scope(parsed, expected_service)
        if self.dev_mode:
            return Caller(parsed.access_key, parsed.region, parsed.service, user=parsed.access_key)
        entry = self._verify(parsed, method=method, path=path, query=query, headers=headers, body=body, now=now)
        return Caller(parsed.access_key, parsed.region, parsed.service, user=entry.user, policy=entry.policy)

    def _check_scope(self, parsed: _Parsed, expected_service: str | None) -> None:
        if not REGION_PATTERN.match(parsed.region):
            raise _signature_mismatch(f"Credential should be scoped to a valid region, not '{parsed.region}'. ")
        if expected_service is not None and parsed.service != expected_service:
            raise _signature_mismatch(f"Credential should be scoped to correct service: '{expected_service}'. ")
        if parsed.service not in self._services:
            raise _signature_mismatch(
                f"Credential should be scoped to correct service: {' or '.join(repr(s) for s in self._services)}, "
                f"not '{parsed.service}'. "
            )
        if not parsed.amz_date.startswith(parsed.date):
            raise _signature_mismatch(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{parsed.date}' != '{parsed.amz_date[:8]}', from '{parsed.amz_date}'."
            )

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
            if not 1 <= expires <= MAX_PRESIGNED_EXPIRES:
                raise ApiError(
                    "IncompleteSignature",
                    f"X-Amz-Expires must be from 1 to {MAX_PRESIGNED_EXPIRES} seconds (seven days), not {expires}.",
                )
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
    ) -> AccessKey:
        keys = self._keys
        assert keys is not None
        entry = keys.get(parsed.access_key)
        if entry is None:
            raise ApiError("InvalidClientTokenId", "The security token included in the request is invalid.")
        try:
            signed_at = dt.datetime.strptime(parsed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise ApiError("IncompleteSignature", f"X-Amz-Date '{parsed.amz_date}' is not yyyymmddThhmmssZ.") from None
        now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        stamp = "%Y%m%dT%H%M%SZ"
        if signed_at > now + MAX_SKEW:
            raise _signature_mismatch(
                f"Signature not yet current: {parsed.amz_date} is still later than "
                f"{(now + MAX_SKEW).strftime(stamp)} ({now.strftime(stamp)} + 15 min.)"
            )
        if parsed.presigned:
            if parsed.expires is not None and now > signed_at + dt.timedelta(seconds=parsed.expires):
                raise ApiError("RequestExpired", "Request has expired.")
        elif signed_at < now - MAX_SKEW:
            raise _signature_mismatch(
                f"Signature expired: {parsed.amz_date} is now earlier than "
                f"{(now - MAX_SKEW).strftime(stamp)} ({now.strftime(stamp)} - 15 min.)"
            )
        if "host" not in parsed.signed_headers:
            raise _signature_mismatch("The Host header must be signed.")
        secret = entry.secret
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
            # Bytes: compare_digest refuses str past ASCII, and a presigned X-Amz-Signature can be anything.
            if hmac.compare_digest(expected.encode(), parsed.signature.encode("utf-8", "surrogateescape")):
                return entry
        raise _signature_mismatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
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
    canonical_path = quote(unquote(path, errors="surrogateescape") or "/", safe="/~", errors="surrogateescape")
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


def _bytes(text: str) -> bytes:
    """UTF-8, with the bytes of a header that was not UTF-8 as they came (aiohttp decodes header values
    with surrogateescape): a signature covers the bytes as sent."""
    return text.encode("utf-8", "surrogateescape")


def signature(secret: str, date: str, region: str, service: str, amz_date: str, scope: str, canonical: str) -> str:
    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, _bytes(message), hashlib.sha256).digest()

    key = sign(sign(sign(sign(_bytes("AWS4" + secret), date), region), service), "aws4_request")
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(_bytes(canonical)).hexdigest()])
    return hmac.new(key, _bytes(to_sign), hashlib.sha256).hexdigest()
