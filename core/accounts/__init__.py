"""Mail accounts: connecting, verifying, plan limits, the default account."""
