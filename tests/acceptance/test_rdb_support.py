"""Measures again, against the installed engine builds, the RDB facts engine/rdb.py records.

Each build writes a file (its header must be the one SUPPORT says, and the file must verify),
then each build loads that file rewritten to many formats: what it serves must be what
SUPPORT.loads predicts, with strict and (Valkey) relaxed version checking.
"""

from __future__ import annotations

import pytest

from cachefleet.engine import rdb
from cachefleet.engine.catalog import Catalog
from cachefleet.engine.rdb import RdbHeader

BUILDS = {(b.release.engine, b.release.major_minor): b for b in Catalog.discover().binaries()}
FORMATS = [RdbHeader("REDIS", v) for v in (9, 10, 11, 12, 79, 80)] + [RdbHeader("VALKEY", v) for v in (11, 12, 79, 80, 81)]


@pytest.fixture(scope="module")
def written():
    """A file written by each installed build, by (engine, major.minor)."""
    files = {}
    for key, binary in BUILDS.items():
        header, data = rdb.probe_writes(binary.server)
        files[key] = (header, data)
    return files


@pytest.mark.parametrize("key", sorted(rdb.SUPPORT))
def test_each_build_writes_what_is_recorded(key, written, tmp_path):
    if key not in BUILDS:
        pytest.skip(f"{key} is not installed")
    header, data = written[key]
    assert header == rdb.SUPPORT[key].writes
    (tmp_path / "dump.rdb").write_bytes(data)
    facts = rdb.verify(tmp_path / "dump.rdb")
    assert facts.checksummed and facts.written_by == f"{key[0]} {BUILDS[key].release.version}"


@pytest.mark.parametrize("key", sorted(rdb.SUPPORT))
def test_each_build_loads_what_is_recorded(key, written):
    if key not in BUILDS:
        pytest.skip(f"{key} is not installed")
    # Redis 7.0's file has nothing newer formats lack: it loads under any signature that is accepted.
    base = written[("redis", "7.0")][1] if ("redis", "7.0") in written else next(iter(written.values()))[1]
    server = BUILDS[key].server
    for relaxed in (False, True) if key[0] == "valkey" else (False,):
        measured = {f: rdb.probe_loads(server, rdb.rewrite_header(base, f), relaxed=relaxed) for f in FORMATS}
        recorded = {f: rdb.SUPPORT[key].loads(f, relaxed=relaxed) for f in FORMATS}
        assert measured == recorded, f"{key} relaxed={relaxed}"


def test_every_build_loads_the_files_check_loadable_allows_and_only_those(written):
    for (source, _), (header, data) in written.items():
        for (engine, major_minor), binary in BUILDS.items():
            try:
                rdb.check_loadable(header, engine, major_minor)
                allowed = True
            except rdb.RdbIncompatible:
                allowed = False
            assert rdb.probe_loads(binary.server, data) is allowed, f"{source} file into {engine} {major_minor}"
