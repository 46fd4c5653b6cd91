"""The locks of the nodes, as the control plane holds them: each node's own control-plane password,
the ACL users a node must have, its TLS certificate and settings, and how to reach it.

Every node has Cachefleet's own ACL user (``cachefleet-control``, allowed only the commands the
control plane sends: engine/acl.py) with a random password of its own, so that no lock a user
sets (an AUTH token, a user group whose ``default`` is ``off``) ever blinds the control plane.
One password per node, not per shard: a node keeps its password for its whole life (a warm
node given to a group, a standalone cluster that becomes a group's primary, a retained
primary: none needs re-keying), and replication is authenticated per link: a replica's
``masterauth`` is its primary's password, set before it follows a primary.

Files, all in the node's own directory (0700, removed with it) and never in ``engine.conf``:
``control.secret`` (0600, the password), ``users.acl`` (0600, the ACL file a node starts with:
password hashes only), ``secrets.conf`` (0600, included by a replica's config: its
``masterauth``), ``tls/node-<serial>.crt|.key`` (the key 0600). The CA is ``<data-dir>/tls``.

What a node must have comes from the records: a member follows its replication group's
``Security``, a standalone cluster its own; the users are the user group's (a user named
``default`` replaces the engine's default user), or the engine's default user with the AUTH
token's hashes, or open as the engine's default is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.credentials import CONTROL_PLANE_USER, DEFAULT_USER_NAME, TransitEncryptionMode
from cachefleet.domain.identifiers import Region
from cachefleet.domain.ports import StateStore
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.security import Security, preferred_tls_port
from cachefleet.domain.users import (
    BUILT_IN_DEFAULT_ID,
    User,
    UserGroup,
    UserGroupStatus,
    UserStatus,
    built_in_default,
)
from cachefleet.engine import acl, tls
from cachefleet.engine.access import NodeAccess
from cachefleet.engine.cluster import atomic_slot_migration
from cachefleet.engine.files import atomic_write, private_dir

log = logging.getLogger(__name__)

PASSWORD_FILE = "control.secret"
ACL_FILE = "users.acl"
SECRETS_INCLUDE = "secrets.conf"
TLS_DIR = "tls"
# The engine's own default user: everything, no password (a node nobody locked).
OPEN_ACCESS = "on ~* &* +@all"


def fingerprint(users: Sequence[acl.WantedUser]) -> str:
    """Identifies a set of wanted users (names, access strings, hashes): a node whose last sync had
    this fingerprint needs no other."""
    digest = hashlib.sha256()
    for user in sorted(users, key=lambda u: u.name):
        digest.update(repr((user.name, user.access_string, tuple(sorted(user.password_hashes)), user.nopass)).encode())
    return digest.hexdigest()


def mode_name(mode: TransitEncryptionMode | None) -> str:
    return mode.value if mode is not None else "plain"


@dataclass(frozen=True)
class Certificate:
    """A node's current certificate files, and whether they were just issued (and why)."""

    files: tls.NodeFiles
    issued: bool
    reason: str


