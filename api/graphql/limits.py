"""What every GraphQL operation must meet before any resolver runs.

In order: the query text's length; parsing (token limit) and validation (depth, aliases,
the spec's rules, string literals), each done once per distinct text and kept in a cache
bounded by bytes; then, per request, the variables (strings without NUL or unpaired
surrogates, lists of bounded length), introspection (signed-in callers only in production)
and the operation's cost. A refusal is a top-level error with a code, and nothing runs.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    parse,
    visit,
)
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

QUERY_TOO_LARGE = "QUERY_TOO_LARGE"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
INVALID_INPUT = "INVALID_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"

# Lists that take no `first`: the most items one can hold (enforced where they are built).
LIST_SIZES: dict[tuple[str, str], int] = {
    ("Query", "mailAccounts"): 5,  # the largest plan
    ("User", "mailAccounts"): 5,
    ("Query", "syncUsage"): 200,  # users of a company: an estimate, not a cap
    ("UserSyncUsage", "accounts"): 5,
    ("MailAccount", "folders"): 500,  # core.mail.imap.MAX_FOLDERS
    ("MailAccount", "labels"): 500,
    ("Message", "thread"): 100,  # core.inbox.repository.MAX_THREAD_MESSAGES
    ("Message", "attachments"): 50,  # api.graphql.inbox.types.MAX_LISTED
    ("Message", "to"): 50,
    ("Message", "cc"): 50,
    ("Conversation", "participants"): 10,  # core.conversations.repository.MAX_PARTICIPANTS
}
DEFAULT_LIST_SIZE = 100
DEFAULT_PAGE = 50
MAX_PAGE = 100  # what `first` is capped at by every paged field
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class GraphQLLimits:
    max_query_chars: int = 20_000
    max_tokens: int = 2_000
    max_cost: int = 40_000  # ~5.6 us a field: a query at the limit holds the loop ~0.2 s
    max_list_items: int = 1_000
    cache_bytes: int = 2_000_000  # of query text; a parsed document is ~20x its text
    production: bool = False  # introspection for signed-in callers only, no suggestions


def refusal(code: str, message: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **details})


@dataclass
class _Entry:
    document: DocumentNode
    validation: list[GraphQLError] | None = None
    introspects: bool = False


@dataclass
class DocumentCache:
    """Parsed documents and their validation, least recently used out first, bounded by
    the total length of their texts (not by their number: 256 texts of 20 kB are not 256
    of 200 bytes)."""

    max_bytes: int
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def get(self, text: str) -> _Entry | None:
        entry = self._entries.get(text)
        if entry is not None:
            self._entries.move_to_end(text)
        return entry

    def put(self, text: str, entry: _Entry) -> None:
        if len(text) > self.max_bytes:
            return
        self._entries[text] = entry
        self._bytes += len(text)
        while self._bytes > self.max_bytes:
            old, _ = self._entries.popitem(last=False)
            self._bytes -= len(old)

    @property
    def size_bytes(self) -> int:
        return self._bytes


class _DocumentFacts(Visitor):
    """Facts of a document that do not depend on the request: unsafe string literals and
    whether it asks for the schema."""

    def __init__(self) -> None:
        super().__init__()
        self.unsafe_literal = False
        self.introspects = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if _UNSAFE_TEXT.search(node.value):
            self.unsafe_literal = True

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        if node.name.value in ("__schema", "__type"):
            self.introspects = True


def _validate(schema: GraphQLSchema, entry: _Entry, rules: tuple[Any, ...]) -> list[GraphQLError]:
    errors = list(validate_document(schema, entry.document, rules))
    facts = _DocumentFacts()
    visit(entry.document, facts)
    entry.introspects = facts.introspects
    if facts.unsafe_literal:
        errors.append(
            refusal(INVALID_INPUT, "A string holds a NUL character or an unpaired surrogate.")
        )
    return errors


def unsafe_variable(variables: Mapping[str, Any] | None, max_items: int) -> GraphQLError | None:
    """The first problem with the variables, looked at before any of them is coerced:
    a list longer than ``max_items``, or a string that PostgreSQL cannot store."""
    if not variables:
        return None
    stack: list[tuple[str, Any]] = [(f"${name}", value) for name, value in variables.items()]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _UNSAFE_TEXT.search(value):
                return refusal(
                    INVALID_INPUT,
                    f"{path} holds a NUL character or an unpaired surrogate.",
                    path=path,
                )
        elif isinstance(value, list):
            if len(value) > max_items:
                return refusal(
                    INVALID_INPUT,
                    f"{path} has {len(value)} items; a list may have at most {max_items}.",
                    path=path,
                )
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
        elif isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
    return None


def _unwrap(type_: GraphQLOutputType) -> tuple[bool, GraphQLNamedType]:
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    return isinstance(inner, GraphQLList), get_named_type(inner)


def _page_size(node: FieldNode, default: object, variables: Mapping[str, Any]) -> int | None:
    """The page a field with a `first` argument returns: its value, capped like the
    resolvers cap it; None for a field without one."""
    for argument in node.arguments or ():
        if argument.name.value != "first":
            continue
        value: object = None
        if isinstance(argument.value, IntValueNode):
            value = int(argument.value.value)
        elif isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(0, min(value, MAX_PAGE))
        return DEFAULT_PAGE
    return default if isinstance(default, int) else None


@dataclass
class _CostWalk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]

    def selection_cost(
        self, parent: GraphQLNamedType, selections: SelectionSetNode, times: int, page: int | None
    ) -> int:
        """Fields resolved below ``parent``, ``times`` over; every fragment counts in full
        (for a union that overestimates, never under)."""
        cost = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                cost += self.field_cost(parent, selection, times, page)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    named = self.schema.get_type(selection.type_condition.name.value)
                    target = named if named is not None else parent
                cost += self.selection_cost(target, selection.selection_set, times, page)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    named = self.schema.get_type(fragment.type_condition.name.value)
                    cost += self.selection_cost(
                        named if named is not None else parent,
                        fragment.selection_set,
                        times,
                        page,
                    )
        return cost

    def field_cost(
        self, parent: GraphQLNamedType, node: FieldNode, times: int, page: int | None
    ) -> int:
        cost = times
        fields = getattr(parent, "fields", None)
        definition = fields.get(node.name.value) if fields else None
        if definition is None or node.selection_set is None:
            return cost
        is_list, inner = _unwrap(definition.type)
        first = definition.args.get("first")
        own_page = _page_size(node, first.default_value, self.variables) if first else None
        if not is_list:  # a connection: its page sizes the list right below it (edges)
            return cost + self.selection_cost(inner, node.selection_set, times, own_page)
        if own_page is not None:  # a paged list itself (outgoingMessages)
            size = own_page
        else:
            default = page if page is not None else DEFAULT_LIST_SIZE
            size = LIST_SIZES.get((parent.name, node.name.value), default)
        return cost + self.selection_cost(inner, node.selection_set, times * size, None)


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """How many fields the operation may resolve at most, from its page sizes and the
    caps of the lists it selects (LIST_SIZES); 0 when the operation is not found."""
    operation: OperationDefinitionNode | None = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    root: GraphQLObjectType | None = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _CostWalk(schema, fragments, variables or {})
    return walk.selection_cost(root, operation.selection_set, 1, None)


def without_suggestions(error: GraphQLError) -> GraphQLError:
    """The same error without graphql-core's "Did you mean …?" (names of the schema)."""
    message = _SUGGESTION.sub("", error.message)
    if message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


