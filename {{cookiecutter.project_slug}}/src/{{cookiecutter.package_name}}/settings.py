"""Settings, read from the environment (prefix ``APP_``) and from an optional ``.env`` file.

``make loadtest`` and ``make docker-run`` read the port the app would take with
``python -m {{ cookiecutter.package_name }}.settings port`` (any setting's name works).

``load`` reads a settings class and turns a bad value into one line per variable (its name,
the value given, what is expected: secrets hidden), printed on exit with status 1.
"""

from __future__ import annotations

import argparse
import json
{%- if cookiecutter.include_cluster %}
import os
import socket
{%- endif %}
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
{%- if cookiecutter.include_ui %}
    field_validator,
{%- endif %}
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from .observability import LogFormat

T = TypeVar("T")
AnySettings = TypeVar("AnySettings", bound=BaseSettings)

HIDDEN = "(hidden)"
"""Shown instead of a secret's value (or of a JSON object's, which may hold a credential)."""
PYDANTIC_PREFIXES = ("Input ", "Value error, ", "Value ", "String ")
"""How pydantic's messages start, dropped: ``should be ...`` reads well after the value."""


def _from_json(value: object) -> object:
    """A variable's JSON text decoded (values given in Python pass as they are)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"should be JSON ({exc.msg} at character {exc.pos})") from None


JsonList = Annotated[list[T], NoDecode, BeforeValidator(_from_json)]
"""A list given as JSON in its variable, decoded by the field itself, so that a bad one is
reported like any other bad value (the settings source would raise with no value to show)."""


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
    ice_servers: JsonList[IceServer] = Field(default_factory=list)
    """STUN/TURN servers for browser and server alike, as JSON, e.g.
    ``[{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "p"}]``.
    Empty: host candidates only, enough on one machine or a LAN."""
    turn_urls: JsonList[TurnUrl] = Field(default_factory=list)
    """TURN servers sharing ``turn_secret``, as JSON, e.g. ``["turn:turn.example.com:3478"]``:
    each peer (browser, API client, the server's own) gets a credential of its own for them."""
    turn_secret: SecretStr | None = None
    """The TURN servers' shared secret (coturn's ``static-auth-secret``); never sent anywhere."""
    turn_ttl: int = Field(default=600, ge=60, le=86_400)
    """Seconds a minted TURN credential stays valid: enough to connect, not to be reused."""
    ice_transport_policy: Literal["all", "relay"] = "all"
    """``relay``: every peer, the server's too, sends its media through a TURN relay only."""
{%- if cookiecutter.__modality != "video" and cookiecutter.__mode != "receive" %}
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
    cors_origins: JsonList[str] = Field(default_factory=list)
    """Origins allowed to call the API from a browser, as JSON, e.g.
    ``["https://app.example.com"]``. Empty (the default): no cross-origin access."""
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: LogFormat = "text"
    """``text``: one line per record, its fields as ``key=value``; ``json``: one JSON object
    per line, its fields as keys. The app's records and uvicorn's alike."""
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
            raise ValueError("APP_TURN_URLS and APP_TURN_SECRET go together: set both or neither")
        relays = self.turn_urls or [
            url
            for server in self.ice_servers
            for url in ([server.urls] if isinstance(server.urls, str) else server.urls)
            if url.startswith(("turn:", "turns:"))
        ]
        if self.ice_transport_policy == "relay" and not relays:
            raise ValueError("APP_ICE_TRANSPORT_POLICY=relay needs a TURN server (APP_TURN_URLS)")
        return self


@lru_cache
def get_settings() -> Settings:
    """The app's settings, read once (see ``load``)."""
    return load(Settings)


def load(settings: type[AnySettings]) -> AnySettings:
    """``settings`` read from the environment and ``.env``; exits (status 1) with one line per
    bad variable, and no traceback, if any is."""
    try:
        return settings()
    except ValidationError as exc:
        raise SystemExit("\n".join(problems(settings, exc.errors()))) from None
    except SettingsError as exc:  # a source that could not decode a value (its own words)
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise SystemExit(f"error: {str(exc).removeprefix('error ')}{cause}") from None


def problems(settings: type[BaseSettings], errors: list[ErrorDetails]) -> list[str]:
    """One ``error: VARIABLE=value: what is expected`` line per variable in ``errors``."""
    prefix = settings.model_config.get("env_prefix", "")
    found: dict[str, list[str]] = {}
    for error in errors:
        message = error["msg"]
        for start in PYDANTIC_PREFIXES:
            message = message.removeprefix(start)
        if not error["loc"]:  # the whole model's check: its message names the variables
            found.setdefault("", []).append(message)
            continue
        field, *path = error["loc"]
        variable = (prefix + str(field)).upper()
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
        if error["type"] == "missing":
            shown, message = "", "required"
        elif _is_secret(settings, str(field)) or (path and isinstance(error["input"], Mapping)):
            shown = "=" + HIDDEN
        else:
            shown = f"={error['input']!r}"
        found.setdefault(variable, []).append(f"{variable}{where}{shown}: {message}")
    return ["error: " + "; ".join(details) for details in found.values()]


def _is_secret(settings: type[BaseSettings], field: str) -> bool:
    """Whether the field holds a secret (``SecretStr``, optional or not)."""
    info = settings.model_fields.get(field)
    annotation = info.annotation if info else None
    return annotation is SecretStr or SecretStr in get_args(annotation)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.settings",
        description="Print a setting as the app reads it (from the environment and .env).",
    )
    parser.add_argument("name", choices=sorted(Settings.model_fields))
    name = parser.parse_args().name
    print(getattr(get_settings(), name))


if __name__ == "__main__":
    main()
