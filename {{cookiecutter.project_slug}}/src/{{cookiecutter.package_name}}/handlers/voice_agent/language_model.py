"""The offline language model: no model at all, it repeats what it understood.

It lets the agent run on a fresh machine with no server (``APP_LLM=parrot``, the default) and
keeps the tests offline; set ``APP_LLM=openai`` for a real model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from .providers import Message


class Parrot:
    """Answers "You said: <what it understood>.", word by word, as a model streams."""

    async def reply(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        said = messages[-1].content.strip().rstrip(".!?")
        for word in f"You said: {said}.".split(" "):
            yield word + " "
