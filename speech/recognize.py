"""One call's streaming decoder: 16-bit little-endian mono PCM in, a vosk result out.

Synchronous and not thread-safe: one per call at a time, fed from one thread (the CTI's audio
thread, holding a DecoderPool lease). Builds on a shared model (speech.models)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import vosk


class Recognizer:
    def __init__(self, model: Any, sample_rate: int, grammar: Sequence[str]) -> None:
        """grammar: speech.grammar.Grammar.phrases (an empty one: the model's whole
        vocabulary, as post-call transcription wants)."""
        if sample_rate not in (8000, 16000):
            raise ValueError(f"sample rate {sample_rate} is not 8000 or 16000")
        if grammar:
            self._rec = vosk.KaldiRecognizer(model, sample_rate,
                                             json.dumps(list(grammar), ensure_ascii=False))
        else:
            self._rec = vosk.KaldiRecognizer(model, sample_rate)
        self._rec.SetWords(True)
        self.sample_rate = sample_rate
        self._carry = b""        # an odd byte left from the last chunk (half a sample)
        self._done: list[dict[str, Any]] = []   # utterances vosk closed at an endpoint
        self.fed_s = 0.0         # seconds of audio fed so far

    def feed(self, pcm: bytes) -> bool:
        """Decode a chunk. True when vosk saw the end of an utterance (trailing silence after
        speech) in it: the caller has finished speaking; finish() has what was said. An
        endpoint on silence alone is not one: the listen window's end decides then."""
        data = self._carry + pcm
        cut = len(data) - len(data) % 2
        data, self._carry = data[:cut], data[cut:]
        if not data:
            return False
        self.fed_s += len(data) / 2 / self.sample_rate
        if self._rec.AcceptWaveform(data):
            self._done.append(json.loads(self._rec.Result()))
            return bool(self._done[-1].get("text"))
        return False

    def partial(self) -> str:
        """What vosk hears so far in the open utterance (no confidences), for barge-in."""
        return str(json.loads(self._rec.PartialResult()).get("partial", ""))

    def finish(self) -> dict[str, Any]:
        """Everything heard since the start (or the last finish), as one result
        {"text", "result": words}; feeding on afterwards starts afresh, same grammar."""
        parts = [*self._done, json.loads(self._rec.FinalResult())]
        self._done = []
        self._carry = b""
        words = [w for p in parts for w in p.get("result", [])]
        text = " ".join(t for p in parts if (t := p.get("text", "")))
        out: dict[str, Any] = {"text": text}
        if words:
            out["result"] = words
        return out
