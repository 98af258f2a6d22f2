"""arq workers (the sync engine arrives with the sync issue)."""
