"""The sync claim: one run of an account at a time, across all workers.

A run claims the account's row (``sync_claim``, ``sync_claimed_until``) in the statement
that starts it, renews the claim while it talks to the mail server, and clears it in the
statement that ends it, so a running sync holds at most one pooled connection, for one step
at a time, and none while it waits on the network (core/claims.py has the mechanism).
"""

from __future__ import annotations

from core.claims import RowClaim
from core.models import MailAccount

SYNC_CLAIM = RowClaim(
    "sync", MailAccount.id, MailAccount.sync_claim, MailAccount.sync_claimed_until
)

unclaimed = SYNC_CLAIM.unclaimed
claim_values = SYNC_CLAIM.values
release = SYNC_CLAIM.release_loaded  # in the run's closing write
release_claim = SYNC_CLAIM.release  # a run that ends without it (paused meanwhile, cancelled)
renewing = SYNC_CLAIM.renewing
claimed_among = SYNC_CLAIM.claimed_among
