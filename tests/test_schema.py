"""The exported SDL is current, and it covers the public API contract.

The contract lives outside this repository, in ``shared/design/api-contract.graphql``
beside the checkout (locally ``/work/shared``; CI clones the repository next to a
``shared/`` folder). It is looked for upward from the repository root; a missing contract
fails the run, it is never skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    print_ast,
)

from api.graphql.schema import schema

REPO_ROOT = Path(__file__).resolve().parents[1]
SDL_FILE = REPO_ROOT / "schema.graphql"
CONTRACT = Path("shared") / "design" / "api-contract.graphql"

# Contract names owned by later issues, as "Type" or "Type.field" (or "Type.field(arg)").
# Each one must really be absent here: when the work lands, the name leaves this list and
# the coverage test starts checking it.
DEFERRED: frozenset[str] = frozenset()


def _find_contract() -> Path:
    candidates = [
        Path(__file__).resolve().parents[2] / CONTRACT,
        REPO_ROOT.parent / CONTRACT,
        *(folder / CONTRACT for folder in (REPO_ROOT, *REPO_ROOT.parents)),
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail(
        f"the API contract {CONTRACT} was not found beside {REPO_ROOT} or any folder "
        "above it; check out the shared design folder next to the repository"
    )


@pytest.fixture(scope="module")
def contract() -> GraphQLSchema:
    return build_schema(_find_contract().read_text())


@pytest.fixture(scope="module")
def ours() -> GraphQLSchema:
    return build_schema(SDL_FILE.read_text())


def _user_types(sdl_schema: GraphQLSchema) -> dict[str, GraphQLNamedType]:
    return {
        name: kind
        for name, kind in sdl_schema.type_map.items()
        if not name.startswith("__") and name not in {"String", "Int", "Float", "Boolean", "ID"}
    }


def _default(value: GraphQLArgument | GraphQLInputField) -> str | None:
    node = value.ast_node
    assert node is not None  # built from SDL
    return print_ast(node.default_value) if node.default_value else None


def _names(sdl_schema: GraphQLSchema) -> set[str]:
    """Every type, field, argument, input field and enum value, qualified."""
    names: set[str] = set()
    for type_name, kind in _user_types(sdl_schema).items():
        names.add(type_name)
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in kind.fields.items():
                names.add(f"{type_name}.{field_name}")
                names.update(f"{type_name}.{field_name}({arg})" for arg in field.args)
        elif isinstance(kind, GraphQLInputObjectType):
            names.update(f"{type_name}.{field_name}" for field_name in kind.fields)
        elif isinstance(kind, GraphQLEnumType):
            names.update(f"{type_name}.{value}" for value in kind.values)
    return names


def _deferred(name: str) -> bool:
    """The name, or the type or field that it belongs to, is deferred."""
    type_name, _, rest = name.partition(".")
    field_name = rest.partition("(")[0]
    return name in DEFERRED or type_name in DEFERRED or f"{type_name}.{field_name}" in DEFERRED


def _signatures(sdl_schema: GraphQLSchema) -> dict[str, str]:
    """For each typed name: its kind, or its type with wrapping and default value."""
    out: dict[str, str] = {}
    for type_name, kind in _user_types(sdl_schema).items():
        out[type_name] = type(kind).__name__
        if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in kind.fields.items():
                out[f"{type_name}.{field_name}"] = str(field.type)
                for arg_name, arg in field.args.items():
                    out[f"{type_name}.{field_name}({arg_name})"] = f"{arg.type} = {_default(arg)}"
        elif isinstance(kind, GraphQLInputObjectType):
            for field_name, input_field in kind.fields.items():
                out[f"{type_name}.{field_name}"] = f"{input_field.type} = {_default(input_field)}"
    return out


def test_exported_schema_file_is_current() -> None:
    assert SDL_FILE.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `make schema` "
        "(strawberry export-schema api.graphql.schema:schema --output schema.graphql)"
    )


def test_every_contract_name_exists_unless_deferred(
    contract: GraphQLSchema, ours: GraphQLSchema
) -> None:
    have = _names(ours)
    missing = sorted(n for n in _names(contract) - have if not _deferred(n))
    assert missing == [], f"contract names missing from schema.graphql: {missing}"


def test_deferred_names_are_in_the_contract_and_still_absent(
    contract: GraphQLSchema, ours: GraphQLSchema
) -> None:
    in_contract = _names(contract)
    assert sorted(DEFERRED - in_contract) == [], "DEFERRED names that the contract lacks"
    landed = sorted(DEFERRED & _names(ours))
    assert landed == [], f"now implemented: remove {landed} from DEFERRED"


def test_contract_types_match(contract: GraphQLSchema, ours: GraphQLSchema) -> None:
    """Same kind of type; same named type, non-null/list wrapping and default value."""
    expected, actual = _signatures(contract), _signatures(ours)
    mismatched = {
        name: {"contract": want, "ours": actual[name]}
        for name, want in expected.items()
        if name in actual and actual[name] != want
    }
    assert mismatched == {}, f"schema.graphql differs from the contract: {mismatched}"


def test_contract_roots_are_ours(contract: GraphQLSchema, ours: GraphQLSchema) -> None:
    for root in ("query_type", "mutation_type", "subscription_type"):
        want, have = getattr(contract, root), getattr(ours, root)
        assert want is not None, root
        assert have is not None, root
        assert want.name == have.name, root
