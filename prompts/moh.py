"""Music on hold: a quiet, generated loop (sox), so the chroot needs no music package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MOH_DIR_NAME = "moh"
MOH_FILE = "hotline-moh.wav"
# a slow, low arpeggio (C major, then A minor): calm, and clearly "you are on hold"
NOTES = ("C4", "E4", "G4", "C5", "A3", "C4", "E4", "A4")


def build_moh(cache_dir: Path) -> Path:
    """Write <cache_dir>/moh/hotline-moh.wav (8 kHz mono 16-bit) once; reuse it afterwards."""
    out = cache_dir / MOH_DIR_NAME / MOH_FILE
    if out.exists() and out.stat().st_size > 10_000:
        return out
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed: run `make up`")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.wav")
    parts = []
    for i, note in enumerate(NOTES):
        part = out.parent / f".note{i}.wav"
        subprocess.run([sox, "-n", "-r", "8000", "-c", "1", "-b", "16", str(part), "synth",
                        "0.9", "sine", note, "fade", "q", "0.05", "0.9", "0.4", "vol", "0.25"],
                       check=True)
        parts.append(str(part))
    subprocess.run([sox, *parts, str(tmp), "repeat", "7"], check=True)
    for p in parts:
        Path(p).unlink()
    tmp.chmod(0o644)
    tmp.replace(out)
    return out
