"""A Secret looked at without showing its values: the shape of a value, and what ``kubectl describe`` prints.

    >>> shape = ValueShape.of("ab12" * 16, placeholder="REPLACE_ME")
    >>> print(shape)
    64 characters, hexadecimal: True, the placeholder: False
"""

from __future__ import annotations

import base64
import hashlib
import string
from dataclasses import dataclass

from .. import manifests
from ..connect import Connection
from ..errors import TutorialError
from ..kubeapi import SECRETS
from .reads import kube


@dataclass(frozen=True)
class ValueShape:
    """What can be said about a secret value without showing it; ``digest`` (SHA-256) compares two values."""

    length: int
    hexadecimal: bool
    placeholder: bool
    digest: str

    @classmethod
    def of(cls, value: str, *, placeholder: str) -> ValueShape:
        return cls(len(value), bool(value) and all(ch in string.hexdigits.lower() for ch in value),
                   value == placeholder, hashlib.sha256(value.encode()).hexdigest())

    def __str__(self) -> str:
        return (f"{self.length} characters, hexadecimal: {self.hexadecimal}, "
                f"the placeholder: {self.placeholder}")


def secret_value_shape(conn: Connection, name: str, key: str) -> ValueShape:
    """Read one value of a Secret, measure it and drop it: the value itself is never returned or printed."""
    data = kube(conn).get(SECRETS.path(conn.namespace, name)).get("data") or {}
    if key not in data:
        raise TutorialError(f"Secret {name} has no key {key!r} (its keys: {', '.join(sorted(data)) or 'none'})",
                            fix=f"create it again with that key: kubectl delete secret {name}, then the "
                            f"kubectl create secret command of this notebook")
    return ValueShape.of(base64.b64decode(data[key]).decode("utf-8", "replace"),
                         placeholder=manifests.PROXY_TOKEN_PLACEHOLDER)


def describe_secret(conn: Connection, name: str) -> str:
    """What ``kubectl describe secret NAME`` prints about the values: each key with its size, never the value."""
    secret = kube(conn).get(SECRETS.path(conn.namespace, name))
    sizes = [f"{key}:  {len(base64.b64decode(value))} bytes" for key, value in sorted((secret.get("data") or {}).items())]
    return "\n".join([f"Name:  {name}", f"Type:  {secret.get('type', 'Opaque')}", "", "Data", "====", *sizes])
