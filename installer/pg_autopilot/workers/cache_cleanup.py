"""The worker of cache-cleanup: clears the runner's in-process caches."""

from __future__ import annotations

from typing import Any

from .registry import CACHES, JobContext, worker


@worker("cache_cleanup", timeout=60)
def cache_cleanup(args: dict[str, Any], context: JobContext) -> str:
    """cache-cleanup: clear the runner's in-process caches (anything in CACHES with a cache_clear(),
    or a dict)."""
    cleared = 0
    for cache in CACHES:
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
        else:
            cache.clear()
        cleared += 1
    return f"cleared {cleared} in-process caches"
