"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from .deps import StreamsDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "full"]
    connections: int
    concurrency_limit: int


@router.get("/health", response_model=Health)
async def health() -> Health:
    """The process is up."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness}},
)
async def ready(streams: StreamsDep, response: Response) -> Readiness:
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
