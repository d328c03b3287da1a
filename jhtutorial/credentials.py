"""What a bearer token says about itself, so a refused login can say why it was refused.

A ServiceAccount token (what ``kubectl create token`` and ``jhtutorial classroom up`` hand out) is a JWT:
its middle part is readable JSON naming the ServiceAccount, its namespace, the object it is bound to and when
it expires. The API server only answers ``401 Unauthorized``, without a reason; reading the claims lets the
message tell an expired token from one whose ServiceAccount or bound Secret was deleted.

    >>> claims = token_claims(token)                     # doctest: +SKIP
    >>> claims.namespace, claims.service_account, claims.bound_to   # doctest: +SKIP
    ('room-1', 'learner', 'Secret/learner-credentials')
    >>> problem, fix = unauthorized_reason(token)        # doctest: +SKIP
    >>> problem                                          # doctest: +SKIP
    'your credentials expired at 2026-12-02 09:14 UTC (ServiceAccount room-1/learner)'

Nothing here checks a signature: only the API server can say whether a token is valid. These claims only
explain its answer.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

SERVICE_ACCOUNT_CLAIMS = "kubernetes.io"


@dataclass(frozen=True)
class TokenClaims:
    """The parts of a ServiceAccount token a learner can act on."""

    expires: float | None  # seconds since the epoch
    namespace: str | None
    service_account: str | None
    bound_to: str | None  # "Secret/NAME" or "Pod/NAME" when the token dies with that object

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.expires <= time.time()

    @property
    def expires_text(self) -> str:
        if self.expires is None:
            return "never"
        return datetime.fromtimestamp(self.expires, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def token_claims(token: str) -> TokenClaims | None:
    """The claims of a JWT, unverified; None when the token is not a JWT (a static token, a password)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload: Any = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    kubernetes = payload.get(SERVICE_ACCOUNT_CLAIMS) or {}
    if not isinstance(kubernetes, dict):
        kubernetes = {}
    bound = next((f"{kind.capitalize()}/{(kubernetes.get(kind) or {}).get('name')}"
                  for kind in ("secret", "pod") if isinstance(kubernetes.get(kind), dict)), None)
    expires = payload.get("exp")
    return TokenClaims(
        expires=float(expires) if isinstance(expires, (int, float)) else None,
        namespace=kubernetes.get("namespace"),
        service_account=(kubernetes.get("serviceaccount") or {}).get("name")
        if isinstance(kubernetes.get("serviceaccount"), dict) else None,
        bound_to=bound,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` value."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization.split(" ", 1)[1].strip()
    return None


def unauthorized_reason(token: str | None) -> tuple[str, str] | None:
    """(problem, fix) for a 401 answered to this token, when its claims explain it; else None."""
    claims = token_claims(token) if token else None
    if claims is None or claims.service_account is None:
        return None
    who = f"ServiceAccount {claims.namespace}/{claims.service_account}"
    ask = ("ask your instructor for a new kubeconfig file (the instructor renews credentials with "
           "`jhtutorial classroom up`)")
    if claims.expired:
        return f"your credentials expired at {claims.expires_text} ({who})", ask
    bound = f" or the {claims.bound_to} they are bound to" if claims.bound_to else ""
    return (f"your credentials were withdrawn: they would be valid until {claims.expires_text}, but {who}"
            f"{bound} no longer exists (deleted, or the namespace was removed)"), ask
