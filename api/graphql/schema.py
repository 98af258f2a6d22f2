"""The GraphQL schema, composed from per-domain pieces.

``schema`` is what ``schema.graphql`` is exported from (``make schema``); a test fails
when the file and the code differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from api.graphql.accounts.mutations import AccountMutations
from api.graphql.accounts.oauth import OAuthMutations, OAuthQueries
from api.graphql.accounts.queries import AccountQueries
from api.graphql.accounts.subscriptions import AccountSubscriptions
from api.graphql.accounts.sync_mutations import SyncMutations
from api.graphql.accounts.sync_subscriptions import SyncSubscriptions
from api.graphql.conversations.queries import ConversationQueries
from api.graphql.errors import TIMEOUT, PublicErrors, is_expected_error
from api.graphql.execution import FastLeafExecutionContext
from api.graphql.identity.queries import IdentityQueries
from api.graphql.inbox.mutations import InboxMutations, MoveMutations
from api.graphql.inbox.queries import InboxQueries
from api.graphql.limits import DocumentCache, GraphQLLimits, OperationLimits, refusal
from api.graphql.sending.mutations import SendingMutations
from api.graphql.sending.queries import SendingQueries
from api.graphql.sending.subscriptions import SendingSubscriptions
from api.graphql.usage.queries import UsageQueries
from api.metrics import RequestMetrics

MAX_DEPTH = 10
MAX_ALIASES = 20


@strawberry.type
class Query(
    IdentityQueries,
    AccountQueries,
    OAuthQueries,
    InboxQueries,
    ConversationQueries,
    UsageQueries,
    SendingQueries,
):
    pass


@strawberry.type
class Mutation(
    AccountMutations,
    OAuthMutations,
    SyncMutations,
    InboxMutations,
    MoveMutations,
    SendingMutations,
):
    pass


@strawberry.type
class Subscription(AccountSubscriptions, SyncSubscriptions, SendingSubscriptions):
    pass


class Schema(strawberry.Schema):
    limits: GraphQLLimits
    execution_seconds: float

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
        """Queries and mutations only (subscriptions are served over websockets), each
        within ``execution_seconds``."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        try:
            async with asyncio.timeout(self.execution_seconds):
                return await super().execute(
                    query,
                    variable_values,
                    context_value,
                    root_value,
                    operation_name,
                    allowed - {OperationType.SUBSCRIPTION},
                    operation_extensions,
                )
        except TimeoutError:
            message = f"The request took longer than {self.execution_seconds:g} s and was stopped."
            return ExecutionResult(data=None, errors=[refusal(TIMEOUT, message)])

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback; a refused token is not one."""
        unexpected = [e for e in errors if not is_expected_error(e)]
        super().process_errors(unexpected, execution_context)


# The depth and alias rules, built once: each limiter makes a new rule class, and the
# cached validation is only valid for the rules it ran with.
_LIMIT_RULES = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


def build_schema(limits: GraphQLLimits | None = None, *, execution_seconds: float = 60.0) -> Schema:
    limits = limits or GraphQLLimits()
    # One cache per schema (per process): the SPA sends the same few documents again and
    # again, parsed and validated once each (that was ~7 ms of an inbox page).
    cache = DocumentCache(limits.cache_bytes)
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(disable_field_suggestions=limits.production),
        execution_context_class=FastLeafExecutionContext,
        extensions=[
            lambda: AddValidationRules(list(_LIMIT_RULES)),
            lambda: OperationLimits(limits, cache),
            PublicErrors,
            RequestMetrics,
        ],
    )
    schema.limits = limits
    schema.execution_seconds = execution_seconds
    return schema


schema = build_schema()
