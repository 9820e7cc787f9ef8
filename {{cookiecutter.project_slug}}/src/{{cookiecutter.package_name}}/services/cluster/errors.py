"""What cluster mode raises: Redis cannot be reached, or the view it holds is being rebuilt.

``ClusterUnavailableError`` joins the app's error registry (``register``), so the API
answers it as 503 ``cluster_unavailable``, and a replica's answer naming that code is raised
as it on the replica that asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from ..streams.errors import Spec, StreamError, register


class ClusterUnavailableError(StreamError):
    """Redis cannot be reached, so what other replicas hold cannot be either."""

    @classmethod
    def because(cls, cause: object) -> ClusterUnavailableError:
        """The error, saying why (an exception, or a sentence)."""
        return cls(detail=f"the cluster is unavailable: {cause}")


register({ClusterUnavailableError: Spec("cluster_unavailable", 503, "the cluster is unavailable")})


class IncompleteViewError(Exception):
    """Redis lost the cluster's state, and not every replica has published it again yet."""

    def __init__(self) -> None:
        super().__init__("the cluster view is being rebuilt after Redis lost it")


@contextmanager
def reaching_redis() -> Iterator[None]:
    """Turn Redis failing (unreachable, or its view incomplete) into ``ClusterUnavailableError``."""
    try:
        yield
    except (RedisError, OSError, IncompleteViewError) as exc:
        raise ClusterUnavailableError.because(exc) from exc
