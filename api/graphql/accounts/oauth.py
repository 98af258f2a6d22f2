"""Connecting accounts through an OAuth2 sign-in (Google, Microsoft, the generic provider)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.graphql.accounts.payloads import account_payload
from api.graphql.accounts.types import MailAccountPayload
from api.graphql.auth import viewer_of
from api.graphql.context import Info
from api.graphql.enums import OAuthProvider
from api.graphql.errors import IsAuthenticated, UserError
from core.errors import ServiceError
from core.ids import parse_uuid
from core.oauth.flow import OAuthConnections
from core.oauth.providers import all_providers


@strawberry.type
class OAuthProviderInfo:
    provider: OAuthProvider
    name: str
    configured: bool = strawberry.field(
        description="False: this server has no client id/secret for it; do not offer it."
    )


@strawberry.input
class StartOAuthConnectionInput:
    provider: OAuthProvider
    login_hint: str | None = strawberry.field(
        default=strawberry.UNSET, description="The address to suggest on the sign-in page."
    )
    account_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Reconnect this account (e.g. after AUTH_FAILED) instead of adding one.",
    )


@strawberry.type
class OAuthConnectionPayload:
    authorization_url: str | None = strawberry.field(
        default=None, description="Send the browser here; the sign-in works once."
    )
    expires_at: datetime | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CompleteOAuthConnectionInput:
    state: str
    code: str | None = strawberry.UNSET
    error: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The provider's `error` parameter when it sent one instead of a code.",
    )


@strawberry.type
class OAuthQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def oauth_providers(self, info: Info) -> list[OAuthProviderInfo]:
        settings = info.context.runtime.settings
        redirect = settings.oauth_redirect_url is not None
        return [
            OAuthProviderInfo(
                provider=p.provider, name=p.name, configured=p.configured and redirect
            )
            for p in all_providers(settings)
        ]


@strawberry.type
class OAuthMutations:
    @strawberry.mutation(
        name="startOAuthConnection",
        permission_classes=[IsAuthenticated],
        description="Starts an OAuth2 sign-in (PKCE, single-use state): the plan's checks of "
        "addMailAccount, then the provider's authorization URL. The provider sends the "
        "browser back to GET /oauth/callback (or to the SPA, see completeOAuthConnection).",
    )
    async def start_oauth_connection(
        self, info: Info, input: StartOAuthConnectionInput
    ) -> OAuthConnectionPayload:
        viewer, runtime = viewer_of(info), info.context.runtime
        account_id = None if input.account_id in (None, strawberry.UNSET) else input.account_id
        try:
            async with info.context.unit_of_work() as session:
                started = await OAuthConnections(session, runtime).start(
                    viewer,
                    input.provider,
                    input.login_hint or None,
                    parse_uuid(account_id) if account_id is not None else None,
                )
        except ServiceError as error:
            return OAuthConnectionPayload(user_errors=[UserError.from_service(error)])
        return OAuthConnectionPayload(
            authorization_url=started.authorization_url, expires_at=started.expires_at
        )

    @strawberry.mutation(
        name="completeOAuthConnection",
        permission_classes=[IsAuthenticated],
        description="For an SPA that receives the provider's redirect itself: completes the "
        "sign-in with its `code` and `state` (only the viewer who started it can), verifies "
        "XOAUTH2 logins and stores the account READY (or reconnects it).",
    )
    async def complete_oauth_connection(
        self, info: Info, input: CompleteOAuthConnectionInput
    ) -> MailAccountPayload:
        viewer, runtime = viewer_of(info), info.context.runtime
        return await account_payload(
            info,
            lambda session: OAuthConnections(session, runtime).complete(
                viewer, input.state, input.code or None, input.error or None
            ),
        )
