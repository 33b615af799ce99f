"""Read a KV bucket's current keys and values as of one moment, without a watch.

nats-py's ``kv.keys()`` and ``kv.watchall()`` mark the end of the initial values with ``None``,
and that marker can arrive before values the server had already pushed (its watcher compares
``num_pending`` with the count delivered to the subscription, not the count handed out), so a
listing built on it now and then misses a key that exists. Here the keys come from the bucket's
stream state in one request (the subjects that hold a message), and each key's value from a
direct get: a key present when the request was answered is never missed, and a key deleted
since is left out.
"""

from __future__ import annotations

import asyncio

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

__all__ = ["current_entries", "current_keys"]


async def current_keys(js: JetStreamContext, bucket: str, *, prefix: str = "") -> list[str]:
    """Keys of ``bucket`` that hold a value or a delete marker, sorted; ``prefix`` ends with a dot.

    A key whose last operation was a delete may be listed; :func:`current_entries` drops it.
    """
    subject_prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{subject_prefix}{prefix}>")
    subjects = info.state.subjects or {}
    return sorted(subject.removeprefix(subject_prefix) for subject in subjects)


async def current_entries(
    js: JetStreamContext, kv: KeyValue, bucket: str, *, prefix: str = ""
) -> list[KeyValue.Entry]:
    """The latest entry of every live key of ``bucket`` (deleted keys left out), by key."""
    keys = await current_keys(js, bucket, prefix=prefix)
    entries = await asyncio.gather(*(_get(kv, key) for key in keys))
    return [entry for entry in entries if entry is not None and entry.value]


async def _get(kv: KeyValue, key: str) -> KeyValue.Entry | None:
    try:
        return await kv.get(key)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):  # deleted since
        return None
