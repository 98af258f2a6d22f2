"""Account mutations: parse the input, call the service in one transaction, map the result."""

from __future__ import annotations

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.accounts.inputs import (
    AddMailAccountInput,
    ReconnectMailAccountInput,
    UpdateMailAccountInput,
)
from api.graphql.accounts.payloads import account_payload
from api.graphql.accounts.types import (
    MailAccountPayload,
    RemoveMailAccountPayload,
    SetDefaultAccountPayload,
)
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.errors import IsAuthenticated, UserError
from api.graphql.identity.types import User
from core import models
from core.accounts.servers import prove_servers, store_servers
from core.accounts.service import AccountChanges, AccountService
from core.errors import ServiceError
from core.ids import parse_uuid
from core.sync.service import SyncService


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Verifies the IMAP (and SMTP) login, then stores the account as READY.",
    )
    async def add_mail_account(self, info: Info, input: AddMailAccountInput) -> MailAccountPayload:
        viewer, runtime = viewer_of(info), info.context.runtime
        return await account_payload(
            info, lambda session: AccountService(session, runtime).add(viewer, input.to_domain())
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Name, sharing, folders and servers; new logins are proven first.",
    )
    async def update_mail_account(
        self, info: Info, input: UpdateMailAccountInput
    ) -> MailAccountPayload:
        viewer = viewer_of(info)
        changes = AccountChanges(
            display_name=input.display_name or None,
            display_name_set=input.display_name is not strawberry.UNSET,
            sharing=input.sharing or None,
        )
        labels = None if input.labels in (None, strawberry.UNSET) else list(input.labels)
        servers = input.server_changes()
        runtime = info.context.runtime

        async def update(session: AsyncSession) -> models.MailAccount:
            sync, service = SyncService(session, runtime), AccountService(session, runtime)
            account_id = parse_uuid(input.account_id)
            # What talks to a server ends the transaction first, so it all comes before any
            # write: the new logins, then (unless new IMAP settings just listed the folders)
            # the folder list for labels we do not know.
            proven = await prove_servers(service, viewer, account_id, servers) if servers else None
            if proven is None or proven.imap is None:
                await sync.learn_labels(viewer, account_id, labels)
            if proven is not None:
                await store_servers(service, viewer, account_id, proven)
            account = await service.update(viewer, account_id, changes)
            if labels is not None:
                await sync.change_labels(account, labels)
            return account

        return await account_payload(info, update)

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="A new password, e.g. after AUTH_FAILED; verified before it is stored.",
    )
    async def reconnect_mail_account(
        self, info: Info, input: ReconnectMailAccountInput
    ) -> MailAccountPayload:
        viewer, runtime = viewer_of(info), info.context.runtime
        return await account_payload(
            info,
            lambda session: AccountService(session, runtime).reconnect(
                viewer,
                parse_uuid(input.account_id),
                input.imap_password,
                input.smtp_password or None,
            ),
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Stops syncing the account and deletes its synced mail.",
    )
    async def remove_mail_account(
        self, info: Info, account_id: strawberry.ID
    ) -> RemoveMailAccountPayload:
        viewer = viewer_of(info)
        try:
            async with info.context.unit_of_work() as session:
                removed = await AccountService(session, info.context.runtime).remove(
                    viewer, parse_uuid(account_id)
                )
        except ServiceError as error:
            return RemoveMailAccountPayload(user_errors=[UserError.from_service(error)])
        return RemoveMailAccountPayload(removed_account_id=strawberry.ID(str(removed)))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="null: no default account."
    )
    async def set_default_account(
        self, info: Info, account_id: strawberry.ID | None
    ) -> SetDefaultAccountPayload:
        viewer = viewer_of(info)
        try:
            async with info.context.unit_of_work() as session:
                user = await AccountService(session, info.context.runtime).set_default(
                    viewer, parse_uuid(account_id)
                )
        except ServiceError as error:
            return SetDefaultAccountPayload(user_errors=[UserError.from_service(error)])
        return SetDefaultAccountPayload(user=User.from_row(user))
