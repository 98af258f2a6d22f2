"""Errors: ``userErrors`` for expected failures, top-level errors with a code otherwise."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from api.graphql.context import Context
from api.graphql.enums import ErrorCode
from core.errors import ServiceError

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
INVALID_INPUT = "INVALID_INPUT"
# Top-level errors with these codes are ours and safe to show; anything else is masked.
PUBLIC_CODES = frozenset({UNAUTHENTICATED, FORBIDDEN, INVALID_INPUT})


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
    """Validation/syntax errors and our coded errors: shown as they are, logged without a
    traceback. Anything else is an internal fault, masked in the response."""
    if error.original_error is None:
        return True
    return (error.extensions or {}).get("code") in PUBLIC_CODES or (
        isinstance(error.original_error, GraphQLError)
        and (error.original_error.extensions or {}).get("code") in PUBLIC_CODES
    )
