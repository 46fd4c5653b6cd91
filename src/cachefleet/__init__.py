"""Cachefleet: a self-hosted, ElastiCache-compatible managed Valkey/Redis service."""

__version__ = "0.1.0"
