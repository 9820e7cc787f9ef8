"""What replicas write to Redis, and how each value is read back.

The keys (all under ``fastrtc:``), and a model for every value a replica reads: requests on
its channel, answers to its requests, listing entries, claims and outputs. Anyone with access
to Redis can write there, so nothing is trusted: a value that does not validate is logged and
skipped by the reader.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..streams.errors import ERRORS, AppError
from ..streams.interface import CONNECTION_ID_PATTERN, ConnectionInfo, Operation, OutputT

logger = logging.getLogger(__name__)

PREFIX = "fastrtc"
REPLICAS = f"{PREFIX}:replicas"
"""The set of replicas that joined (some may have died since)."""
VIEW = f"{PREFIX}:view"
"""Set by the first replica to publish: missing, Redis has lost the cluster's state."""
SETTLING = f"{PREFIX}:view:settling"
"""Set, for as long as every replica needs to publish again, when Redis lost the state."""
OUTPUTS_KEPT = 64
"""Outputs each connection's Redis stream keeps (older ones are trimmed)."""
REPLICA_NAME = re.compile(r"^[\w.-]{1,64}$")
"""What a replica's name may be (``Settings.replica_id``)."""
SHOWN = 120
"""Characters of a rejected Redis value that the log shows."""
TAKES_ARGUMENT = frozenset({Operation.INPUT, Operation.CANDIDATE})
"""The operations whose request carries an argument (a JSON object)."""


def conns_key(replica: str) -> str:
    """The hash of ``replica``'s connections: id -> ``ListedConnection`` (JSON)."""
    return f"{PREFIX}:conns:{replica}"


def outputs_key(connection_id: str) -> str:
    """The Redis stream of a connection's outputs (``OutputEntry``)."""
    return f"{PREFIX}:outputs:{connection_id}"


def commands_channel(replica: str) -> str:
    """The pub/sub channel on which ``replica`` takes requests (``Command``)."""
    return f"{PREFIX}:cmd:{replica}"


def claim_key(connection_id: str) -> str:
    """Who holds the id (``Claim``)."""
    return f"{PREFIX}:id:{connection_id}"


def new_reply_key() -> str:
    """A list, used once, on which a requester waits for its ``Reply``."""
    return f"{PREFIX}:reply:{secrets.token_hex(12)}"


ConnectionId = Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]
ReplyKey = Annotated[str, Field(pattern=f"^{PREFIX}:reply:" + "[0-9a-f]{24}$")]
Entries = list[tuple[str, list[tuple[str, dict[str, str]]]]]
"""What XREAD answers: per stream, its new entries (id, fields)."""


class Command(BaseModel):
    """A request on a replica's channel: run ``op`` on connection ``id``, answer on ``reply``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Operation
    id: ConnectionId
    reply: ReplyKey
    """The list the requester waits on (never another key: a request cannot write there)."""
    arg: dict[str, Any] | None = None
    """The input's fields, or the candidate's body; nothing for the other operations."""

    @model_validator(mode="after")
    def _argument_fits(self) -> Command:
        if (self.op in TAKES_ARGUMENT) != (self.arg is not None):
            raise ValueError(f"a request to {self.op} has the wrong argument")
        return self


class Reply(BaseModel):
    """A replica's answer to a ``Command``: its value, or the code of the error it raised."""

    model_config = ConfigDict(extra="forbid")

    value: Any = None
    error: str | None = None
    """A code of the app's error registry (``ERRORS``)."""
    detail: str = ""

    @field_validator("error")
    @classmethod
    def _registered(cls, code: str | None) -> str | None:
        if code is not None and code not in ERRORS:
            raise ValueError("not an error code of this app")
        return code

    @classmethod
    def failure(cls, exc: AppError) -> Reply:
        return cls(error=exc.code, detail=exc.detail)

    def result(self, connection_id: str) -> Any:
        """The value; or the error, raised here as the replica that answered raised it."""
        if self.error is not None:
            raise ERRORS[self.error](connection_id, self.detail)
        return self.value


class ListedConnection(ConnectionInfo):
    """An entry of a replica's listing (``conns_key``)."""

    id: ConnectionId


class OutputEntry(BaseModel):
    """An entry of a connection's outputs stream: one output (JSON), or its end."""

    data: str | None = None
    end: Literal["1"] | None = None

    @model_validator(mode="after")
    def _one_of_both(self) -> OutputEntry:
        if (self.data is None) == (self.end is None):
            raise ValueError("an entry is an output or the end")
        return self

    @classmethod
    def parse(cls, key: str, fields: dict[str, str]) -> OutputEntry | None:
        """The entry of stream ``key`` with ``fields``; None if it is none (logged)."""
        try:
            return cls.model_validate(fields)
        except ValidationError:
            logger.warning("cluster: skipped an entry of %s that is none: %r", key, fields)
            return None

    def output(self, key: str, model: type[OutputT]) -> OutputT | None:
        """The output it carries; None for the end, or for data that is no output (logged)."""
        if self.data is None:
            return None
        try:
            return model.model_validate_json(self.data)
        except ValidationError:
            logger.warning("cluster: skipped an output of %s that is none: %r", key, self.data)
            return None


class Claim(BaseModel):
    """Who holds an id (``claim_key``): a replica, and the claim's own token."""

    model_config = ConfigDict(frozen=True)

    replica: Annotated[str, Field(pattern=REPLICA_NAME.pattern)]
    token: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]

    @classmethod
    def new(cls, replica: str) -> Claim:
        return cls(replica=replica, token=secrets.token_hex(8))

    @property
    def value(self) -> str:
        """As stored: the replica's name, a space, the token."""
        return f"{self.replica} {self.token}"

    @classmethod
    def parse(cls, value: str | bytes | None) -> Claim | None:
        """The claim stored as ``value``; None if there is none, or it is not one (logged)."""
        if not isinstance(value, str):  # none (or bytes: never, as responses are decoded)
            return None
        replica, _, token = value.partition(" ")
        try:
            return cls(replica=replica, token=token)
        except ValidationError:
            logger.warning("cluster: skipped a claim that is none: %r", value[:SHOWN])
            return None
