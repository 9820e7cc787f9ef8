"""PocketSphinx's decoder, in the voice agent's speech-to-text worker process.

PocketSphinx holds the GIL while it decodes (seconds of CPU), which would stall the server's
event loop and every connection's media; so it runs in a process of its own. This module sits
at the top of the package and imports nothing of the app, so that the worker starts in a
fraction of a second.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

from pocketsphinx import Decoder  # type: ignore[import-untyped]

SAMPLE_RATE = 16_000
"""The rate of the audio the decoder takes (its English model's)."""
SEARCH = {
    "beam": 1e-40,
    "pbeam": 1e-40,
    "wbeam": 1e-24,
    "maxhmmpf": 3000,
    "fwdflat": False,
}
"""Narrower beams than PocketSphinx's (1e-48, 1e-48, 7e-29, 30000) and no second pass: about a
third of the CPU time (some 0.3 s a second of speech, not 0.6 to 0.9), and the offline
synthesizer's sentence, through Opus, is still understood."""
DITHER = True
"""Half a bit of noise on the audio: digital silence (a synthesizer's pauses) otherwise throws
the decoder off; with it, it gets a quarter more of the synthesizer's words right."""
SEED = 1
"""The seed of that noise, sown again for each utterance (``decode``): the noise does not run on
from one utterance to the next, so the same audio is always heard the same way, whichever
connection's turns came before."""
CMN = "batch"
"""Cepstral mean normalization over each utterance alone (PocketSphinx's default, ``live``,
carries it over from the utterances before)."""

_decoder: Decoder | None = None


def load() -> None:
    """Load the decoder with its English model, once per worker process, which ends with the
    app's process however that ends (killed too)."""
    global _decoder
    _decoder = Decoder(
        samprate=SAMPLE_RATE, dither=DITHER, seed=SEED, cmn=CMN, loglevel="FATAL", **SEARCH
    )
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(0)


def decode(audio: bytes) -> str:
    """The words in ``audio`` (16 kHz mono 16-bit PCM); "" for none."""
    if _decoder is None:
        load()
    assert _decoder is not None
    _decoder.reinit_feat()  # the front end afresh: the dither's noise from SEED again
    _decoder.start_utt()
    _decoder.process_raw(audio, full_utt=True)
    _decoder.end_utt()
    found = _decoder.hyp()
    return str(found.hypstr) if found is not None else ""
