"""Running a mutation that answers with an account: one transaction, errors as data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.accounts.types import MailAccount, MailAccountPayload
from api.graphql.context import Info
from api.graphql.errors import UserError
from core import models
from core.errors import ServiceError

AccountAction = Callable[[AsyncSession], Awaitable[models.MailAccount]]


async def account_payload(info: Info, action: AccountAction) -> MailAccountPayload:
    """Run ``action`` in its own transaction; a ServiceError rolls it back into userErrors."""
    try:
        async with info.context.unit_of_work() as session:
            account = await action(session)
    except ServiceError as error:
        return MailAccountPayload(user_errors=[UserError.from_service(error)])
    return MailAccountPayload(account=MailAccount.from_row(account))
