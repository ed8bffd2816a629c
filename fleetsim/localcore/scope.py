"""Where a request lands: the account and the region named in its SigV4 credential scope.
Resources are regional, as on AWS, so every service operation takes one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    account_id: str
    region: str

    def arn(self, kind: str, name: str) -> str:
        """`arn:aws:iot:REGION:ACCOUNT:KIND/NAME`, e.g. kind thing, cert, thinggroup."""
        return f"arn:aws:iot:{self.region}:{self.account_id}:{kind}/{name}"
