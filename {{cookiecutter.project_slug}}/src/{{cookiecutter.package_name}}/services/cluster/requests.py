"""What this replica asks of the others: operations on their connections, and their outputs.

A request is published on the holder's channel (``fastrtc:cmd:<replica>``) and answered on a
list used once (``fastrtc:reply:<token>``) that the requester waits on with BLPOP; outputs are
read from the Redis stream the holder appends them to (``fastrtc:outputs:<id>``).

Why by hand: the libraries that offer request/reply over Redis are job queues (arq, saq,
celery, taskiq: persisted jobs for any worker, not a call to the one process that holds a
peer) or frameworks with their own connection and consumer lifecycle (FastStream), and the
exchange is two redis-py commands whose every value is validated here anyway.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as redis
from pydantic import ValidationError

from ..streams.interface import Operation, OutputT
from .errors import ClusterUnavailableError, reaching_redis
from .wire import (
    OUTPUTS_KEPT,
    SHOWN,
    Claim,
    Command,
    Entries,
    OutputEntry,
    Reply,
    claim_key,
    commands_channel,
    new_reply_key,
    outputs_key,
)

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 1.5
"""Seconds a replica waits for another to answer a request (one blocking Redis command, so
below the client's socket timeout)."""
OUTPUTS_WAIT_MS = 1000
"""Milliseconds an event stream waits for outputs before it checks the connection lives."""


async def request(
    client: redis.Redis, owner: str, operation: Operation, connection_id: str, argument: Any
) -> Any:
    """Have ``owner`` run ``operation`` on its connection: its value, or its error raised here."""
    command = Command(op=operation, id=connection_id, reply=new_reply_key(), arg=argument)
    with reaching_redis():
        if not await client.publish(commands_channel(owner), command.model_dump_json()):
            # It holds the id but does not listen: dead (its claims expire within the ttl),
            # or taking requests again after Redis came back.
            raise ClusterUnavailableError.because(f"replica {owner} does not listen")
        answer = await client.blpop([command.reply], timeout=REQUEST_TIMEOUT)
    if answer is None:
        raise ClusterUnavailableError.because(f"replica {owner} did not answer")
    try:
        reply = Reply.model_validate_json(answer[1])
    except ValidationError as exc:
        logger.warning("cluster: replica %s answered %r", owner, answer[1][:SHOWN])
        raise ClusterUnavailableError.because(f"replica {owner}: bad answer") from exc
    return reply.result(connection_id)


async def outputs(
    client: redis.Redis, model: type[OutputT], connection_id: str, owner: str
) -> AsyncIterator[OutputT]:
    """Every output the owner's connection emits from now on, until it closes (or its claim
    is gone: the owner died)."""
    key, last = outputs_key(connection_id), "$"
    with reaching_redis():
        while True:
            read = cast(Entries, await client.xread({key: last}, block=OUTPUTS_WAIT_MS, count=16))
            if not read:
                holder = Claim.parse(await client.get(claim_key(connection_id)))
                if holder is None or holder.replica != owner:
                    return
                continue
            for entry_id, fields in read[0][1]:
                last = entry_id
                entry = OutputEntry.parse(key, fields)
                if entry is not None and entry.end is not None:
                    return
                output = None if entry is None else entry.output(key, model)
                if output is not None:
                    yield output


async def latest_output(
    client: redis.Redis, model: type[OutputT], connection_id: str
) -> OutputT | None:
    """The connection's last valid output (entries that are none are skipped)."""
    key = outputs_key(connection_id)
    with reaching_redis():
        entries = await client.xrevrange(key, count=OUTPUTS_KEPT)
    for _, fields in cast(list[tuple[str, dict[str, str]]], entries):
        entry = OutputEntry.parse(key, fields)
        output = None if entry is None else entry.output(key, model)
        if output is not None:
            return output
    return None
