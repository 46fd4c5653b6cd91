"""After the security tests (this module runs last in the package): no token or password they used is
anywhere in plain text, in the data dir (store, engine configs, ACL files, logs, metrics), the server
log or /metrics; the files holding the control plane's own node passwords are 0600 in 0700 dirs, and
no engine config names a password."""

from __future__ import annotations

import urllib.request

from helpers import wait_for


def test_no_secret_in_the_data_dir_the_log_or_metrics(locked_server, lec, secrets_used):
    assert len(secrets_used) >= 7, "the security tests register the secrets they use"
    # The groups the tests deleted are gone (their node dirs with them); sec-solo still runs, locked.
    wait_for(lambda: not lec.describe_replication_groups()["ReplicationGroups"]
             and [c["CacheClusterId"] for c in lec.describe_cache_clusters()["CacheClusters"]] == ["sec-solo"],
             timeout=60, what="only sec-solo left")
    wanted = [s.encode() for s in secrets_used]
    found = []
    files = [p for p in locked_server.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files) and any(p.name == "users.acl" for p in files)
    for path in files:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # a renewal replaced a certificate meanwhile (they are renewed every ~12 s here)
        found += [(str(path), s.decode()[:4]) for s in wanted if s in data]
    log = locked_server.log().encode()
    found += [("server log", s.decode()[:4]) for s in wanted if s in log]
    with urllib.request.urlopen(f"{locked_server.url}/metrics", timeout=10) as response:
        metrics = response.read()
    found += [("/metrics", s.decode()[:4]) for s in wanted if s in metrics]
    assert not found, f"secrets in plain text: {found}"

    for path in (p for p in files if p.exists()):
        if path.name in ("control.secret", "secrets.conf", "users.acl", "ca.key") or path.suffix == ".key":
            assert path.stat().st_mode & 0o777 == 0o600, path
            assert path.parent.stat().st_mode & 0o777 == 0o700, path.parent
        if path.name == "engine.conf":
            directives = {line.split(" ", 1)[0] for line in path.read_text().splitlines() if line and line[0] != "#"}
            assert not directives & {"masterauth", "requirepass", "user"}, path
