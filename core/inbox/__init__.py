"""The unified inbox: reading synced mail across accounts, and marking it."""
