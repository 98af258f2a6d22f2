"""Retry delays after failed syncs: doubling, spread out, and never past an hour."""

from __future__ import annotations

import random
from datetime import timedelta

from core.sync.run import MAX_BACKOFF, backoff

BASE = timedelta(seconds=60)


def test_backoff_doubles_with_jitter_and_never_passes_an_hour() -> None:
    random.seed(11)
    first = [backoff(1, BASE) for _ in range(500)]
    assert min(first) >= BASE * 0.5 and max(first) <= BASE * 1.5
    third = [backoff(3, BASE) for _ in range(500)]
    assert min(third) >= BASE * 2 and max(third) <= BASE * 6
    late = [backoff(failures, BASE) for failures in range(7, 200) for _ in range(20)]
    assert max(late) <= MAX_BACKOFF  # the jitter does not push it past the cap
    assert min(late) >= MAX_BACKOFF / 3  # and capped retries still spread out
    assert len({round(d.total_seconds()) for d in late}) > 100