class Locks:
    """Passwords, ACL users, certificates and access of every node (see the module docstring)."""

    def __init__(
        self,
        *,
        store: StateStore,
        node_dir: Callable[[str], Path],
        ca: tls.CertificateAuthority | None = None,
        certificate_lifetime: dt.timedelta = tls.NODE_LIFETIME,
    ) -> None:
        self.store = store
        self._node_dir = node_dir
        self.ca = ca
        self.certificate_lifetime = certificate_lifetime
        self._passwords: dict[str, str] = {}
        self._facts: dict[Path, tls.CertificateFacts] = {}

    # ------------------------------------------------------------------ passwords
    def password(self, key: str) -> str | None:
        """The node's control-plane password (None for a node started before nodes had one)."""
        cached = self._passwords.get(key)
        if cached is not None:
            return cached
        try:
            value = (self._node_dir(key) / PASSWORD_FILE).read_text().strip()
        except OSError:
            return None
        self._passwords[key] = value
        return value

    def ensure_password(self, key: str) -> str:
        found = self.password(key)
        if found is not None:
            return found
        directory = private_dir(self._node_dir(key))
        value = acl.new_password()
        atomic_write(directory / PASSWORD_FILE, value + "\n")
        self._passwords[key] = value
        return value

    def forget(self, key: str) -> None:
        self._passwords.pop(key, None)

    # ------------------------------------------------------------------ what a node must have
    def group_of(self, cluster: CacheCluster) -> ReplicationGroup | None:
        if cluster.replication_group_id is None:
            return None
        return self.store.get(ReplicationGroup, cluster.region, cluster.replication_group_id)

    def security(self, cluster: CacheCluster) -> Security:
        group = self.group_of(cluster)
        return group.security if group is not None else cluster.security

    def mode(self, cluster: CacheCluster) -> TransitEncryptionMode | None:
        return self.security(cluster).transit_encryption_mode

    def users(self, cluster: CacheCluster, key: str) -> list[acl.WantedUser]:
        """Every ACL user the node must have: the control plane's (and on a build with atomic slot
        migration the one a source hands slots over as), then its clients'."""
        found = self._own_users(key, cluster.engine, cluster.engine_version)
        security = self.security(cluster)
        if security.user_group_ids:
            found += self.user_group_users(cluster.region, security.user_group_ids)
        elif security.auth_token_hashes:
            found.append(acl.WantedUser(DEFAULT_USER_NAME, OPEN_ACCESS, security.auth_token_hashes))
        else:
            found.append(acl.WantedUser(DEFAULT_USER_NAME, OPEN_ACCESS, nopass=True))
        return found

    def unclaimed_users(self, key: str, engine: str, version: str) -> list[acl.WantedUser]:
        """The users of a node no cluster owns yet (a warm node): the control plane's, and the
        engine's open default user (the cluster that takes the node gets its own users then)."""
        return [*self._own_users(key, engine, version), acl.WantedUser(DEFAULT_USER_NAME, OPEN_ACCESS, nopass=True)]

    def _own_users(self, key: str, engine: str, version: str) -> list[acl.WantedUser]:
        password = self.ensure_password(key)
        if not atomic_slot_migration(engine, version):
            return [acl.control_plane_user(password)]
        return [acl.control_plane_user(password, atomic_slots=True), acl.slot_import_user(password)]

    def unclaimed_settings(self, key: str) -> dict[str, str]:
        return {"aclfile": str((self._node_dir(key) / ACL_FILE).resolve()), "masteruser": CONTROL_PLANE_USER}

    def unclaimed_access(self, address: str, port: int) -> NodeAccess:
        password = self.password(address)
        return NodeAccess(address, port, username=CONTROL_PLANE_USER if password else None, password=password)

    def user_group_users(self, region: str, user_group_ids: Sequence[str]) -> list[acl.WantedUser]:
        wanted: dict[str, acl.WantedUser] = {}
        for group_id in user_group_ids:
            group = self.store.get(UserGroup, region, group_id)
            if group is None or group.status == UserGroupStatus.DELETING:
                continue
            for user_id in group.user_ids:
                user = self.store.get(User, region, user_id)
                if user is None and user_id == BUILT_IN_DEFAULT_ID:
                    user = built_in_default(Region(region))
                if user is None or user.status == UserStatus.DELETING or user.user_name == CONTROL_PLANE_USER:
                    continue
                wanted[user.user_name] = acl.WantedUser(
                    user.user_name, user.access_string, user.password_hashes, nopass=user.nopass
                )
        # A user group always has a default user; should its record be gone, nobody gets in as default.
        wanted.setdefault(DEFAULT_USER_NAME, acl.WantedUser(DEFAULT_USER_NAME, "off"))
        return list(wanted.values())

    def write_aclfile(self, key: str, users: Sequence[acl.WantedUser]) -> Path:
        directory = private_dir(self._node_dir(key))
        return atomic_write(directory / ACL_FILE, "".join(u.acl_line() + "\n" for u in users))

    # ------------------------------------------------------------------ TLS
    def addresses(self, cluster: CacheCluster) -> list[str]:
        """The IP SANs of a node's certificate: its own address and every endpoint of its group (an
        endpoint moves from node to node; whichever holds it must present a valid certificate)."""
        found = [cluster.node.address]
        group = self.group_of(cluster)
        if group is not None:
            found += list(group.addresses)
        return list(dict.fromkeys(found))

    def facts(self, path: Path) -> tls.CertificateFacts:
        cached = self._facts.get(path)
        if cached is None:
            cached = self._facts[path] = tls.CertificateFacts.of(path.read_bytes())
        return cached

    def certificate(self, cluster: CacheCluster, key: str, *, now: dt.datetime) -> Certificate:
        """The node's certificate: the current one, or a new one when renewal says so (files written
        under new names: the engine switches to them with one CONFIG SET)."""
        if self.ca is None:
            raise RuntimeError("in-transit encryption needs the CA, which this control plane was started without")
        directory = self._node_dir(key) / TLS_DIR
        current = tls.current_files(directory, self.ca.cert_path)
        addresses = self.addresses(cluster)
        decision = tls.renewal(
            self.facts(current.cert) if current is not None else None,
            addresses=addresses, ca_fingerprint=self.ca.fingerprint, now=now,
            renew_before=self.certificate_lifetime / 3,
        )
        if current is not None and decision.action is tls.Renewal.KEEP:
            return Certificate(current, issued=False, reason=decision.reason)
        files = self.ca.issue_files(directory, cluster.cluster_id, addresses, now=now, lifetime=self.certificate_lifetime)
        return Certificate(files, issued=True, reason=decision.reason)

    def prune(self, key: str, keep: tls.NodeFiles) -> None:
        for path in tls.prune(self._node_dir(key) / TLS_DIR, keep):
            self._facts.pop(path.resolve(), None)

    def tls_settings(self, files: tls.NodeFiles, mode: TransitEncryptionMode, *, port: int, sharded: bool) -> dict[str, str]:
        """Required: TLS on the group's port for clients, replication and the cluster bus. Preferred:
        plain text keeps the port, TLS is served on the next one; replication stays plain until
        required (see security.preferred_tls_port)."""
        if mode is TransitEncryptionMode.REQUIRED:
            return tls.tls_settings(files, port=port, cluster=sharded)
        settings = tls.tls_settings(files, port=preferred_tls_port(port), plain_port=port)
        settings["tls-replication"] = "no"
        return settings

    @staticmethod
    def plain_settings() -> dict[str, str]:
        return {"tls-port": "0"}

    # ------------------------------------------------------------------ engine settings and access
    def current_files(self, cluster: CacheCluster, key: str, *, now: dt.datetime) -> tls.NodeFiles:
        """The certificate the node runs with (the newest issue); a first one if it has none."""
        if self.ca is not None:
            found = tls.current_files(self._node_dir(key) / TLS_DIR, self.ca.cert_path)
            if found is not None:
                return found
        return self.certificate(cluster, key, now=now).files

    def engine_settings(
        self, cluster: CacheCluster, key: str, *, sharded: bool, replica_of: tuple[str, int] | None, now: dt.datetime,
        mode: TransitEncryptionMode | None, starting: bool = True,
    ) -> dict[str, str]:
        """What a node's engine.conf adds for its locks (no secret in it: only paths). A node being
        started gets a certificate renewed if it needs one; a running node's file names the
        certificate it runs with (renewal is the access workflow's, with CONFIG SET)."""
        directory = self._node_dir(key)
        settings = {"aclfile": str((directory / ACL_FILE).resolve()), "masteruser": CONTROL_PLANE_USER}
        if mode is not None:
            files = self.certificate(cluster, key, now=now).files if starting else self.current_files(cluster, key, now=now)
            settings.update(self.tls_settings(files, mode, port=cluster.port, sharded=sharded))
        include = directory / SECRETS_INCLUDE
        primary_password = self.password(replica_of[0]) if replica_of is not None else None
        if primary_password is not None:
            atomic_write(private_dir(directory) / SECRETS_INCLUDE, f"masterauth {primary_password}\n")
            settings["include"] = str(include.resolve())
        else:
            include.unlink(missing_ok=True)  # a former replica keeps no password of its old primary
        return settings

    def access(self, cluster: CacheCluster, key: str, mode: TransitEncryptionMode | None) -> NodeAccess:
        """How the control plane reaches the node in ``mode``: TLS with the CA where plain text is not
        served (required), its own user and password where it has one."""
        password = self.password(key)
        ca_file = self.ca.cert_path if mode is TransitEncryptionMode.REQUIRED and self.ca is not None else None
        return NodeAccess(
            cluster.node.address, cluster.port, ca_file=ca_file,
            username=CONTROL_PLANE_USER if password is not None else None, password=password,
        )
