"""Folder roles: SPECIAL-USE attributes (RFC 6154) first, then well-known names."""

from __future__ import annotations

from core.models.enums import FolderRole

_SPECIAL_USE = {
    "\\sent": FolderRole.SENT,
    "\\drafts": FolderRole.DRAFTS,
    "\\trash": FolderRole.TRASH,
    "\\junk": FolderRole.JUNK,
    "\\archive": FolderRole.ARCHIVE,
    "\\all": FolderRole.ALL,
}

_WELL_KNOWN_NAMES = {
    FolderRole.SENT: {"sent", "sent items", "sent messages", "sent mail", "gesendet"},
    FolderRole.DRAFTS: {"drafts", "draft", "entwürfe"},
    FolderRole.TRASH: {"trash", "deleted items", "deleted messages", "bin", "papierkorb"},
    FolderRole.JUNK: {"junk", "spam", "junk e-mail", "junk email", "bulk mail"},
    FolderRole.ARCHIVE: {"archive", "archives"},
    FolderRole.ALL: {"all mail"},
}


def folder_role(name: str, delimiter: str | None, attributes: tuple[str, ...]) -> FolderRole:
    if name.upper() == "INBOX":
        return FolderRole.INBOX
    for attribute in attributes:
        role = _SPECIAL_USE.get(attribute.lower())
        if role is not None:
            return role
    leaf = name.rsplit(delimiter, 1)[-1] if delimiter else name
    leaf = leaf.strip().lower()
    for role, names in _WELL_KNOWN_NAMES.items():
        if leaf in names:
            return role
    return FolderRole.OTHER


def sync_by_default(role: FolderRole) -> bool:
    """Folders that ``startSync`` selects when the user names none: INBOX and Sent."""
    return role in (FolderRole.INBOX, FolderRole.SENT)
