"""The kinds of private key devices have (a name of its own, without `cryptography`)."""

from typing import Literal

KeyType = Literal["ec-p256", "rsa-2048"]
