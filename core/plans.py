"""What each plan allows."""

from __future__ import annotations

from core.models.enums import Plan

ACCOUNT_LIMITS: dict[Plan, int] = {
    Plan.ESSENTIAL: 0,
    Plan.ADVANCED: 1,
    Plan.PROFESSIONAL: 2,
    Plan.POWER: 3,
    Plan.ENTERPRISE: 5,
}


def account_limit(plan: Plan) -> int:
    """Mail accounts each user of a company on ``plan`` may connect."""
    return ACCOUNT_LIMITS[plan]
