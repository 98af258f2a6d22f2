"""Plan limits on a user's accounts: pause the newest beyond the limit, resume the rest."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from core.accounts.status import PAUSED, status_after_resume, transition
from core.events import EventBus
from core.models import MailAccount, PauseReason


def apply_account_limit(
    session: AsyncSession, events: EventBus, accounts: list[MailAccount], limit: int
) -> list[MailAccount]:
    """Bring ``accounts`` (oldest first) within ``limit``; the accounts whose status changed.

    Nothing is deleted: the oldest ``limit`` accounts keep working, newer ones wait PAUSED.
    An account the user paused stays paused whatever the plan does.
    """
    changed: list[MailAccount] = []
    for position, account in enumerate(accounts):
        within = position < limit
        paused_by_plan = account.status is PAUSED and account.paused_reason is PauseReason.PLAN
        if within and paused_by_plan:
            account.paused_reason = None
            transition(session, events, account, status_after_resume(account))
            changed.append(account)
        elif not within and account.status is not PAUSED:
            account.paused_reason = PauseReason.PLAN
            transition(session, events, account, PAUSED)
            changed.append(account)
    return changed
