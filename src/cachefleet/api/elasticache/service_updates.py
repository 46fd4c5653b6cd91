"""Service update handlers and views: DescribeServiceUpdates, DescribeUpdateActions,
BatchApplyUpdateAction, BatchStopUpdateAction."""

from __future__ import annotations

from typing import Any

from cachefleet.api.context import Context
from cachefleet.api.paging import paginate
from cachefleet.domain.cache_clusters import CacheCluster
from cachefleet.domain.service_updates import UPDATE_TYPE, ActionView, BatchResult, NodeUpdate, ServiceUpdate

ESTIMATED_PER_NODE = "about 1 minute per node (a full sync of its data; longer for large data sets)"


def service_update_view(update: ServiceUpdate) -> dict[str, Any]:
    return {
        "ServiceUpdateName": update.name,
        "ServiceUpdateReleaseDate": update.release_date,
        "ServiceUpdateSeverity": "important",
        "ServiceUpdateRecommendedApplyByDate": update.recommended_apply_by,
        "ServiceUpdateStatus": update.status,
        "ServiceUpdateDescription": update.description,
        "ServiceUpdateType": UPDATE_TYPE,
        "Engine": update.engine,
        "EngineVersion": update.engine_version,
        "AutoUpdateAfterRecommendedApplyByDate": False,
        "EstimatedUpdateTime": ESTIMATED_PER_NODE,
    }


def _node_status(node: NodeUpdate | None, cluster: CacheCluster, update: ServiceUpdate) -> dict[str, Any]:
    status = node.status.value if node is not None else (
        "not-applied" if update.applies_to(cluster.engine, cluster.engine_version) else "complete"
    )
    found: dict[str, Any] = {"CacheClusterId": cluster.cluster_id, "CacheNodeId": cluster.node.node_id, "NodeUpdateStatus": status}
    if node is not None:
        found.update({
            "NodeUpdateStartDate": node.start,
            "NodeUpdateEndDate": node.end,
            "NodeUpdateInitiatedBy": node.initiated_by,
            "NodeUpdateInitiatedDate": node.initiated,
            "NodeUpdateStatusModifiedDate": node.modified,
        })
    return found


def action_view(action: ActionView, *, show_nodes: bool) -> dict[str, Any]:
    update, resource = action.update, action.resource
    view: dict[str, Any] = {
        "ServiceUpdateName": update.name,
        "ServiceUpdateReleaseDate": update.release_date,
        "ServiceUpdateSeverity": "important",
        "ServiceUpdateStatus": update.status,
        "ServiceUpdateRecommendedApplyByDate": update.recommended_apply_by,
        "ServiceUpdateType": UPDATE_TYPE,
        "UpdateActionAvailableDate": max(update.release_date, resource.create_time),
        "UpdateActionStatus": action.status.value,
        "NodesUpdated": action.nodes_updated,
        "UpdateActionStatusModifiedDate": action.modified,
        "SlaMet": action.sla_met,
        "EstimatedUpdateTime": ESTIMATED_PER_NODE,
        "Engine": update.engine,
    }
    by_cluster = {n.cluster_id: n for n in action.nodes}
    if isinstance(resource, CacheCluster):
        view["CacheClusterId"] = resource.cluster_id
        if show_nodes:
            node = _node_status(by_cluster.get(resource.cluster_id), resource, update)
            node.pop("CacheClusterId")
            view["CacheNodeUpdateStatus"] = [node]
    else:
        view["ReplicationGroupId"] = resource.group_id
        if show_nodes:
            members = {m.cluster_id: m for m in action.members}
            view["NodeGroupUpdateStatus"] = [
                {
                    "NodeGroupId": node_group.node_group_id,
                    "NodeGroupMemberUpdateStatus": [
                        _node_status(by_cluster.get(cid), members[cid], update)
                        for cid in node_group.member_cluster_ids if cid in members
                    ],
                }
                for node_group in resource.node_groups
            ]
    return view


def describe_service_updates(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    updates = ctx.elasticache.service_updates.describe_service_updates(
        ctx.region, name=params.get("ServiceUpdateName"), statuses=params.get("ServiceUpdateStatus")
    )
    page, marker = paginate(updates, params, key=lambda u: u.name)
    return {"ServiceUpdates": [service_update_view(u) for u in page], "Marker": marker}


def describe_update_actions(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    actions = ctx.elasticache.service_updates.describe_update_actions(
        ctx.region,
        name=params.get("ServiceUpdateName"),
        group_ids=params.get("ReplicationGroupIds"),
        cluster_ids=params.get("CacheClusterIds"),
        engine=params.get("Engine"),
        update_statuses=params.get("ServiceUpdateStatus"),
        action_statuses=params.get("UpdateActionStatus"),
        time_range=params.get("ServiceUpdateTimeRange"),
    )
    page, marker = paginate(actions, params, key=lambda a: f"{a.update.name}/{a.resource.KIND.name}/{a.resource.key}")
    show = bool(params.get("ShowNodeLevelUpdateStatus", False))
    return {"UpdateActions": [action_view(a, show_nodes=show) for a in page], "Marker": marker}


def _batch(result: BatchResult, name: str) -> dict[str, Any]:
    def ids(kind: str, resource_id: str) -> dict[str, str]:
        return {"ReplicationGroupId": resource_id} if kind == "ReplicationGroup" else {"CacheClusterId": resource_id}

    return {
        "ProcessedUpdateActions": [
            {**ids(kind, rid), "ServiceUpdateName": name, "UpdateActionStatus": status.value}
            for kind, rid, status in result.processed
        ],
        "UnprocessedUpdateActions": [
            {**ids(kind, rid), "ServiceUpdateName": name, "ErrorType": error, "ErrorMessage": message}
            for kind, rid, error, message in result.unprocessed
        ],
    }


def batch_apply_update_action(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ServiceUpdateName"]
    result = ctx.elasticache.service_updates.batch_apply(
        ctx.region, name, group_ids=params.get("ReplicationGroupIds"), cluster_ids=params.get("CacheClusterIds")
    )
    return _batch(result, name)


def batch_stop_update_action(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ServiceUpdateName"]
    result = ctx.elasticache.service_updates.batch_stop(
        ctx.region, name, group_ids=params.get("ReplicationGroupIds"), cluster_ids=params.get("CacheClusterIds")
    )
    return _batch(result, name)
