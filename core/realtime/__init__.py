"""Real time: IMAP IDLE watchers on INBOX, their leases, and the syncs they ask for."""
