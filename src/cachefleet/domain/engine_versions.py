"""DescribeCacheEngineVersions: the engine builds installed here."""

from __future__ import annotations

from cachefleet.domain.base import UseCases
from cachefleet.domain.engines import EngineRelease, newest_per_engine, version_key


class EngineVersions(UseCases):
    """The installed engine releases, filtered as DescribeCacheEngineVersions asks."""

    def describe(
        self,
        *,
        engine: str | None = None,
        engine_version: str | None = None,
        family: str | None = None,
        default_only: bool = False,
    ) -> list[EngineRelease]:
        releases = list(self._catalog.releases())
        if engine is not None:
            releases = [r for r in releases if r.engine == engine.lower()]
        if engine_version is not None:
            releases = [r for r in releases if engine_version in (r.version, r.major_minor)]
        if family is not None:
            releases = [r for r in releases if r.family == family]
        if default_only:
            releases = newest_per_engine(releases)
        # One version per minor release, as ElastiCache offers: the newest patch build (what a new
        # cluster asking for that major.minor gets; older builds are service updates' business).
        newest: dict[tuple[str, str], EngineRelease] = {}
        for release in releases:
            key = (release.engine, release.major_minor)
            if key not in newest or version_key(release.version) > version_key(newest[key].version):
                newest[key] = release
        return sorted(newest.values(), key=lambda r: (r.engine, version_key(r.version)))
