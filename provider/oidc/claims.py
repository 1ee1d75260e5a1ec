"""Which user claims each scope releases (OIDC Core 5.4)."""
from __future__ import annotations

from typing import Any

from provider.directory import User


def user_claims(user: User, scope: str, groups_claim: str | None = None) -> dict[str, Any]:
    scopes = set((scope or "").split())
    claims: dict[str, Any] = {"sub": user.id}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        if user.name:
            claims["name"] = user.name
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if "phone" in scopes and user.phone:
        claims["phone_number"] = user.phone
        claims["phone_number_verified"] = False
    if groups_claim:  # the operator chose to release groups, as Keycloak's group mapper does
        claims[groups_claim] = list(user.groups)
    return claims
