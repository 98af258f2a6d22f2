"""The short path for plain leaf fields gives exactly graphql-core's results and errors."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.graphql.context import Context
from api.graphql.execution import FastLeafExecutionContext
from api.graphql.schema import build_schema
from core.identity.service import authenticate_request
from core.models import FolderRole
from core.runtime import Runtime
from tests.support.accounts import NewUser
from tests.support.inbox import MESSAGE_FIELDS, seed_account, seed_messages

PAGE = f"""query($first: Int) {{ inbox(first: $first) {{
  edges {{ cursor node {{ {MESSAGE_FIELDS} isRead account {{ status sharing }} }} }}
  pageInfo {{ hasNextPage endCursor }} }} }}"""


async def test_an_inbox_page_is_the_same_by_both_paths(new_user: NewUser, runtime: Runtime) -> None:
    user = await new_user()
    account = await seed_account(runtime, user)
    await seed_messages(
        runtime,
        account,
        [{"subject": None}, {"subject": "ünïcode", "is_read": True}, {"from_name": None}],
    )
    viewer = await authenticate_request(runtime.engine, user.token)
    results = []
    for context_class in (FastLeafExecutionContext, StrawberryGraphQLCoreExecutionContext):
        schema = build_schema()
        schema.execution_context_class = context_class
        context = Context(runtime=runtime, request=None, response=None, viewer=viewer)  # type: ignore[arg-type]
        result = await schema.execute(PAGE, {"first": 10}, context_value=context)
        assert result.errors is None
        results.append(result.data)
    fast, plain = results
    assert fast == plain
    assert len(fast["inbox"]["edges"]) == 3


@strawberry.type
class Thing:
    name: str
    role: FolderRole
    count: int | None


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing | None]:
        broken: Any = Thing(name=None, role=FolderRole.INBOX, count=None)  # type: ignore[arg-type]
        odd: Any = Thing(name="x", role="not a role", count="seven")  # type: ignore[arg-type]
        return [Thing(name="a", role=FolderRole.SENT, count=2), broken, odd]


def test_nulls_and_bad_values_fail_as_graphql_core_fails() -> None:
    """A null in a non-null field, an enum value that is not one, an int that is not."""
    outcomes = []
    for context_class in (FastLeafExecutionContext, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(Query, execution_context_class=context_class)
        result = schema.execute_sync("{ things { name role count } }")
        outcomes.append((result.data, [(e.message, e.path) for e in result.errors or []]))
    assert outcomes[0] == outcomes[1]
    data, errors = outcomes[0]
    assert data == {"things": [{"name": "a", "role": "SENT", "count": 2}, None, None]}
    assert len(errors) == 2


@strawberry.type
class Owner:
    name: str


@strawberry.type
class Box:
    label: str | None
    owner: Owner
    tags: list[Owner]


@strawberry.type
class BoxQuery:
    @strawberry.field
    def boxes(self) -> list[Box | None]:
        no_owner: Any = Box(label="b", owner=None, tags=[])  # type: ignore[arg-type]
        bad_tag: Any = Box(label=None, owner=Owner(name="o"), tags=[Owner(name=None)])  # type: ignore[arg-type]
        return [Box(label="a", owner=Owner(name="x"), tags=[Owner(name="t")]), no_owner, bad_tag]

    @strawberry.field
    def box(self) -> Box | None:
        return Box(label=None, owner=Owner(name="y"), tags=[Owner(name="u"), Owner(name="v")])


def test_plain_objects_and_lists_complete_as_graphql_core_completes_them() -> None:
    """Nested plain objects and lists of them, with aliases, fragments, @skip and
    __typename; a null in a non-null object or in a list item fails the same way."""
    query = """
    query($skip: Boolean!) {
      box { ...B  who: owner { __typename name } }
      boxes { label owner { name } tags @skip(if: $skip) { name } tags2: tags { name } }
    }
    fragment B on Box { label tags { n: name } }
    """
    outcomes = []
    for context_class in (FastLeafExecutionContext, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(BoxQuery, execution_context_class=context_class)
        for skip in (True, False):
            result = schema.execute_sync(query, variable_values={"skip": skip})
            errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
            outcomes.append((result.data, errors))
    assert outcomes[:2] == outcomes[2:]
    data, errors = outcomes[0]
    assert data is not None
    assert data["box"] == {
        "label": None,
        "tags": [{"n": "u"}, {"n": "v"}],
        "who": {"__typename": "Owner", "name": "y"},
    }
    assert data["boxes"][0] == {
        "label": "a",
        "owner": {"name": "x"},
        "tags": [{"name": "t"}],
        "tags2": [{"name": "t"}],
    } or data["boxes"][0] == {"label": "a", "owner": {"name": "x"}, "tags2": [{"name": "t"}]}
    assert data["boxes"][1:] == [None, None]
    assert len(errors) == 2  # boxes.1.owner and boxes.2.tags2.0.name
