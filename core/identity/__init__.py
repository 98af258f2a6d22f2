"""Companies, users and API tokens."""
