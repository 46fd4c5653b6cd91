"""DescribeCacheEngineVersions."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain.engines import EngineRelease


def view(release: EngineRelease) -> dict[str, Any]:
    return {
        "Engine": release.engine,
        "EngineVersion": release.major_minor,
        "CacheParameterGroupFamily": release.family,
        "CacheEngineDescription": "Valkey" if release.engine == "valkey" else "Redis OSS",
        # CacheEngineVersion has no member for it: the description says whether the build has TLS.
        "CacheEngineVersionDescription": f"{release.description}; in-transit encryption (TLS): "
        + ("supported" if release.tls else "not supported (built without TLS)"),
    }


def describe_cache_engine_versions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    releases = ctx.elasticache.engine_versions.describe(
        engine=params.get("Engine"),
        engine_version=params.get("EngineVersion"),
        family=params.get("CacheParameterGroupFamily"),
        default_only=params.get("DefaultOnly", False),
    )
    page, marker = paginate(releases, params)
    return {"CacheEngineVersions": [view(r) for r in page], "Marker": marker}
