"""Locks of running nodes, kept as their records want them, and the statuses of users and user groups.

In a group's pass (once its topology is in place) every running node gets, in this order:

1. its in-transit encryption mode (plain -> preferred -> required and back, one CONFIG SET per
   step, replicas before primaries; existing connections stay up, the replication link too);
2. its ACL users: a changed AUTH token (ROTATE, SET, DELETE), user group, user group membership
   or user reaches every node within a pass (Nodes.sync_users skips nodes already in sync);
3. its certificate, renewed before it expires (new files, one CONFIG SET, no restart); this one
   runs early in every pass (``renew``), before the topology work that may keep a pass waiting.

An ACCESS operation (ModifyReplicationGroup) ends, with its event, once every live node has what
the group wants; the group is then settled ``available``. A user is ``active`` again (or gone,
when deleting) once every node of every replication group using it has its change; a user group
likewise (``creating`` and ``modifying`` become ``active``, ``deleting`` is removed).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from cachefleet.control.nodes import Nodes, node_key
from cachefleet.control.scheduler import Retry, Target
from cachefleet.domain.cache_clusters import CacheCluster, ClusterStatus
from cachefleet.domain.credentials import TransitEncryptionMode
from cachefleet.domain.events import event_for
from cachefleet.domain.operations import OperationKind
from cachefleet.domain.replication_groups import ReplicationGroup
from cachefleet.domain.security import preferred_tls_port
from cachefleet.domain.users import User, UserGroup, UserGroupStatus, UserStatus
from cachefleet.engine import tls
from cachefleet.engine.admin import AdminClient

log = logging.getLogger(__name__)

SETTLE_DELAY = 0.05


class AccessWorkflow:
    """Brings running nodes' TLS modes, ACL users and certificates to their records; settles users."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    # ------------------------------------------------------------------ a group's or cluster's nodes
    async def reconcile(self, group: ReplicationGroup) -> None:
        nodes = self.nodes
        members = nodes.members(group)
        live = [c for c in members.values() if c.status not in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED)]
        ready = [c for c in live if nodes.running(c) and nodes.checked(c)]
        wanted = group.security.transit_encryption_mode
        primaries = group.primary_cluster_ids
        for cluster in sorted(ready, key=lambda c: c.cluster_id in primaries):
            await self._transit(cluster, wanted, sharded=group.cluster_enabled)
        for cluster in ready:
            await nodes.sync_users(cluster)
        operation = nodes.operation(group, OperationKind.ACCESS)
        if operation is None:
            return
        done = len(ready) == len(live) and all(nodes.users_synced(c) and nodes.mode(c) == wanted for c in ready)
        if not done:
            raise Retry(SETTLE_DELAY, f"applying the locks of {group.group_id} to its nodes")
        with nodes.store.transaction() as tx:
            tx.delete(operation)
            message = operation.access.done if operation.access is not None and operation.access.done else (
                f"Replication group {group.group_id}: access change applied")
            tx.add_event(event_for(group, message, nodes.clock.now()))

    async def renew(self, group: ReplicationGroup) -> None:
        """Renews the certificates of the group's running nodes that need it. Every pass does this
        before its topology work, which may wait a long time (a cluster converging): a certificate
        must never expire because a pass could not get past its topology."""
        nodes = self.nodes
        for cluster in nodes.members(group).values():
            if cluster.status != ClusterStatus.DELETING and nodes.running(cluster) and nodes.checked(cluster):
                await self._renew(cluster, sharded=group.cluster_enabled)

    async def reconcile_cluster(self, cluster: CacheCluster) -> None:
        """A standalone cluster's node: its users and its certificate (its TLS mode is set at creation)."""
        nodes = self.nodes
        if cluster.status in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED) or not nodes.checked(cluster):
            return
        await nodes.sync_users(cluster)
        await self._renew(cluster, sharded=False)

    async def _transit(self, cluster: CacheCluster, wanted: TransitEncryptionMode | None, *, sharded: bool) -> None:
        nodes = self.nodes
        current = nodes.mode(cluster)
        if current == wanted:
            return
        key = node_key(cluster)
        admin = nodes.admin(cluster)
        port, tls_port = str(cluster.port), str(preferred_tls_port(cluster.port))
        if current is None:
            files = nodes.locks.current_files(cluster, key, now=nodes.clock.now())
            await admin.execute(
                "CONFIG", "SET", "tls-cert-file", str(files.cert), "tls-key-file", str(files.key),
                "tls-ca-cert-file", str(files.ca), "tls-auth-clients", "no", "tls-replication", "no",
            )
            current = TransitEncryptionMode.PREFERRED
            await admin.execute("CONFIG", "SET", "tls-port", tls_port)
        if wanted is None:
            await admin.execute("CONFIG", "SET", "tls-port", "0")
        elif wanted is TransitEncryptionMode.REQUIRED and current is TransitEncryptionMode.PREFERRED:
            # Plain text off and TLS onto the group's port in one CONFIG SET: the engine swaps its listeners.
            await admin.execute("CONFIG", "SET", "tls-replication", "yes")
            await admin.execute("CONFIG", "SET", "port", "0", "tls-port", port)
        elif wanted is TransitEncryptionMode.PREFERRED and current is TransitEncryptionMode.REQUIRED:
            await admin.execute("CONFIG", "SET", "tls-replication", "no")
            await admin.execute("CONFIG", "SET", "tls-port", tls_port, "port", port)
        nodes.observed.transit[key] = wanted
        self._rewrite_config(cluster, sharded=sharded)
        log.info("node %s: in-transit encryption %s", key, wanted.value if wanted else "off")

    async def _renew(self, cluster: CacheCluster, *, sharded: bool) -> None:
        nodes = self.nodes
        if nodes.mode(cluster) is None:
            return
        key = node_key(cluster)
        certificate = nodes.locks.certificate(cluster, key, now=nodes.clock.now())
        if not certificate.issued:
            return
        admin: AdminClient = nodes.admin(cluster)
        await admin.execute(*tls.renewal_command(certificate.files))
        nodes.locks.prune(key, certificate.files)
        self._rewrite_config(cluster, sharded=sharded)
        facts = nodes.locks.facts(certificate.files.cert)
        nodes.record(
            cluster,
            f"Certificate of cache node {cluster.node.node_id} of cache cluster {cluster.cluster_id} renewed "
            f"({certificate.reason}); valid until {facts.not_after:%Y-%m-%d %H:%M:%S} UTC",
        )

    def _rewrite_config(self, cluster: CacheCluster, *, sharded: bool) -> None:
        """The node's engine.conf says what it runs now (a restart starts it so)."""
        nodes = self.nodes
        replica_of = None
        if not sharded and not nodes.is_primary(cluster):
            group = nodes.locks.group_of(cluster)
            node_group = group.node_group_of(cluster.cluster_id) if group is not None else None
            primary = nodes.store.get(CacheCluster, cluster.region, node_group.primary_cluster_id) if node_group else None
            if primary is not None:
                replica_of = (primary.node.address, primary.port)
        nodes.provider.write_config(
            node_key(cluster), nodes.config(cluster, replica_of, sharded=sharded, mode=nodes.mode(cluster), starting=False)
        )

    # ------------------------------------------------------------------ users and user groups
    def targets_of(self, kind: str, region: str, key: str) -> list[Target]:
        """The replication groups and standalone clusters whose nodes a change of this user or user
        group reaches (their passes sync the users)."""
        store = self.nodes.store
        if kind == User.KIND.name:
            group_ids = {g.user_group_id for g in store.list(UserGroup, region) if key in g.user_ids}
            group_ids |= self._groups_leaving(region, key)
        else:
            group_ids = {key}
        found = [Target.of(g) for g in store.list(ReplicationGroup, region) if group_ids & set(g.security.user_group_ids)]
        found += [Target.of(c) for c in store.list(CacheCluster, region)
                  if c.replication_group_id is None and group_ids & set(c.security.user_group_ids)]
        return found

    def _groups_leaving(self, region: str, user_id: str) -> set[str]:
        return {g.user_group_id for g in self.nodes.store.list(UserGroup, region) if user_id in g.user_ids_to_remove}

    def _synced(self, targets: list[Target]) -> bool:
        nodes = self.nodes
        for target in targets:
            if target.kind == ReplicationGroup.KIND.name:
                group = nodes.store.get(ReplicationGroup, target.region, target.key)
                clusters = list(nodes.members(group).values()) if group is not None else []
            else:
                cluster = nodes.store.get(CacheCluster, target.region, target.key)
                clusters = [cluster] if cluster is not None else []
            for cluster in clusters:
                if cluster.status in (ClusterStatus.DELETING, ClusterStatus.CREATE_FAILED) or not nodes.running(cluster):
                    continue
                if not nodes.users_synced(cluster):
                    return False
        return True

    def settle_user(self, user: User) -> None:
        nodes = self.nodes
        if user.status == UserStatus.ACTIVE:
            return
        if not self._synced(self.targets_of(User.KIND.name, user.region, user.user_id)):
            raise Retry(SETTLE_DELAY, f"user {user.user_id} is reaching the nodes")
        with nodes.store.transaction() as tx:
            if user.status == UserStatus.DELETING:
                tx.delete(user)
                tx.add_event(event_for(user, f"User {user.user_id} deleted", nodes.clock.now()))
            else:
                active = replace(user, status=UserStatus.ACTIVE)
                tx.put(active)
                tx.add_event(event_for(active, f"User {user.user_id} modified and active", nodes.clock.now()))

    def settle_user_group(self, group: UserGroup) -> None:
        nodes = self.nodes
        if group.status == UserGroupStatus.ACTIVE:
            return
        if not self._synced(self.targets_of(UserGroup.KIND.name, group.region, group.user_group_id)):
            raise Retry(SETTLE_DELAY, f"user group {group.user_group_id} is reaching the nodes")
        with nodes.store.transaction() as tx:
            if group.status == UserGroupStatus.DELETING:
                tx.delete(group)
                tx.add_event(event_for(group, f"User group {group.user_group_id} deleted", nodes.clock.now()))
                return
            active = replace(group, status=UserGroupStatus.ACTIVE, user_ids_to_add=(), user_ids_to_remove=())
            tx.put(active)
            verb = "created" if group.status == UserGroupStatus.CREATING else "modified"
            tx.add_event(event_for(active, f"User group {group.user_group_id} {verb} and active", nodes.clock.now()))

    def fail(self, group: ReplicationGroup, reason: str) -> None:
        """An access change that did not reach every node in time: it ends, with an event; the nodes
        keep being brought to the group's locks by later passes."""
        nodes = self.nodes
        operation = nodes.operation(group, OperationKind.ACCESS)
        if operation is None:
            return
        with nodes.store.transaction() as tx:
            tx.delete(operation)
            tx.add_event(event_for(group, f"Access change of replication group {group.group_id} did not finish: "
                                          f"{reason}", nodes.clock.now()))
