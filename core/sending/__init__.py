"""Sending mail: validating and storing outgoing messages, and delivering them (SMTP + Sent)."""