class OperationLimits(SchemaExtension):
    """Parsing and validation through the cache, then the per-request checks."""

    def __init__(self, limits: GraphQLLimits, cache: DocumentCache) -> None:
        super().__init__()
        self.limits = limits
        self.cache = cache

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if text is not None and context.graphql_document is None:
            if len(text) > self.limits.max_query_chars:
                raise refusal(
                    QUERY_TOO_LARGE,
                    f"The query has {len(text)} characters; at most "
                    f"{self.limits.max_query_chars} are accepted.",
                )
            entry = self.cache.get(text)
            if entry is None:
                entry = _Entry(parse(text, max_tokens=self.limits.max_tokens))
                self.cache.put(text, entry)
            context.graphql_document = entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        text, document = context.query, context.graphql_document
        entry = self.cache.get(text) if text is not None else None
        if entry is None or entry.document is not document:
            assert document is not None
            entry = _Entry(document)
        if entry.validation is None:
            entry.validation = _validate(context.schema._schema, entry, context.validation_rules)
        errors = list(entry.validation) or self._request_errors(entry)
        if self.limits.production:
            errors = [without_suggestions(e) for e in errors]
        context.pre_execution_errors = errors
        yield

    def _request_errors(self, entry: _Entry) -> list[GraphQLError]:
        context = self.execution_context
        problem = unsafe_variable(context.variables, self.limits.max_list_items)
        if problem is not None:
            return [problem]
        viewer = getattr(context.context, "viewer", None)
        if self.limits.production and entry.introspects and viewer is None:
            return [refusal(UNAUTHENTICATED, "Introspection is for signed-in callers.")]
        cost = operation_cost(
            context.schema._schema, entry.document, context.operation_name, context.variables
        )
        if cost > self.limits.max_cost:
            return [
                refusal(
                    QUERY_TOO_COMPLEX,
                    f"The query may resolve {cost} fields; at most {self.limits.max_cost} "
                    "are allowed. Ask for smaller pages or fewer nested lists.",
                    cost=cost,
                    limit=self.limits.max_cost,
                )
            ]
        return []
