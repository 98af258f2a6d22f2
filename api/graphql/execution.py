"""graphql-core's execution with a short path for what a page is mostly made of.

An inbox page of 50 messages resolves ~1,100 fields, ~800 of them leaves (ids, subjects,
dates, flags) that strawberry reads straight off the object. graphql-core builds a
resolve-info object and strawberry wraps a resolver around each of them, which was about
half of a request's time in a profile. A leaf of that kind (a scalar or enum, no
arguments, strawberry's default resolver, no resolve middleware) is read and coerced here
directly; anything unusual (a null, an error, a value that does not coerce) goes the
ordinary way, so results and errors are exactly graphql-core's.

Written against graphql-core 3.3 (``ExecutionContext.execute_field``) and strawberry's
``StrawberryGraphQLCoreExecutionContext``; tests/api/test_fast_execution.py compares the
two paths on the real schema.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_DEFINITION = "strawberry-definition"
# (type name, field name) -> (attribute, leaf type), or None: not a plain leaf.
_Plan = tuple[str, GraphQLScalarType | GraphQLEnumType] | None


def _plan(parent_type: GraphQLObjectType, field_name: str) -> _Plan:
    field = parent_type.fields.get(field_name)
    if field is None or field.args or not getattr(field.resolve, "_is_default", False):
        return None
    definition = (field.extensions or {}).get(_DEFINITION)
    if definition is None:
        return None
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        return None
    return definition.python_name, inner


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    _plans: dict[tuple[str, str], _Plan] = {}  # the schema is built once per process

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        middleware = self.middleware_manager
        if middleware is None or not middleware.middlewares:
            name = field_details_list[0].node.name.value
            key = (parent_type.name, name)
            if key in self._plans:
                plan = self._plans[key]
            else:
                plan = self._plans[key] = _plan(parent_type, name)
            if plan is not None:
                attribute, leaf = plan
                value = getattr(source, attribute, None)
                if value is not None and not isinstance(value, Exception):
                    try:
                        coerced = leaf.coerce_output_value(value)
                    except Exception:  # graphql-core's path reports it
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        return coerced
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
