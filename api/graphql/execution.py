"""graphql-core's execution with a short path for what a page is mostly made of.

An inbox page of 50 messages resolves ~1,100 fields, most of them plain: leaves (ids,
subjects, dates, flags) and objects (an edge's node, a message's sender and account) that
strawberry reads straight off the object. graphql-core builds a resolve-info object for
each, wraps strawberry's resolver around it, completes it through several layers, and
collects its sub-selection; that was most of a request's time in a profile. A *plain*
field here is one with strawberry's default resolver, no arguments and no resolve
middleware, whose type is a scalar or enum, an object type without ``is_type_of``, or a
list of such objects; or one whose resolver is marked :func:`plain_resolver` (a cheap,
side-effect-free function of its object alone), which is then called directly, so lists
a page does not select (a message's recipients, its cursor) are never built. Such a field
is read and completed here directly, sub-selections included (graphql-core's own memoized
``collect_subfields``, so fragments, aliases and @skip/@include are exactly its).
Anything unusual (a null where the schema forbids one, an exception, a value that does
not coerce, a field that is not plain) makes the whole field
go the ordinary way, so results and errors are exactly graphql-core's.

Written against graphql-core 3.3 (``ExecutionContext.execute_field``,
``collect_subfields``) and strawberry's ``StrawberryGraphQLCoreExecutionContext``;
tests/api/test_fast_execution.py compares the two paths on the real schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_DEFINITION = "strawberry-definition"
_LEAF, _OBJECT, _LIST = "leaf", "object", "list"
_MISS: Any = object()  # "not by the short path": the field goes graphql-core's way
_PLAIN = "_mailsync_plain_resolver"
F = TypeVar("F", bound=Callable[..., Any])


def plain_resolver(func: F) -> F:
    """Mark a resolver that takes only ``self`` and is a cheap, side-effect-free function of
    it: the short path calls it directly (and may call it again on the ordinary path)."""
    setattr(func, _PLAIN, True)
    return func


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: str
    attribute: str
    type: Any  # the leaf type, or the object type (of a list's items)
    nullable: bool
    items_nullable: bool = False
    compute: Callable[[Any], Any] | None = None  # a plain resolver, else the attribute


def _unwrap(type_: Any) -> tuple[Any, bool]:
    if isinstance(type_, GraphQLNonNull):
        return type_.of_type, False
    return type_, True


def _plain_object(type_: Any) -> bool:
    return isinstance(type_, GraphQLObjectType) and type_.is_type_of is None


def _compute(definition: Any) -> Callable[[Any], Any] | None:
    resolver = getattr(definition, "base_resolver", None)
    if resolver is None or definition.extensions or resolver.is_async:
        return None
    func = resolver.wrapped_func
    return func if getattr(func, _PLAIN, False) else None


def _plan(parent_type: GraphQLObjectType, field_name: str) -> _Plan | None:
    field = parent_type.fields.get(field_name)
    if field is None or field.args:
        return None
    definition = (field.extensions or {}).get(_DEFINITION)
    if definition is None:
        return None
    compute = None
    if not getattr(field.resolve, "_is_default", False):
        compute = _compute(definition)
        if compute is None:
            return None
    attribute = definition.python_name
    inner, nullable = _unwrap(field.type)
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        return _Plan(_LEAF, attribute, inner, nullable, compute=compute)
    if _plain_object(inner):
        return _Plan(_OBJECT, attribute, inner, nullable, compute=compute)
    if isinstance(inner, GraphQLList):
        item, items_nullable = _unwrap(inner.of_type)
        if _plain_object(item):
            return _Plan(_LIST, attribute, item, nullable, items_nullable, compute)
    return None


class FastLeafExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # Per type object, not per type name: tests (and tools) build several schemas whose
    # types share names, and a plan holds its schema's own type objects.
    _plans: dict[tuple[GraphQLObjectType, str], _Plan | None] = {}

    def _plan_of(self, parent_type: GraphQLObjectType, name: str) -> _Plan | None:
        key = (parent_type, name)
        try:
            return self._plans[key]
        except KeyError:
            plan = self._plans[key] = _plan(parent_type, name)
            return plan

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
            plan = self._plan_of(parent_type, field_details_list[0].node.name.value)
            if plan is not None:
                completed = self._complete(plan, source, field_details_list)
                if completed is not _MISS:
                    return completed
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _complete(self, plan: _Plan, source: Any, field_details_list: Any) -> Any:
        if plan.compute is None:
            value = getattr(source, plan.attribute, None)
        else:
            try:
                value = plan.compute(source)
            except Exception:  # graphql-core's path reports it
                return _MISS
        if value is None:
            return None if plan.nullable else _MISS
        if isinstance(value, Exception):
            return _MISS
        if plan.kind == _LEAF:
            try:
                coerced = plan.type.coerce_output_value(value)
            except Exception:  # graphql-core's path reports it
                return _MISS
            return _MISS if coerced is None or coerced is Undefined else coerced
        if plan.kind == _OBJECT:
            return self._complete_object(plan.type, value, field_details_list)
        if not isinstance(value, list | tuple):
            return _MISS
        items: list[Any] = []
        for item in value:
            if item is None:
                if not plan.items_nullable:
                    return _MISS
                items.append(None)
                continue
            completed = self._complete_object(plan.type, item, field_details_list)
            if completed is _MISS:
                return _MISS
            items.append(completed)
        return items

    def _complete_object(
        self, object_type: GraphQLObjectType, value: Any, field_details_list: Any
    ) -> Any:
        grouped_field_set, new_defer_usages, *_ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return _MISS
        result: dict[str, Any] = {}
        for response_name, sub_details in grouped_field_set.items():
            name = sub_details[0].node.name.value
            if name == "__typename":
                result[response_name] = object_type.name
                continue
            plan = self._plan_of(object_type, name)
            if plan is None:
                return _MISS
            completed = self._complete(plan, value, sub_details)
            if completed is _MISS:
                return _MISS
            result[response_name] = completed
        return result
