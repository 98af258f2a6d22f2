"""Clients for the users' mail servers (IMAP, SMTP) and the checks around them."""
