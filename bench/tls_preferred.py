"""TransitEncryptionMode preferred on Redis 7.0: what one port for TLS *and* plain text would cost.

ElastiCache's preferred mode serves TLS and plain connections on the same endpoint and port.
Redis 7.0 cannot (``port`` and ``tls-port`` must differ; tests/acceptance/test_engine_tls.py),
so the one-port variant needs a first-byte demultiplexer in front of the engine: a TLS client
speaks first with a handshake record (0x16), a RESP client with ``*``/an inline command, and
the demultiplexer splices the bytes, untouched, to the engine's tls-port or plain port (TLS
still ends in the engine; the demultiplexer never sees plain text of a TLS client).

This measures that design with a small asyncio demultiplexer (this script's own, not product
code), side by side with direct connections to the engine's two ports, interleaved, medians:
  plain via demux / plain direct, and TLS via demux / TLS direct.
Needs redis-benchmark and an engine build with TLS (Debian: redis-server, redis-tools).
Usage: python bench/tls_preferred.py [--rounds 5] [--requests 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import machine

from cachefleet.engine import tls
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.config import NodeConfig, render

NODE, ENDPOINT = "127.93.0.1", "127.93.0.2"
TLS_PORT, PLAIN_PORT, PORT = 6379, 6380, 6379
TLS_HANDSHAKE = 0x16


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    first = await client_reader.read(65536)
    if not first:
        client_writer.close()
        return
    port = TLS_PORT if first[0] == TLS_HANDSHAKE else PLAIN_PORT
    engine_reader, engine_writer = await asyncio.open_connection(NODE, port)
    engine_writer.write(first)
    await asyncio.gather(_pump(client_reader, engine_writer), _pump(engine_reader, client_writer))


def start_demux() -> threading.Thread:
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            server = await asyncio.start_server(_serve, ENDPOINT, PORT)
            ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    return thread


def benchmark(address: str, port: int, requests: int, extra: list[str]) -> dict[str, float]:
    out = subprocess.run(
        ["redis-benchmark", "-h", address, "-p", str(port), "-c", "50", "-n", str(requests), "-t", "set,get", "--csv",
         *extra],
        capture_output=True, text=True, check=True,
    ).stdout
    return {row[0]: float(row[1]) for row in list(csv.reader(io.StringIO(out)))[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100000)
    args = parser.parse_args()
    binary = next((b for b in Catalog.discover().binaries() if tls.tls_capable(b.server)), None)
    if binary is None or not shutil.which("redis-benchmark"):
        sys.exit("needs an engine build with TLS and redis-benchmark: apt-get install redis-server redis-tools")
    root = Path(tempfile.mkdtemp(prefix="bench-preferred-"))
    ca = tls.CertificateAuthority.load_or_create(root / "tls")
    files = ca.issue_files(root / "tls" / "node", "node", [NODE, ENDPOINT])
    (root / "data").mkdir()
    config = NodeConfig(address=NODE, port=TLS_PORT, directory=root, maxmemory=2**30,
                        extra=tls.tls_settings(files, port=TLS_PORT, plain_port=PLAIN_PORT))
    (root / "engine.conf").write_text(render(config))
    engine = subprocess.Popen([str(binary.server), str(root / "engine.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex((NODE, PLAIN_PORT)) == 0:
                    break
            time.sleep(0.01)
        start_demux()
        print(f"redis-benchmark -c 50 -t set,get, {args.requests} requests per round, {args.rounds} rounds; {machine()}")
        print(f"engine: {binary.release.engine} {binary.release.version}; demux: asyncio, in this process")
        tls_args = ["--tls", "--cacert", str(ca.cert_path)]
        sides = {
            "plain via demux": (ENDPOINT, PORT, []), "plain direct": (NODE, PLAIN_PORT, []),
            "tls via demux": (ENDPOINT, PORT, tls_args), "tls direct": (NODE, TLS_PORT, tls_args),
        }
        results: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
        names = list(sides)
        for round_number in range(args.rounds):
            for name in names if round_number % 2 == 0 else names[::-1]:
                address, port, extra = sides[name]
                for test, rps in benchmark(address, port, args.requests, extra).items():
                    results[name].setdefault(test, []).append(rps)
        for via, direct in (("plain via demux", "plain direct"), ("tls via demux", "tls direct")):
            for test in results[via]:
                a, b = statistics.median(results[via][test]), statistics.median(results[direct][test])
                print(f"  {test}: {via} {a:,.0f} rps, {direct} {b:,.0f} rps, ratio {a / b:.3f}")
    finally:
        engine.terminate()
        engine.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
