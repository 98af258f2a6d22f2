"""Errors: ``userErrors`` for expected failures, top-level errors with a code otherwise."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.exceptions
import sqlalchemy.exc
import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.permission import BasePermission

from api.graphql import limits
from api.graphql.context import Context
from api.graphql.enums import ErrorCode
from core.errors import ServiceError

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
INVALID_INPUT = "INVALID_INPUT"
UNAVAILABLE = "UNAVAILABLE"  # PostgreSQL or Redis cannot serve now (HTTP 503): retry
TIMEOUT = "TIMEOUT"
INTERNAL = "INTERNAL"
# Top-level errors with these codes are ours and safe to show; anything else is masked.
PUBLIC_CODES = frozenset(
    {
        UNAUTHENTICATED,
        FORBIDDEN,
        INVALID_INPUT,
        UNAVAILABLE,
        TIMEOUT,
        limits.QUERY_TOO_LARGE,
        limits.QUERY_TOO_COMPLEX,
    }
)
UNAVAILABLE_MESSAGE = "The service is busy or cannot reach its database; try again shortly."
# What a dependency that is down or saturated raises (a pool with no free connection
# within its timeout included): the request may succeed if tried again.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


@strawberry.type
class UserError:
    code: ErrorCode
    message: str  # human readable, never contains a secret
    field: str | None = None

    @classmethod
    def from_service(cls, error: ServiceError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


class IsAuthenticated(BasePermission):
    message = "Authentication required: send `Authorization: Bearer <token>`."
    error_extensions = {"code": UNAUTHENTICATED}

    def has_permission(
        self, source: Any, info: strawberry.Info[Context, None], **kwargs: Any
    ) -> bool:
        if info.context.viewer is not None:
            return True
        response = info.context.response
        if response is not None and hasattr(response, "status_code"):
            response.status_code = 401
        return False


def top_level_error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def is_expected_error(error: GraphQLError) -> bool:
    """Validation, syntax and coercion errors (graphql-core's own, which may wrap one
    another) and our coded errors: shown as they are, logged without a traceback. Anything
    else is an internal fault, masked in the response."""
    original = error.original_error
    if original is None or error_code(error) in PUBLIC_CODES:
        return True
    return isinstance(original, GraphQLError) and is_expected_error(original)


def is_unavailable(error: BaseException | None) -> bool:
    seen = 0
    while error is not None and seen < 10:  # the chain of causes, bounded
        if isinstance(error, _UNAVAILABLE_ERRORS):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def error_code(error: GraphQLError) -> str | None:
    code = (error.extensions or {}).get("code")
    return code if isinstance(code, str) else None


class PublicErrors(MaskErrors):
    """What leaves the API: our coded errors as they are, an unavailable dependency as
    UNAVAILABLE (retryable), anything else masked as INTERNAL without detail."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not is_expected_error(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        unavailable = is_unavailable(error.original_error)
        return GraphQLError(
            UNAVAILABLE_MESSAGE if unavailable else self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": UNAVAILABLE if unavailable else INTERNAL},
        )
