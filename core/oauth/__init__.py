"""OAuth2 sign-in for Google, Microsoft and a generic provider; tokens for XOAUTH2."""
