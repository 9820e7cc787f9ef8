"""Each peer's ICE configuration: the fixed servers of ``APP_ICE_SERVERS`` and, with
``APP_TURN_SECRET``, a TURN credential minted for that peer alone.

Credentials follow the "TURN REST API" scheme of coturn's ``use-auth-secret``: the username is
``<expiry>:<tag>``, the password the HMAC-SHA1 of the username under the shared secret. The TURN
server checks both without asking the app; the secret itself never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Literal

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy
from pydantic import BaseModel

from .settings import IceServer, Settings

TAG_BYTES = 4
"""Random bytes in each credential's tag, so no two peers share a username."""


class IceConfiguration(BaseModel):
    """An `RTCConfiguration` as a browser's `RTCPeerConnection` takes it."""

    iceServers: list[IceServer]
    iceTransportPolicy: Literal["all", "relay"] = "all"

    def to_aiortc(self) -> RTCConfiguration:
        """The same configuration for an aiortc peer."""
        return RTCConfiguration(
            iceServers=[RTCIceServer(**server.model_dump()) for server in self.iceServers],
            iceTransportPolicy=RTCIceTransportPolicy(self.iceTransportPolicy),
        )


def turn_password(secret: str, username: str) -> str:
    """The password a ``use-auth-secret`` TURN server expects for ``username``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class IceConfigurations:
    """Mints each peer's ``IceConfiguration`` from the settings."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._fixed = settings.ice_servers
        self._turn_urls = settings.turn_urls
        self._secret = settings.turn_secret
        self._ttl = settings.turn_ttl
        self._policy = settings.ice_transport_policy
        self._clock = clock

    def for_peer(self, door: str) -> IceConfiguration:
        """A configuration for one peer connecting through ``door`` (``ui``, ``api``, ...)."""
        servers = list(self._fixed)
        if self._secret is not None:
            expiry = int(self._clock()) + self._ttl
            username = f"{expiry}:{door}.{secrets.token_urlsafe(TAG_BYTES)}"
            password = turn_password(self._secret.get_secret_value(), username)
            servers.append(IceServer(urls=self._turn_urls, username=username, credential=password))
        return IceConfiguration(iceServers=servers, iceTransportPolicy=self._policy)

    def for_server(self) -> RTCConfiguration:
        """A configuration for the server's own peer of one new connection."""
        return self.for_peer("server").to_aiortc()
