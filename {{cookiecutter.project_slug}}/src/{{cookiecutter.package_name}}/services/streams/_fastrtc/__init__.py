"""Every fastrtc workaround of the layer: the one place that touches fastrtc's internals.

fastrtc keeps each connection on one of two owners: the ``Stream`` (API and websocket doors)
or its Gradio component (the UI). ``FastrtcStream.install`` replaces, once, the owners'
methods through which connections come, take input, emit and go. Each workaround is marked
with ``@workaround``: the fastrtc behaviour it corrects, the version it was checked with and
the tests that prove it; ``WORKAROUNDS`` lists them (so does the README's table).
"""

from .marks import TESTED_WITH, WORKAROUNDS, Workaround
from .owners import FastrtcStream

__all__ = ["TESTED_WITH", "WORKAROUNDS", "FastrtcStream", "Workaround"]
