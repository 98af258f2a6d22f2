"""Events for subscription clients, over Redis pub/sub (one channel per user).

Any process publishes (API after a commit, workers during a sync); every API replica
subscribes for its own websocket clients, so replicas share nothing in memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

ACCOUNT_STATUS_CHANGED = "account_status_changed"
SYNC_PROGRESS = "sync_progress"
SYNC_COMPLETED = "sync_completed"
OUTGOING_MESSAGE_CHANGED = "outgoing_message_changed"


def user_channel(user_id: uuid.UUID) -> str:
    return f"mailsync:events:user:{user_id}"


class EventBus:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, user_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> None:
        message = json.dumps({"kind": kind, **payload}, default=str)
        await self._redis.publish(user_channel(user_id), message)

    async def listen(self, user_id: uuid.UUID) -> AsyncIterator[dict[str, Any]]:
        """Every event for ``user_id`` from now on, until the caller stops iterating."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(user_channel(user_id))
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield json.loads(message["data"])
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
