"""SIPp for the bench: one UAC process for all callers, one UAS for all 50 agent phones.

Callers: every call of the run is started within the first second and first pauses for its
own arrival offset (an injection-file field), so one SIPp process produces the seeded Poisson
schedule exactly. After the 200 OK the caller sends silence (RTP) for the whole call, so the
PBX's rtp_timeout never cuts it, and waits for the PBX's BYE: the agent's phone ends the call,
or the bench hangs the caller up when its patience runs out.

Agent phones: ring for `ring_ms`, answer, echo the caller's RTP (-rtp_echo), talk for the next
talk time of the list (SEQUENTIAL injection file: the n-th answered call gets the n-th talk
time on both sides), then hang up (BYE). A CANCEL while ringing is answered properly.

The scenarios are in bench/sipp/, the one home of the SIPp XML (the tests use them too).
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.sipp import scenario


class SippError(Exception):
    """A SIPp run failed."""


# ------------------------------------------------------------------------------------ files


def write_silence_pcap(path: Path, seconds: int) -> None:
    """G.711 mu-law silence every 20 ms for `seconds` (SIPp re-addresses the packets)."""
    write_ulaw_pcap(path, b"\xff" * (seconds * 8000))


def write_ulaw_pcap(path: Path, audio: bytes, ssrc: int = 0x95590000) -> None:
    """G.711 mu-law `audio` (8 kHz, one byte a sample) as RTP every 20 ms, padded to a whole
    packet with silence (SIPp re-addresses the packets and plays them at their pcap times)."""
    audio += b"\xff" * (-len(audio) % 160)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(len(audio) // 160):
        rtp = struct.pack("!BBHII", 0x80, 0, (1000 + i) & 0xFFFF, (8000 + 160 * i) & 0xFFFFFFFF,
                          ssrc) + audio[i * 160:(i + 1) * 160]
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        pkt = b"\x00" * 12 + b"\x08\x00" + ip + udp
        t_us = i * 20_000
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(pkt), len(pkt)))
        out.append(pkt)
    path.write_bytes(b"".join(out))


def write_callers(path: Path, arrivals_s: Sequence[float], numbers: Sequence[str],
                  launch_rate: int, lead_s: float) -> None:
    """Call i is launched by SIPp at about i / launch_rate s and pauses until its arrival."""
    rows = ["SEQUENTIAL"]
    for i, (t, number) in enumerate(zip(arrivals_s, numbers, strict=True)):
        pause_ms = max(0, round((lead_s + t - i / launch_rate) * 1000))
        rows.append(f"{pause_ms};{number};")
    path.write_text("\n".join(rows) + "\n", encoding="ascii")


def write_talk_times(path: Path, talk_ms: Sequence[int]) -> None:
    path.write_text("SEQUENTIAL\n" + "".join(f"{t};\n" for t in talk_ms), encoding="ascii")


# -------------------------------------------------------------------------------- processes


def register_seats(secrets: Mapping[str, str], target: str, contact_port: int, workdir: Path,
                   local_port: int) -> None:
    """REGISTER every seat (digest auth) with its Contact on the agent-phone UAS port."""
    scen = workdir / "register.xml"
    scen.write_text(scenario("register", contact_port=contact_port, expires=3600),
                    encoding="ascii")
    inf = workdir / "seats.csv"
    rows = ["SEQUENTIAL"] + [f"{name};[authentication username={name} password={pw}]"
                             for name, pw in secrets.items()]
    inf.write_text("\n".join(rows) + "\n", encoding="ascii")
    err = workdir / "register.err"
    try:
        res = subprocess.run(
            ["sipp", target, "-sf", str(scen), "-inf", str(inf), "-m", str(len(secrets)),
             "-l", "10", "-r", "50", "-i", "127.0.0.1", "-p", str(local_port), "-cp",
             str(local_port + 1), "-timeout", "30s", "-timeout_error", "-nostdin",
             "-trace_err", "-error_file", str(err)],
            capture_output=True, text=True, cwd=workdir, check=False, timeout=40)
    except subprocess.TimeoutExpired:
        raise SippError("seat registration did not finish in 40 s") from None
    if res.returncode != 0:
        detail = err.read_text(errors="replace")[-2000:] if err.exists() else res.stderr[-2000:]
        raise SippError(f"seat registration failed ({res.returncode}): {detail}")


NO_WATCHDOG_EXIT = ("-watchdog_minor_maxtriggers", "1000000000",
                    "-watchdog_major_maxtriggers", "1000000000")


def start_phones(workdir: Path, port: int, media_port: int, talk_file: Path,
                 ring_ms: int) -> subprocess.Popen[bytes]:
    scen = workdir / "phones.xml"
    scen.write_text(scenario("bench_phones", ring_ms=ring_ms), encoding="ascii")
    return subprocess.Popen(
        ["sipp", "-sf", str(scen), "-inf", str(talk_file), "-i", "127.0.0.1", "-p", str(port),
         "-mp", str(media_port), "-rtp_echo", "-cp", str(port + 1), "-nostdin",
         # SIPp ends itself after 120 late timer runs (its watchdog): on a machine a load
         # step overloads, the phones must outlive the step (a capacity run lost every seat
         # in its IVR-only ramp, and every bridged step after it failed)
         *NO_WATCHDOG_EXIT,
         "-trace_err", "-error_file", str(workdir / f"phones-{talk_file.stem}.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=workdir)


def start_callers(workdir: Path, target: str, service: str, callers_file: Path, n_calls: int,
                  launch_rate: int, port: int, media_port: int, pcap: Path,
                  max_s: int) -> subprocess.Popen[bytes]:
    scen = workdir / f"callers-{service}.xml"
    # every caller's number comes from the injection file (field 1)
    xml = scenario("bench_caller", invite=scenario("caller_invite", number="[field1]"),
                   pcap=pcap, awaits_bye=scenario("caller_awaits_bye"))
    scen.write_text(xml, encoding="ascii")
    return subprocess.Popen(
        ["sipp", target, "-sf", str(scen), "-inf", str(callers_file), "-s", service,
         "-m", str(n_calls), "-l", str(n_calls + 10), "-r", str(launch_rate), "-rp", "1000",
         "-i", "127.0.0.1", "-p", str(port), "-mp", str(media_port), "-cp", str(port + 1),
         "-recv_timeout", str(max_s * 1000), "-timeout", f"{max_s}s", "-nostdin",
         "-trace_err", "-error_file", str(workdir / f"callers-{service}.err"),
         "-trace_stat", "-stf", str(workdir / f"callers-{service}.stat.csv")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=workdir)


def stop(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
