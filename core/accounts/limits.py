"""Plan limits on a user's accounts: pause the newest beyond the limit, resume the rest."""

from __future__ import annotations

from core.models import AccountStatus, MailAccount, PauseReason


def status_after_resume(account: MailAccount) -> AccountStatus:
    """READY if the user never started syncing it, else ACTIVE (the worker takes it from there)."""
    return AccountStatus.READY if account.past_sync is None else AccountStatus.ACTIVE


def apply_account_limit(accounts: list[MailAccount], limit: int) -> list[MailAccount]:
    """Bring ``accounts`` (oldest first) within ``limit``; the accounts whose status changed.

    Nothing is deleted: the oldest ``limit`` accounts keep working, newer ones wait PAUSED.
    An account the user paused stays paused whatever the plan does.
    """
    changed: list[MailAccount] = []
    for position, account in enumerate(accounts):
        within = position < limit
        paused_by_plan = (
            account.status is AccountStatus.PAUSED and account.paused_reason is PauseReason.PLAN
        )
        if within and paused_by_plan:
            account.status = status_after_resume(account)
            account.paused_reason = None
            changed.append(account)
        elif not within and account.status is not AccountStatus.PAUSED:
            account.status = AccountStatus.PAUSED
            account.paused_reason = PauseReason.PLAN
            changed.append(account)
    return changed
