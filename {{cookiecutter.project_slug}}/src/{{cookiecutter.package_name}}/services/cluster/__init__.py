"""Cluster mode: several replicas of the app acting as one, on Redis.

Each replica holds the peer connections it accepted (aiortc keeps them in its process). With
``APP_REDIS_URL`` set, ``Replicas`` publishes them to Redis and serves the others' requests,
and the stream layer's ``Directory`` answers every route from any replica through it:

- ids (``claims``): an offer's id is claimed for the replica that admits it, atomically, so
  two replicas never take the same id; kept while the connection lives, released when it closes;
- the listing (``serving``, ``view``): each replica writes its connections to a hash at once
  when one opens or closes, and every ``ttl / 3`` seconds; it (and every claim) expires after
  ``ttl`` seconds, so a replica that dies (SIGKILL) drops out within ``ttl``;
- input, responses, close and trickled ICE candidates (``requests``, ``serving``): a request
  on the holder's channel, answered on a list the requester waits on;
- outputs: the holder appends each to a Redis stream per connection, which any replica's event
  stream reads, and ends it when the connection closes.

Nothing read from Redis is trusted (``wire``): what does not validate is logged and skipped.
The loops that publish and serve requests restart after any failure.

When Redis cannot be reached, what needs the cluster view raises ``ClusterUnavailableError``
(503) while each replica goes on serving its own connections, and taking new ones; it catches
up when Redis is back. A Redis that comes back empty (restarted) is filled again by each
replica's next publication: until all have had time to publish, the view is incomplete, and
what it cannot find is unavailable (503), not unknown (404).
"""

from .errors import ClusterUnavailableError
from .replicas import Replicas

__all__ = ["ClusterUnavailableError", "Replicas"]
