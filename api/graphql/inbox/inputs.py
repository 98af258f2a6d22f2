from __future__ import annotations

from typing import TypeVar

import strawberry

from api.graphql.enums import FolderRole
from core.ids import parse_uuid
from core.inbox.service import InboxQuery

T = TypeVar("T")


@strawberry.input
class InboxFilter:
    account_ids: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET,
        description="null: every account the viewer may read (own + teammates' SHARED). "
        "An id the viewer may not read matches nothing.",
    )
    folder_role: FolderRole | None = strawberry.field(
        default=strawberry.UNSET, description="null: INBOX"
    )
    unread: bool | None = strawberry.UNSET
    search: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Full-text over subject, addresses and body: words match as prefixes, "
        '"quoted phrases" in order; every term must match.',
    )
    thread_id: strawberry.ID | None = strawberry.UNSET

    def to_domain(self) -> InboxQuery:
        account_ids, thread_id = given(self.account_ids), given(self.thread_id)
        return InboxQuery(
            account_ids=None if account_ids is None else [parse_uuid(i) for i in account_ids],
            folder_role=given(self.folder_role) or FolderRole.INBOX,
            unread=given(self.unread),
            search=given(self.search),
            thread_id=None if thread_id is None else parse_uuid(thread_id),
        )


def given(value: T | None) -> T | None:
    """None for an omitted input (UNSET) as for an explicit null."""
    return None if value is strawberry.UNSET else value
