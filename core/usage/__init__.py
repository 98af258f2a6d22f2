"""The admins' view of who syncs which accounts."""
