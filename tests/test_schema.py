"""schema.graphql is the API contract: current with the code, and never broken by accident.

``schema.graphql`` is the exported SDL (``make schema``). ``tests/schema_baseline.graphql``
is the schema clients were written against; every change from it to ``schema.graphql``
that graphql-core reports as breaking (or that changes a default value) fails here unless
it is declared in ``DECLARED_BREAKING_CHANGES`` with the reason, so a break is always a
decision taken in review, never a side effect.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    BreakingChangeType,
    DangerousChangeType,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
)

from api.graphql.schema import schema

REPO_ROOT = Path(__file__).resolve().parents[1]
SDL_FILE = REPO_ROOT / "schema.graphql"
BASELINE_FILE = Path(__file__).with_name("schema_baseline.graphql")

# Deliberate breaks since the baseline, as graphql-core describes them (the failure message
# prints them so), each with the reason clients must adapt. `make schema-baseline` at a
# release takes the current schema as the baseline; the declarations then go.
DECLARED_BREAKING_CHANGES: dict[str, str] = {}

# Dangerous changes that still change what an existing client gets.
_BREAKING_DANGEROUS = {
    DangerousChangeType.ARG_DEFAULT_VALUE_CHANGE,
    DangerousChangeType.INPUT_FIELD_DEFAULT_VALUE_CHANGE,
}


def breaking_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[str]:
    """Changes from ``old`` to ``new`` that may break a client written against ``old``."""
    changes: list[tuple[BreakingChangeType | DangerousChangeType, str]] = [
        (change.type, change.description) for change in find_breaking_changes(old, new)
    ]
    changes += [
        (change.type, change.description)
        for change in find_dangerous_changes(old, new)
        if change.type in _BREAKING_DANGEROUS
    ]
    return sorted(description for _, description in changes)


@pytest.fixture(scope="module")
def baseline() -> GraphQLSchema:
    return build_schema(BASELINE_FILE.read_text())


@pytest.fixture(scope="module")
def ours() -> GraphQLSchema:
    return build_schema(SDL_FILE.read_text())


def test_exported_schema_file_is_current() -> None:
    assert SDL_FILE.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `make schema`"
    )


def test_no_undeclared_breaking_change(baseline: GraphQLSchema, ours: GraphQLSchema) -> None:
    undeclared = [c for c in breaking_changes(baseline, ours) if c not in DECLARED_BREAKING_CHANGES]
    assert undeclared == [], (
        "schema.graphql breaks clients of tests/schema_baseline.graphql; keep the old names, "
        f"or declare each change in DECLARED_BREAKING_CHANGES with the reason: {undeclared}"
    )


def test_declared_breaks_still_happen(baseline: GraphQLSchema, ours: GraphQLSchema) -> None:
    stale = sorted(set(DECLARED_BREAKING_CHANGES) - set(breaking_changes(baseline, ours)))
    assert stale == [], f"declared breaking changes that no longer happen: {stale}"


def test_baseline_roots_are_ours(baseline: GraphQLSchema, ours: GraphQLSchema) -> None:
    for root in ("query_type", "mutation_type", "subscription_type"):
        want, have = getattr(baseline, root), getattr(ours, root)
        assert want is not None and have is not None, root
        assert want.name == have.name, root


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("  isDefault: Boolean!\n", ""), "Field MailAccount.isDefault was removed."),
        (
            ("  isDefault: Boolean!\n", "  isDefault: Boolean\n"),
            "Field MailAccount.isDefault changed type from Boolean! to Boolean.",
        ),
        (("  AUTH_FAILED\n", ""), "Enum value AccountStatus.AUTH_FAILED was removed."),
        (
            ("input AddMailAccountInput {\n", "input AddMailAccountInput {\n  tenant: ID!\n"),
            "A required field AddMailAccountInput.tenant was added.",
        ),
        (
            ("first: Int! = 50", "first: Int! = 20"),
            "Query.outgoingMessages(first:) has changed defaultValue from 50 to 20.",
        ),
    ],
)
def test_the_check_catches_breaks(
    baseline: GraphQLSchema, edit: tuple[str, str], expected: str
) -> None:
    """Each kind of break a client would notice is found in an edited copy of the baseline."""
    text = BASELINE_FILE.read_text()
    old, new = edit
    assert old in text, f"the baseline no longer has {old!r}: pick another example"
    changes = breaking_changes(baseline, build_schema(text.replace(old, new, 1)))
    assert expected in changes, changes
