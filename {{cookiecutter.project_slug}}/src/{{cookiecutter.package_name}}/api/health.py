"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from .deps import StreamsDep
from .errors import responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the app takes new connections, and how many it holds."""

    status: Literal["ready", "full"]
    connections: int
    concurrency_limit: int


@router.get("/health", response_model=Health, responses=responses(validates=False))
async def get_health() -> Health:
    """The process is up."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness},
        **responses(validates=False),
    },
)
async def get_readiness(streams: StreamsDep, response: Response) -> Readiness:
    """The app takes new connections: 503 while it is at its concurrency limit."""
    count = len(streams)
    full = count >= streams.concurrency_limit
    if full:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(
        status="full" if full else "ready",
        connections=count,
        concurrency_limit=streams.concurrency_limit,
    )
