"""The CA, node certificates and the renewal decision (pure, or files in a temp dir only)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from cachefleet.engine import tls

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_the_ca_is_created_once_private_and_reused(tmp_path):
    directory = tmp_path / "data" / "tls"
    ca = tls.CertificateAuthority.load_or_create(directory, now=NOW)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (directory / "ca.crt").stat().st_mode & 0o777 == 0o644
    again = tls.CertificateAuthority.load_or_create(directory)
    assert again.pem() == ca.pem() and again.fingerprint == ca.fingerprint
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and ca.cert.not_valid_after_utc - NOW > dt.timedelta(days=3000)
    assert not list(directory.glob(".*tmp"))  # no temporary file left behind


def test_node_certificates_name_every_address_and_are_ca_signed(tmp_path):
    ca = tls.CertificateAuthority.load_or_create(tmp_path / "tls", now=NOW)
    files = ca.issue_files(tmp_path / "tls" / "nodes" / "g-001", "g-001", ["127.80.0.5", "127.80.0.200", "127.80.0.5"],
                           now=NOW)
    assert files.cert.is_absolute() and files.key.is_absolute() and files.ca == (tmp_path / "tls" / "ca.crt").resolve()
    assert files.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    facts = tls.CertificateFacts.of(files.cert.read_bytes())
    assert facts.addresses == {"127.80.0.5", "127.80.0.200"}
    assert facts.issuer_fingerprint == ca.fingerprint
    assert facts.not_after == NOW + tls.NODE_LIFETIME
    assert files.serial == format(cert.serial_number, "x")
    assert tls.current_files(files.cert.parent, ca.cert_path) == files


def test_renewal_decision():
    ca_print = "ab" * 20
    facts = tls.CertificateFacts(NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=89),
                                 frozenset({"127.80.0.5", "127.80.0.200"}), ca_print)

    def decide(f, addresses=("127.80.0.5",), at=NOW, ca=ca_print):
        return tls.renewal(f, addresses=addresses, ca_fingerprint=ca, now=at)

    assert decide(facts).action is tls.Renewal.KEEP
    assert decide(None).reason == "the node has no certificate"
    moved = decide(facts, addresses=("127.80.0.5", "127.80.0.9"))
    assert moved.action is tls.Renewal.RENEW and "127.80.0.9" in moved.reason
    assert decide(facts, ca="cd" * 20).reason == "the certificate was issued by another CA"
    soon = decide(facts, at=NOW + dt.timedelta(days=60))
    assert soon.action is tls.Renewal.RENEW and "expires in 29 days" in soon.reason
    assert decide(facts, at=NOW + dt.timedelta(days=58)).action is tls.Renewal.KEEP
    assert "expired" in decide(facts, at=NOW + dt.timedelta(days=100)).reason
    assert decide(facts, at=NOW - dt.timedelta(days=2)).action is tls.Renewal.RENEW


def test_engine_settings_of_a_tls_node(tmp_path):
    files = tls.NodeFiles(cert=tmp_path / "n.crt", key=tmp_path / "n.key", ca=tmp_path / "ca.crt")
    settings = tls.tls_settings(files, port=6379, cluster=True)
    assert settings == {
        "port": "0", "tls-port": "6379", "tls-cert-file": str(tmp_path / "n.crt"), "tls-key-file": str(tmp_path / "n.key"),
        "tls-ca-cert-file": str(tmp_path / "ca.crt"), "tls-replication": "yes", "tls-auth-clients": "no",
        "tls-cluster": "yes",
    }
    assert "tls-cluster" not in tls.tls_settings(files, port=6379, plain_port=6380)
    assert tls.tls_settings(files, port=6379, plain_port=6380)["port"] == "6380"
    assert tls.renewal_command(files) == ("CONFIG", "SET", "tls-cert-file", str(files.cert), "tls-key-file", str(files.key))
