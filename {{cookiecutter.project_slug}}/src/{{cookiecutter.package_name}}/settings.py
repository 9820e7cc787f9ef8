"""Settings, read from the environment (prefix ``APP_``) and from an optional ``.env`` file."""

from __future__ import annotations
{% if cookiecutter.include_cluster %}
import os
import socket
{%- endif %}
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr{% if cookiecutter.include_ui %}, field_validator{% endif %}, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IceServer(BaseModel):
    """One STUN or TURN server, as a browser's `RTCPeerConnection` takes it."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


TurnUrl = Annotated[str, Field(pattern=r"^turns?:")]
"""A TURN server's URL, ``turn:host:port`` or ``turns:host:port``."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    title: str = {{ cookiecutter.project_name | tojson }}
    """Shown in the UI and the API docs."""
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in the container."""
    port: int = Field(default=7860, ge=0, le=65535)
    """Port to listen on; 0 picks a free one (the log says which)."""
{%- if cookiecutter.include_ui %}
    ui_path: str = "/ui"
    """Where the Gradio UI is mounted; ``/`` redirects there."""
{%- endif %}
    concurrency_limit: int = Field(default=10, ge=1)
    """Most connections at once, UI and API together."""
    time_limit: float | None = Field(default=None, gt=0)
    """Seconds after which a connection is closed; unset for no limit."""
    peer_timeout: float = Field(default=10.0, gt=0)
    """Seconds after which a peer that stopped answering (a browser that vanished, a dropped
    network) is closed and its slot freed. A page that is closed frees it at once."""
    ice_servers: list[IceServer] = Field(default_factory=list)
    """STUN/TURN servers for browser and server alike, as JSON, e.g.
    ``[{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"}]``.
    Empty: host candidates only, enough on one machine or a LAN."""
    turn_urls: list[TurnUrl] = Field(default_factory=list)
    """TURN servers sharing ``turn_secret``, as JSON, e.g. ``["turn:turn.example.com:3478"]``:
    each peer (browser, API client, the server's own) gets a credential of its own for them."""
    turn_secret: SecretStr | None = None
    """The TURN servers' shared secret (coturn's ``static-auth-secret``); never sent anywhere."""
    turn_ttl: int = Field(default=600, ge=60, le=86_400)
    """Seconds a minted TURN credential stays valid: enough to connect, not to be reused."""
    ice_transport_policy: Literal["all", "relay"] = "all"
    """``relay``: every peer, the server's too, sends its media through a TURN relay only."""
{%- if cookiecutter.modality != "video" and cookiecutter.mode != "receive" %}
    audio_buffer_ms: int = Field(default=60, ge=0, le=300, multiple_of=20)
    """How long the server waits for a late audio packet: the newer audio it holds behind a
    missing one before giving it up as lost. Audio that comes in order is heard at once,
    whatever this is. Longer rides out more network jitter; see the README's Latency."""
{%- endif %}
    offer_delay_ms: int = Field(default=0, ge=0, le=1000)
    """A pause before an offer's answer is returned (fastrtc pauses 100; nothing needs it)."""
    keep_alive: int = Field(default=75, ge=1)
    """Seconds an idle HTTP connection stays open: longer than pooling clients (httpx: 5) and
    proxies (nginx upstreams: 60) keep one, so the server never closes a connection that a
    client is about to reuse (the client would get a reset, not an answer)."""
    shutdown_timeout: float = Field(default=5.0, gt=0)
    """Seconds that closing every connection may take on shutdown (SIGTERM) before exiting."""
    admin_token: SecretStr | None = None
    """When set, listing and closing connections require ``Authorization: Bearer <token>``.
    Unset: those routes are open, which suits one machine or a trusted network only."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the API from a browser, as JSON, e.g.
    ``["https://app.example.com"]``. Empty (the default): no cross-origin access."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
{%- if cookiecutter.include_cluster %}
    redis_url: str | None = None
    """Run as one of several replicas sharing this Redis (``redis://host:6379/0``): each
    lists, feeds and closes the others' connections. Unset: one process, no Redis."""
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", pattern=r"^[\w.-]{1,64}$"
    )
    """This replica's name in the cluster (default: host name and process id)."""
    cluster_ttl: float = Field(default=10.0, gt=0)
    """Seconds after which the connections of a replica that died leave the listing."""
{%- endif %}
{%- if cookiecutter.include_ui %}

    @field_validator("ui_path")
    @classmethod
    def _ui_path_is_a_path(cls, value: str) -> str:
        path = "/" + value.strip("/")
        if path == "/":
            raise ValueError("ui_path must not be '/': the API lives there")
        return path
{%- endif %}

    @model_validator(mode="after")
    def _turn_is_complete(self) -> Settings:
        if bool(self.turn_urls) != (self.turn_secret is not None):
            raise ValueError("turn_urls and turn_secret go together: set both or neither")
        relays = self.turn_urls or [
            url
            for server in self.ice_servers
            for url in ([server.urls] if isinstance(server.urls, str) else server.urls)
            if url.startswith(("turn:", "turns:"))
        ]
        if self.ice_transport_policy == "relay" and not relays:
            raise ValueError("ice_transport_policy 'relay' needs a TURN server (turn_urls)")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
