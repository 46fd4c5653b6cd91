"""ElastiCache node types and the memory each one has.

Figures are ElastiCache's published memory per node type (GiB), from which its default
parameter groups derive ``maxmemory``. A local node gets the same ``maxmemory`` so that
eviction and memory metrics behave as they would on the real node type.
"""

from __future__ import annotations

from cachefleet.domain.errors import InvalidParameterValue

GIB = 1024**3

_MEMORY_GIB: dict[str, float] = {
    # Burstable
    "cache.t2.micro": 0.555, "cache.t2.small": 1.55, "cache.t2.medium": 3.22,
    "cache.t3.micro": 0.5, "cache.t3.small": 1.37, "cache.t3.medium": 3.09,
    "cache.t4g.micro": 0.5, "cache.t4g.small": 1.37, "cache.t4g.medium": 3.09,
    # General purpose
    "cache.m4.large": 6.42, "cache.m4.xlarge": 14.28, "cache.m4.2xlarge": 29.70,
    "cache.m4.4xlarge": 60.78, "cache.m4.10xlarge": 154.64,
    "cache.m5.large": 6.38, "cache.m5.xlarge": 12.93, "cache.m5.2xlarge": 26.04,
    "cache.m5.4xlarge": 52.26, "cache.m5.12xlarge": 157.12, "cache.m5.24xlarge": 314.32,
    "cache.m6g.large": 6.38, "cache.m6g.xlarge": 12.93, "cache.m6g.2xlarge": 26.04,
    "cache.m6g.4xlarge": 52.26, "cache.m6g.8xlarge": 103.68, "cache.m6g.12xlarge": 157.12,
    "cache.m6g.16xlarge": 209.55,
    "cache.m7g.large": 6.38, "cache.m7g.xlarge": 12.93, "cache.m7g.2xlarge": 26.04,
    "cache.m7g.4xlarge": 52.26, "cache.m7g.8xlarge": 103.68, "cache.m7g.12xlarge": 157.12,
    "cache.m7g.16xlarge": 209.55,
    # Memory optimized
    "cache.r4.large": 12.3, "cache.r4.xlarge": 25.05, "cache.r4.2xlarge": 50.47,
    "cache.r4.4xlarge": 101.38, "cache.r4.8xlarge": 203.26, "cache.r4.16xlarge": 407.0,
    "cache.r5.large": 13.07, "cache.r5.xlarge": 26.32, "cache.r5.2xlarge": 52.82,
    "cache.r5.4xlarge": 105.81, "cache.r5.12xlarge": 317.77, "cache.r5.24xlarge": 635.61,
    "cache.r6g.large": 13.07, "cache.r6g.xlarge": 26.32, "cache.r6g.2xlarge": 52.82,
    "cache.r6g.4xlarge": 105.81, "cache.r6g.8xlarge": 209.55, "cache.r6g.12xlarge": 317.77,
    "cache.r6g.16xlarge": 419.09,
    "cache.r7g.large": 13.07, "cache.r7g.xlarge": 26.32, "cache.r7g.2xlarge": 52.82,
    "cache.r7g.4xlarge": 105.81, "cache.r7g.8xlarge": 209.55, "cache.r7g.12xlarge": 317.77,
    "cache.r7g.16xlarge": 419.09,
    # Network optimized
    "cache.c7gn.large": 3.09, "cache.c7gn.xlarge": 6.38, "cache.c7gn.2xlarge": 12.94,
    "cache.c7gn.4xlarge": 26.05, "cache.c7gn.8xlarge": 52.26, "cache.c7gn.12xlarge": 78.56,
    "cache.c7gn.16xlarge": 105.81,
}

NODE_TYPES: tuple[str, ...] = tuple(_MEMORY_GIB)


def check_node_type(node_type: str) -> str:
    if node_type not in _MEMORY_GIB:
        families = sorted({name.split(".")[1] for name in _MEMORY_GIB})
        raise InvalidParameterValue(
            f"Invalid CacheNodeType '{node_type}': use one of ElastiCache's node types, such as "
            f"cache.t4g.micro, cache.m7g.large or cache.r7g.large (families: {', '.join(families)})."
        )
    return node_type


def maxmemory_bytes(node_type: str) -> int:
    return round(_MEMORY_GIB[check_node_type(node_type)] * GIB)
