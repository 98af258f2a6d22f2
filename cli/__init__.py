"""The `mailsync` command: the composition root that wires core, api and workers together."""
