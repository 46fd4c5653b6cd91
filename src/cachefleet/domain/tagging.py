"""ListTagsForResource, AddTagsToResource, RemoveTagsFromResource on any taggable kind, by ARN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cachefleet.domain import identifiers, kinds
from cachefleet.domain.base import UseCases
from cachefleet.domain.cache_clusters import DEFAULT_SUBNET_GROUP
from cachefleet.domain.errors import (
    InvalidArn,
    InvalidParameterValue,
    NotFound,
    TagNotFound,
    not_found_message,
)
from cachefleet.domain.identifiers import Region
from cachefleet.domain.snapshots import Snapshot, is_serverless_key
from cachefleet.domain.tags import Tag, tags


class Tagging(UseCases):
    """Tags of any taggable kind, found by ARN through the registry of kinds."""

    def tags_of(self, region: Region, resource_arn: str) -> tuple[Tag, ...]:
        tagged: tuple[Tag, ...] = self._tagged(region, resource_arn).tags
        return tagged

    def add(self, region: Region, resource_arn: str, raw_tags: Sequence[Mapping[str, Any]]) -> tuple[Tag, ...]:
        resource = self._tagged(region, resource_arn)
        updated = replace(resource, tags=tags(raw_tags, existing=resource.tags))
        with self._store.transaction() as tx:
            tx.put(updated)
        result: tuple[Tag, ...] = updated.tags
        return result

    def remove(self, region: Region, resource_arn: str, keys: Sequence[str]) -> tuple[Tag, ...]:
        resource = self._tagged(region, resource_arn)
        present = {tag.key for tag in resource.tags}
        missing = [key for key in keys if key not in present]
        if missing:
            raise TagNotFound(f"Tag(s) {', '.join(missing)} not found on {resource_arn}.", resource="Tag")
        updated = replace(resource, tags=tuple(tag for tag in resource.tags if tag.key not in set(keys)))
        with self._store.transaction() as tx:
            tx.put(updated)
        result: tuple[Tag, ...] = updated.tags
        return result

    def _tagged(self, region: Region, resource_arn: str) -> Any:
        parsed = identifiers.parse_arn(resource_arn, region=region, regionless=kinds.REGIONLESS_ARN_TYPES)
        kind = kinds.BY_ARN_TYPE.get(parsed.resource_type)
        if kind is None:
            raise InvalidArn(
                f"The ARN '{resource_arn}' names an unknown resource type '{parsed.resource_type}'; "
                f"known types are {', '.join(sorted(kinds.BY_ARN_TYPE))}.",
                resource="Resource",
            )
        if parsed.foreign:
            # Another account's resource is not visible from this one: ElastiCache answers NotFound.
            raise NotFound(
                f"{not_found_message(kind.name, kind.noun, parsed.resource_id)} Its ARN names account "
                f"{parsed.account}; this Cachefleet is account {identifiers.account_id()} (cachefleet up --account-id).",
                resource=kind.name,
            )
        if kind.name == "CacheSubnetGroup" and parsed.resource_id.lower() == DEFAULT_SUBNET_GROUP:
            raise InvalidParameterValue("The default cache subnet group cannot be tagged.")
        view = kinds.VIEW_RECORDS.get(kind.name)
        if view is not None:
            stored, key_of = view
            found = self._store.get(stored, region, key_of(parsed.resource_id.lower()))
            if found is None:
                raise NotFound(not_found_message(kind.name, kind.noun, parsed.resource_id), resource=kind.name)
            return found
        cls = kinds.STORED_BY_NAME.get(kind.name)
        if cls is None or not kind.taggable:
            raise NotFound(not_found_message(kind.name, kind.noun, parsed.resource_id), resource=kind.name)
        if cls is Snapshot and is_serverless_key(parsed.resource_id.lower()):
            # A serverless cache snapshot is named by its own ARN type only.
            raise NotFound(not_found_message(kind.name, kind.noun, parsed.resource_id), resource=kind.name)
        if kind.name in ("ReplicationGroup", "CacheCluster") and identifiers.is_serverless_group(parsed.resource_id.lower()):
            # A serverless cache's group and nodes are its own: it is tagged on its serverlesscache ARN.
            raise NotFound(not_found_message(kind.name, kind.noun, parsed.resource_id), resource=kind.name)
        return self._get(cls, kind.store_region or region, parsed.resource_id)
