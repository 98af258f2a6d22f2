"""An account's status: the states, the moves between them, and the one way to move.

Nothing else writes ``MailAccount.status``: code asks :func:`transition`, which checks
that the move is allowed and tells the owner's subscription clients once the transaction
has committed.

    READY --startSync--> SYNCING --run done--> ACTIVE --next run--> SYNCING ...
    SYNCING/ACTIVE/ERROR --network or server fault--> ERROR (retried with backoff)
    SYNCING/ACTIVE/ERROR --login refused--> AUTH_FAILED --reconnect--> ACTIVE
    READY --an OAuth2 sign-in revoked (found by a send)--> AUTH_FAILED --reconnect--> READY
    any but PAUSED --pauseSync or the plan's limit--> PAUSED --resume--> READY/ACTIVE
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.events import AccountStatusChanged, EventBus
from core.models import AccountStatus, MailAccount
from core.notifications import announce_after_commit

READY = AccountStatus.READY
SYNCING = AccountStatus.SYNCING
ACTIVE = AccountStatus.ACTIVE
PAUSED = AccountStatus.PAUSED
AUTH_FAILED = AccountStatus.AUTH_FAILED
ERROR = AccountStatus.ERROR

# The scheduler syncs these; a run may start (or go on) only in one of them.
RUNNING = frozenset({SYNCING, ACTIVE, ERROR})
# What pauseSync may pause (READY has nothing to pause; PAUSED is paused).
PAUSABLE = RUNNING | {AUTH_FAILED}

_ALLOWED: dict[AccountStatus, frozenset[AccountStatus]] = {
    READY: frozenset({SYNCING, PAUSED, AUTH_FAILED}),
    SYNCING: frozenset({ACTIVE, ERROR, AUTH_FAILED, PAUSED}),
    ACTIVE: frozenset({SYNCING, ERROR, AUTH_FAILED, PAUSED}),
    ERROR: frozenset({SYNCING, ACTIVE, READY, AUTH_FAILED, PAUSED}),
    AUTH_FAILED: frozenset({ACTIVE, READY, PAUSED}),
    PAUSED: frozenset({READY, ACTIVE}),
}


class InvalidTransition(Exception):
    """A move the state machine does not allow: a bug in the caller, never user input."""


def transition(
    session: AsyncSession, events: EventBus, account: MailAccount, to: AccountStatus
) -> bool:
    """Move ``account`` to ``to`` (in ``session``'s transaction) and announce it after the
    commit; False when it was there already (nothing announced)."""
    current = account.status
    if current is to:
        return False
    if to not in _ALLOWED[current]:
        raise InvalidTransition(f"account {account.id}: {current} -> {to}")
    account.status = to
    event = AccountStatusChanged(account_id=account.id, status=to.value)
    announce_after_commit(session, events, account.owner_id, event)
    return True


def status_after_resume(account: MailAccount) -> AccountStatus:
    """READY if the user never started syncing it, else ACTIVE (the worker takes it from there)."""
    return READY if account.past_sync is None else ACTIVE
