"""Sliding-window rate limits counted in Redis, so every API replica shares them."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return 1
"""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def allow(self, key: str, *, limit: int, window_seconds: float) -> bool:
        """Count one event under ``key``; False when ``limit`` were already counted."""
        allowed = await self._script(
            keys=[f"mailsync:ratelimit:{key}"],
            args=[time.time(), window_seconds, limit, uuid.uuid4().hex],
        )
        return bool(allowed)
