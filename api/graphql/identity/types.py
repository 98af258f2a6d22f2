from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.graphql.context import Info
from api.graphql.enums import Plan, Role
from core import models
from core.plans import account_limit

if TYPE_CHECKING:
    from api.graphql.accounts.types import MailAccount


@strawberry.type
class Company:
    id: strawberry.ID
    name: str
    plan: Plan

    @strawberry.field(
        description=(
            "Accounts per user: ESSENTIAL 0, ADVANCED 1, PROFESSIONAL 2, POWER 3, ENTERPRISE 5."
        )
    )
    def account_limit(self) -> int:
        return account_limit(self.plan)

    @classmethod
    def from_row(cls, row: models.Company) -> Company:
        return cls(id=strawberry.ID(str(row.id)), name=row.name, plan=row.plan)


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    name: str
    role: Role
    company_id: strawberry.Private[uuid.UUID]
    user_id: strawberry.Private[uuid.UUID]
    default_account_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: models.User) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            name=row.name,
            role=row.role,
            company_id=row.company_id,
            user_id=row.id,
            default_account_id=row.default_account_id,
        )

    @strawberry.field
    async def company(self, info: Info) -> Company:
        row = await info.context.loaders.company.load(self.company_id)
        assert row is not None  # users.company_id is a foreign key
        return Company.from_row(row)

    @strawberry.field(
        description="The sender preselected when composing; automated emails go out from it."
    )
    async def default_account(
        self, info: Info
    ) -> Annotated[MailAccount, strawberry.lazy("api.graphql.accounts.types")] | None:
        from api.graphql.accounts.types import MailAccount

        if self.default_account_id is None:
            return None
        row = await info.context.loaders.readable_account.load(self.default_account_id)
        return MailAccount.from_row(row) if row is not None else None

    @strawberry.field(description="This user's accounts that the viewer may read.")
    async def mail_accounts(
        self, info: Info
    ) -> list[Annotated[MailAccount, strawberry.lazy("api.graphql.accounts.types")]]:
        from api.graphql.accounts.types import MailAccount

        viewer = info.context.viewer
        rows = await info.context.loaders.owned_accounts.load(self.user_id)
        own = viewer is not None and viewer.user_id == self.user_id
        return [MailAccount.from_row(r) for r in rows if own or r.sharing is models.Sharing.SHARED]
