"""The port through which a FastAGI session lets a caller speak to a menu (issue 13). The CTI's
AudioSocket server implements it (cti/audiosocket/server.py); the IVR knows only this."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ListenRequest:
    call_id: str
    lang: str                                  # the model's language
    choices: Mapping[str, tuple[str, ...]]     # option key -> its phrases (the flow's)
    prompts: tuple[Path, ...]                  # the menu prompt's WAV files, played in order
    # the caller's leg: 16000 where it carries wideband audio (G.722, slin16), else 8000
    rate: int = 8000


@dataclass(frozen=True)
class ListenOutcome:
    """How a listening ended. Never what was said: a key (digit), or the voted intent."""

    digit: str | None = None
    key: str | None = None
    confidence: float = 0.0
    decision: str = "none"        # accept | confirm | none
    hangup: bool = False          # the caller (or Asterisk) went away
    connected: bool = True        # False: Asterisk never reached the listener


class Listening(Protocol):
    """One menu's listening, until its outcome."""

    @property
    def uuid(self) -> str: ...

    @property
    def rate(self) -> int:
        """The rate the listener hears and plays at: 16000 asks Asterisk for slin16 (its
        AudioSocket channel driver), 8000 is what the AudioSocket() application carries."""
        ...

    @property
    def connected(self) -> bool:
        """Asterisk reached the listener with this listening's uuid."""
        ...

    async def outcome(self) -> ListenOutcome: ...

    def cancel(self) -> None: ...


class SpeechPort(Protocol):
    @property
    def address(self) -> str:
        """host:port for AudioSocket()."""
        ...

    @property
    def sample_rate(self) -> int:
        """The widest rate a listening takes ([speech] sample_rate): 16000, or 8000 when every
        call is heard narrowband (then the leg's codec need not be asked)."""
        ...

    def listen(self, request: ListenRequest) -> Listening | None:
        """A listening for Asterisk to connect to with its uuid, holding a decoder; None when
        every decoder is busy (the caller gets keys; counted)."""
        ...
