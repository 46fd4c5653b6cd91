"""Engine builds (Valkey, Redis OSS) and how a request's Engine/EngineVersion picks one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachefleet.domain.errors import InvalidParameterValue

ENGINES = ("valkey", "redis")

# What a memcached request is told, wherever an Engine or a parameter group family is taken.
MEMCACHED_REFUSED = (
    "Engine memcached is not supported: Cachefleet serves Valkey and Redis OSS only; "
    "use Engine valkey or redis (parameter group families valkey* or redis*)."
)


def is_memcached(value: object) -> bool:
    """An Engine (memcached) or a parameter group family (memcached1.6) of Memcached."""
    return isinstance(value, str) and value.strip().lower().startswith("memcached")


def refuse_memcached(params: Mapping[str, Any], *, operation: str) -> None:
    """Refuses a request for Memcached before any other check of the call: a new user asking for
    memcached should learn that first, not that a node count or a node type is wrong."""
    for member in ("Engine", "CacheParameterGroupFamily"):
        if is_memcached(params.get(member)):
            raise InvalidParameterValue(f"{operation}: {MEMCACHED_REFUSED}")


@dataclass(frozen=True)
class EngineRelease:
    """An engine build installed on this machine."""

    engine: str  # "valkey" | "redis"
    version: str  # full version as the binary reports it, e.g. "8.1.8"
    family: str  # parameter group family, e.g. "valkey8"
    description: str
    tls: bool = False  # built with TLS (in-transit encryption needs it)

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def resolve_engine(releases: Sequence[EngineRelease], engine: str | None, version: str | None) -> EngineRelease:
    """Picks the installed build for an Engine/EngineVersion request (newest when no version)."""
    installed = ", ".join(f"{r.engine} {r.version}" for r in releases) or "none"
    name = (engine or default_engine(releases)).lower()
    if is_memcached(name):
        raise InvalidParameterValue(f"{MEMCACHED_REFUSED} Installed: {installed}.")
    if name not in ENGINES:
        raise InvalidParameterValue(f"Invalid Engine '{engine}': use valkey or redis. Installed: {installed}.")
    candidates = sorted((r for r in releases if r.engine == name), key=lambda r: version_key(r.version), reverse=True)
    if not candidates:
        raise InvalidParameterValue(f"Engine {name} is not installed on this Cachefleet host. Installed: {installed}.")
    if not version:
        return candidates[0]
    wanted = version.lower().removesuffix(".x")
    for release in candidates:
        if release.version == wanted or release.major_minor == wanted or release.version.split(".")[0] == wanted:
            return release
    raise InvalidParameterValue(
        f"EngineVersion {version} of {name} is not installed on this Cachefleet host. Installed: {installed}."
    )


def release_of(releases: Sequence[EngineRelease], engine: str, version: str) -> EngineRelease:
    """The installed build a resource runs."""
    for release in releases:
        if release.engine == engine and release.version == version:
            return release
    raise InvalidParameterValue(f"Engine {engine} {version} is no longer installed on this Cachefleet host.")


def default_engine(releases: Sequence[EngineRelease]) -> str:
    """ElastiCache defaults to redis; on a host without Redis OSS, valkey is the useful default."""
    if any(r.engine == "redis" for r in releases):
        return "redis"
    return "valkey"


def newest_per_engine(releases: Sequence[EngineRelease]) -> list[EngineRelease]:
    newest: dict[str, EngineRelease] = {}
    for release in releases:
        current = newest.get(release.engine)
        if current is None or version_key(release.version) > version_key(current.version):
            newest[release.engine] = release
    return list(newest.values())
