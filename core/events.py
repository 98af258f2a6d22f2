"""Events for subscription clients: one dataclass per kind, over Redis pub/sub.

Any process publishes (the API after a commit, workers during a sync) on the owner's
channel. An API process listens through one :class:`EventHub`: a single pub/sub connection
whatever the number of websockets and subscriptions, subscribed to the channels of the
users that have a listener in this process, fanning each event out in memory. Replicas
share nothing in memory: each one has its own hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime
from typing import Any, ClassVar, get_type_hints

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "mailsync:events:user:"
# Events a slow websocket may fall behind by before the oldest are dropped for it alone.
LISTENER_QUEUE = 1000
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


def user_channel(user_id: uuid.UUID) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class AccountStatusChanged:
    kind: ClassVar[str] = "account_status_changed"
    account_id: uuid.UUID
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class SyncProgress:
    kind: ClassVar[str] = "sync_progress"
    account_id: uuid.UUID
    folder: str
    fetched: int
    total: int


@dataclasses.dataclass(frozen=True, slots=True)
class SyncCompleted:
    kind: ClassVar[str] = "sync_completed"
    account_id: uuid.UUID
    initial: bool
    new_messages: int
    updated_messages: int
    removed_messages: int
    started_at: datetime
    finished_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class OutgoingMessageChanged:
    kind: ClassVar[str] = "outgoing_message_changed"
    outgoing_id: uuid.UUID
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class CredentialsRevoked:
    """An API token of the user was revoked (None: the user was removed, or every token)."""

    kind: ClassVar[str] = "credentials_revoked"
    token_id: uuid.UUID | None


@dataclasses.dataclass(frozen=True, slots=True)
class Resubscribed:
    """Not published: the hub's own notice that its connection to Redis was re-made, so
    events may have been missed and a listener should re-send the current state."""

    kind: ClassVar[str] = "resubscribed"


Event = (
    AccountStatusChanged
    | SyncProgress
    | SyncCompleted
    | OutgoingMessageChanged
    | CredentialsRevoked
    | Resubscribed
)
_KINDS: dict[str, type[Any]] = {
    cls.kind: cls
    for cls in (
        AccountStatusChanged,
        SyncProgress,
        SyncCompleted,
        OutgoingMessageChanged,
        CredentialsRevoked,
    )
}
_FIELD_TYPES = {kind: get_type_hints(cls) for kind, cls in _KINDS.items()}


def encode_event(event: Event) -> str:
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return json.dumps({"kind": event.kind, **fields}, default=str)


def _field_value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if hint in (uuid.UUID, uuid.UUID | None):
        return uuid.UUID(str(value))
    if hint is datetime:
        return datetime.fromisoformat(str(value))
    if hint is bool:
        return bool(value)
    if hint is int:
        return int(value)
    return str(value)


def decode_event(data: bytes | str) -> Event | None:
    """The event, or None for one this version does not know (a newer publisher) or that
    is malformed: a listener never fails on what another process put on the channel."""
    try:
        raw = json.loads(data)
        kind = raw.pop("kind")
        cls, hints = _KINDS[kind], _FIELD_TYPES[kind]
        event: Event = cls(
            **{name: _field_value(hints[name], raw.get(name)) for name in hints if name != "kind"}
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning("ignored a malformed event on a user channel")
        return None
    return event


class Listener:
    """One listener's queue in the hub; :meth:`close` it when done."""

    def __init__(self, hub: EventHub, channel: str) -> None:
        self._hub = hub
        self.channel = channel
        self.queue: asyncio.Queue[Event] = asyncio.Queue(LISTENER_QUEUE)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._hub._remove(self)


class EventHub:
    """One pub/sub connection for the whole process, fanned out to local listeners.

    The connection subscribes to a user's channel while that user has at least one listener
    here. When Redis goes away the hub reconnects with backoff, subscribes again, and hands
    every listener a :class:`Resubscribed` notice.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._listeners: dict[str, set[Listener]] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._changes: set[asyncio.Task[None]] = set()  # (un)subscribes under way

    def local_listeners(self, user_id: uuid.UUID) -> int:
        return len(self._listeners.get(user_channel(user_id), ()))

    def register(self, user_id: uuid.UUID) -> Listener:
        """A listener for ``user_id``'s events, registered at once (the channel is
        subscribed in the background when it is the user's first listener here)."""
        listener = Listener(self, user_channel(user_id))
        first = listener.channel not in self._listeners
        self._listeners.setdefault(listener.channel, set()).add(listener)
        self._ensure_running()
        if first:
            self._change(self._subscribe(listener.channel))
        return listener

    async def listen(self, user_id: uuid.UUID) -> AsyncIterator[Event]:
        """Every event for ``user_id`` from now on, until the caller stops iterating."""
        listener = self.register(user_id)
        try:
            while True:
                yield await listener.get()
        finally:
            listener.close()

    def _remove(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.channel)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[listener.channel]
            self._change(self._unsubscribe(listener.channel))

    def _change(self, change: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(change)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)

    async def close(self) -> None:
        for change in list(self._changes):
            change.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_connection()

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mailsync-event-hub")
        self._wake.set()

    async def _subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            return  # (re)connecting: the new connection subscribes to every channel
        try:
            await self._pubsub.subscribe(channel)
        except (RedisError, OSError):
            log.warning("event hub: subscribe failed; reconnecting")
            await self._drop_connection()

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is None:
            return
        try:
            await self._pubsub.unsubscribe(channel)
        except (RedisError, OSError):
            await self._drop_connection()

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # it is broken or going away either way
                await pubsub.aclose()
        self._wake.set()

    def _dispatch(self, channel: str, event: Event) -> None:
        for listener in self._listeners.get(channel, ()):
            queue = listener.queue
            if queue.full():  # a stalled client loses its oldest events, never the process
                queue.get_nowait()
            queue.put_nowait(event)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        reconnecting = False
        while True:
            try:
                await self._connect(notify=reconnecting)
                delay = RECONNECT_MIN_SECONDS
                await self._read()
            except (RedisError, OSError) as exc:
                log.warning(
                    "event hub: Redis connection lost (%s); reconnecting", type(exc).__name__
                )
            await self._drop_connection()
            reconnecting = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _connect(self, *, notify: bool) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.connect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        # Published before subscribing: a listener that arrives meanwhile subscribes its
        # own channel on this connection (a second SUBSCRIBE of a channel is harmless).
        self._pubsub = pubsub
        channels = list(self._listeners)
        if channels:
            await pubsub.subscribe(*channels)
        if notify:
            for channel in channels:
                self._dispatch(channel, Resubscribed())

    async def _read(self) -> None:
        while self._pubsub is not None:
            pubsub = self._pubsub
            if not pubsub.subscribed:
                self._wake.clear()
                await self._wake.wait()
                continue
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            event = decode_event(message["data"])
            if event is not None:
                self._dispatch(channel, event)


class EventBus:
    """Publishing from any process; listening through the process's hub (made on first use,
    so a worker, which only publishes, never opens a pub/sub connection)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hub: EventHub | None = None

    @property
    def hub(self) -> EventHub:
        if self._hub is None:
            self._hub = EventHub(self._redis)
        return self._hub

    async def publish(self, user_id: uuid.UUID, event: Event) -> None:
        await self._redis.publish(user_channel(user_id), encode_event(event))

    def listen(self, user_id: uuid.UUID) -> AsyncIterator[Event]:
        return self.hub.listen(user_id)

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.close()
