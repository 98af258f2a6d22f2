"""The incremental IMAP sync: per-folder checkpoints, parsing, and what each run changed."""
