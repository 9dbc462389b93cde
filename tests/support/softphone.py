"""A real softphone for tests: baresip 1.0 (Debian's baresip-core), headless, as a seat's phone.

It writes a config dir for one seat, starts baresip, waits for its registration, sends it
commands over ctrl_tcp (netstring JSON) and keeps the events ctrl_tcp pushes (CALL_INCOMING,
CALL_ESTABLISHED, CALL_CLOSED ...). baresip needs an audio source that can start, or it answers
and at once closes the call ("audio: start_source failed"): a headless machine has no sound
device, so the default alsa source fails, and aufile needs a wav at exactly ausrc_srate. Here
the source is aufile with a wav the caller writes (8 kHz, mono, 16-bit), and the sndfile module
dumps what the phone sent (-enc.wav) and what it heard (-dec.wav) for each call. baresip 1.0's
aufile is a source only; with no player module loaded, the call runs without playing audio.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline import stack

MODULES = Path("/usr/lib/baresip/modules")
Event = dict[str, Any]


def write_config(home: Path, *, seat: str, secret: str, registrar: str, sip_port: int,
                 ctrl_port: int, rtp_ports: tuple[int, int], audio_source: str) -> Path:
    """The baresip config dir (`config`, `accounts`) of a seat's softphone: the settings that
    are known to work with this PBX (README, "Phones known to work") with `audio_source`
    ("aufile,<8 kHz mono wav>" works; another module's source, e.g. "alsa,default", loads
    that module too)."""
    home.mkdir(parents=True, exist_ok=True)
    source_module = audio_source.split(",", 1)[0]
    dumps = home / "dumps"
    dumps.mkdir(exist_ok=True)
    (home / "config").write_text("\n".join([
        "poll_method epoll",
        f"sip_listen 127.0.0.1:{sip_port}",
        # an audio source that starts on a machine without a sound device; aufile refuses a
        # wav whose rate is not ausrc_srate (and the call then ends as soon as it is answered)
        f"audio_source {audio_source}",
        "ausrc_srate 8000",
        "auplay_srate 8000",
        f"rtp_ports {rtp_ports[0]}-{rtp_ports[1]}",
        f"module_path {MODULES}",
        "module g711.so",
        "module aufile.so",
        *([f"module {source_module}.so"] if source_module != "aufile" else []),
        "module sndfile.so",  # the audio dumper: dump-<call>-enc.wav (sent), -dec.wav (heard)
        f"snd_path {dumps}",
        "module_app account.so",
        "module_app menu.so",  # the call commands (hangup, hold, resume ...)
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
        "",
    ]))
    (home / "accounts").write_text(
        f"<sip:{seat}@{registrar}>;auth_pass={secret};answermode=auto;regint=300;"
        "audio_codecs=PCMU,PCMA\n")
    (home / "accounts").chmod(0o600)
    return dumps


class Softphone:
    """One baresip process registered as `seat` at `registrar` (host:port)."""

    def __init__(self, home: Path, *, seat: str, secret: str, registrar: str, sip_port: int,
                 ctrl_port: int, rtp_ports: tuple[int, int], audio_source: str,
                 sip_trace: bool = False) -> None:
        self.home = home
        self.sip_trace = sip_trace  # baresip -s: every SIP message it sends and receives
        self.seat = seat
        self.ctrl_port = ctrl_port
        self.dumps = write_config(home, seat=seat, secret=secret, registrar=registrar,
                                  sip_port=sip_port, ctrl_port=ctrl_port, rtp_ports=rtp_ports,
                                  audio_source=audio_source)
        self.sip_port = sip_port
        self.log = home / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._events: list[Event] = []
        self._responses: dict[str, Event] = {}
        self._cond = threading.Condition()
        self._token = 0
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ process
    def start(self, timeout: float = 15) -> Softphone:
        """Start baresip and connect to its ctrl_tcp; registration is wait_registered()'s."""
        with self.log.open("wb") as out:  # line-buffered, so the log is readable while it runs
            self.proc = subprocess.Popen(["stdbuf", "-oL", "-eL", "baresip", "-f",
                                          str(self.home), *(["-s"] if self.sip_trace else [])],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        def listening() -> bool:
            """ctrl_tcp accepts (baresip has loaded its modules), or baresip is gone."""
            if self.proc is not None and self.proc.poll() is not None:
                return True
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
            except OSError:
                return False
            return True

        try:
            stack.wait_until(listening, timeout, f"baresip's ctrl_tcp on {self.ctrl_port}")
        except stack.StackError:
            raise AssertionError(f"baresip's ctrl_tcp on {self.ctrl_port} never listened within "
                                 f"{timeout:g}s: {self.tail()}") from None
        if self.sock is None:
            raise AssertionError(f"baresip exited ({self.proc.returncode}): {self.tail()}")
        self._reader = threading.Thread(target=self._read, name=f"baresip-{self.seat}",
                                        daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.command("quit", timeout=3)
            except (AssertionError, OSError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        if self.sock is not None:
            self.sock.close()
        if self._reader is not None:
            self._reader.join(2)

    def tail(self, lines: int = 40) -> str:
        """The last lines of baresip's output, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"({exc})"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    # ------------------------------------------------------------------ ctrl_tcp
    def _read(self) -> None:
        """Netstrings from ctrl_tcp: `len:json,`; events and command responses."""
        assert self.sock is not None
        self.sock.settimeout(None)
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b":" in buf:
                head, rest = buf.split(b":", 1)
                n = int(head)
                if len(rest) < n + 1:
                    break
                msg = json.loads(rest[:n].decode(errors="replace"))
                buf = rest[n + 1:]  # skip the trailing comma
                msg["_received"] = time.time()
                with self._cond:
                    if msg.get("event"):
                        self._events.append(msg)
                    elif msg.get("response"):
                        self._responses[str(msg.get("token"))] = msg
                    self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5) -> Event:
        """Run a baresip command (as its menu names it, without the slash: hangup, reginfo,
        quit ...) and return ctrl_tcp's response ({"ok": ..., "data": ...})."""
        assert self.sock is not None, "baresip is not started"
        with self._cond:
            self._token += 1
            token = str(self._token)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout):
                raise AssertionError(f"baresip did not answer {command!r} within {timeout:g}s:"
                                     f" {self.tail()}")
            return self._responses.pop(token)

    def mark(self) -> int:
        with self._cond:
            return len(self._events)

    def events(self) -> list[Event]:
        with self._cond:
            return list(self._events)

    def wait_event(self, pred: Callable[[Event], bool] | str, timeout: float, since: int = 0
                   ) -> Event:
        """The first ctrl_tcp event from index `since` that matches (a type name or a
        predicate), waiting up to `timeout` seconds."""
        match = (lambda e: e.get("type") == pred) if isinstance(pred, str) else pred
        found: list[Event] = []

        def seen() -> bool:
            found[:] = [e for e in self._events[since:] if match(e)][:1]
            return bool(found)

        with self._cond:
            if not self._cond.wait_for(seen, timeout):
                kinds = [e.get("type") for e in self._events[since:]]
                raise AssertionError(f"baresip ({self.seat}) sent no {pred} event within "
                                     f"{timeout:g}s (events: {kinds}); log:\n{self.tail()}")
        return found[0]

    def wait_registered(self, timeout: float = 20) -> None:
        """Until the registrar answered 200 OK: REGISTER_OK if it came after the connect,
        else `reginfo` says OK (the first REGISTER may have been answered before it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # alive: a baresip that could not bind its SIP port exits, and the ctrl_tcp port
            # may then be another one's (left over from a test that was killed)
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            if any(e.get("type") == "REGISTER_OK" for e in self.events()):
                return
            info = self.command("reginfo")
            if " OK " in str(info.get("data", "")).replace("\x1b[32m", " ").replace(
                    "\x1b[;m", " "):
                return
            if any(e.get("type") == "REGISTER_FAIL" for e in self.events()):
                break
            with self._cond:  # wake on the next event, or look again in a moment
                self._cond.wait(0.2)
        raise AssertionError(f"{self.seat}'s softphone did not register within {timeout:g}s: "
                             f"{self.tail()}")

    def sip_sent(self) -> list[tuple[str, str]]:
        """With sip_trace: the SIP messages this phone sent, as (first line, CSeq method),
        from baresip's trace ("UDP <from> -> <to>", then the message)."""
        sent = []
        head = f"UDP 127.0.0.1:{self.sip_port} -> "
        # each traced message starts on a line "#" (coloured: ESC[36;1m#)
        for block in re.split(r"(?m)^(?:\x1b\[[0-9;]*m)?#\n", self.output())[1:]:
            lines = block.splitlines()
            if len(lines) < 2 or not lines[0].startswith(head):
                continue
            cseq = next((ln.split()[-1] for ln in lines if ln.startswith("CSeq:")), "")
            sent.append((lines[1].strip(), cseq))
        return sent

    def dump(self, kind: str) -> list[Path]:
        """sndfile's wav files of every call so far: kind "dec" (heard) or "enc" (sent)."""
        return sorted(self.dumps.glob(f"dump-*-{kind}.wav"), key=lambda p: p.stat().st_mtime)
