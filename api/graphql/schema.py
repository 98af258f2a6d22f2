"""The GraphQL schema, composed from per-domain pieces.

``schema`` is what ``schema.graphql`` is exported from (``make schema``); a test fails
when the file and the code differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from api.graphql.accounts.mutations import AccountMutations
from api.graphql.accounts.oauth import OAuthMutations, OAuthQueries
from api.graphql.accounts.queries import AccountQueries
from api.graphql.accounts.subscriptions import AccountSubscriptions
from api.graphql.accounts.sync_mutations import SyncMutations
from api.graphql.accounts.sync_subscriptions import SyncSubscriptions
from api.graphql.errors import is_expected_error
from api.graphql.identity.queries import IdentityQueries
from api.graphql.inbox.mutations import InboxMutations
from api.graphql.inbox.queries import InboxQueries
from api.graphql.sending.mutations import SendingMutations
from api.graphql.sending.queries import SendingQueries
from api.graphql.sending.subscriptions import SendingSubscriptions
from api.graphql.usage.queries import UsageQueries

MAX_DEPTH = 10
MAX_ALIASES = 20
MAX_TOKENS = 2000
PARSED_DOCUMENTS = 256


@strawberry.type
class Query(
    IdentityQueries, AccountQueries, OAuthQueries, InboxQueries, UsageQueries, SendingQueries
):
    pass


@strawberry.type
class Mutation(AccountMutations, OAuthMutations, SyncMutations, InboxMutations, SendingMutations):
    pass


@strawberry.type
class Subscription(AccountSubscriptions, SyncSubscriptions, SendingSubscriptions):
    pass


class Schema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Queries and mutations only: subscriptions are served over websockets."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback; a refused token is not one."""
        unexpected = [e for e in errors if not is_expected_error(e)]
        super().process_errors(unexpected, execution_context)


# The depth and alias rules, built once: each limiter makes a new rule class, and the
# validation cache is keyed on the rule classes, so per-request ones would never hit.
_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


def build_schema(*, field_suggestions: bool = True) -> Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(disable_field_suggestions=not field_suggestions),
        extensions=[
            # The SPA sends the same few documents again and again: parse and validate
            # each once (this was ~7 ms of an inbox page).
            lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
            lambda: ValidationCache(maxsize=PARSED_DOCUMENTS),
            lambda: AddValidationRules(list(_LIMIT_RULES)),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaskErrors(should_mask_error=lambda error: not is_expected_error(error)),
        ],
    )


schema = build_schema()
