"""The stream layer: every connection of a fastrtc ``Stream`` as one typed set.

fastrtc keeps the connections made through the UI apart from those made through its API and
websocket doors; ``StreamService`` makes them one listing, one limit, one id space and one
clean-up, and ``Directory`` extends that to every replica in cluster mode. ``_fastrtc`` holds
every fastrtc workaround (the README's table lists them).
"""

from ._websocket import WEBSOCKET_PATH
from .directory import Directory, run_here
from .errors import (
    ERRORS,
    AppError,
    ConnectionExistsError,
    ConnectionNotReadyError,
    LimitReachedError,
    OfferRefusedError,
    ResponseNotSupportedError,
    StreamError,
    UnknownConnectionError,
)
from .interface import (
    CONNECTION_ID_PATTERN,
    Claims,
    ConnectionInfo,
    ConnectionState,
    Listener,
    Operation,
    OtherReplicas,
    Source,
)
from .service import MAX_MEDIA_SECTIONS, MAX_SDP_BYTES, StreamService

__all__ = [
    "CONNECTION_ID_PATTERN",
    "ERRORS",
    "MAX_MEDIA_SECTIONS",
    "MAX_SDP_BYTES",
    "WEBSOCKET_PATH",
    "AppError",
    "Claims",
    "ConnectionExistsError",
    "ConnectionInfo",
    "ConnectionNotReadyError",
    "ConnectionState",
    "Directory",
    "LimitReachedError",
    "Listener",
    "OfferRefusedError",
    "Operation",
    "OtherReplicas",
    "ResponseNotSupportedError",
    "Source",
    "StreamError",
    "StreamService",
    "UnknownConnectionError",
    "run_here",
]
