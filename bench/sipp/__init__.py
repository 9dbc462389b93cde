"""SIPp scenario XML, in one home for the bench, the tests and the AMI trace recorder.

One file per scenario, and the caller_* parts that generated callers are built from. Fields in
braces ({ring_ms}) are ours, filled in by scenario(); SIPp's own keywords are in brackets
([call_id]). It lives in the bench package because `hotline bench acd` ships and runs these
scenarios (package data), and shipped code must not read from tests/.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

HOME = Path(__file__).parent


def scenario(name: str, **fields: object) -> str:
    """The scenario (or part) `name`.xml with its {fields} filled in."""
    return (HOME / f"{name}.xml").read_text(encoding="iso-8859-1").format(**fields)



def info_keys(number: str, keys: Sequence[tuple[int, str]], cseq: int) -> tuple[str, int]:
    """A caller's keys as SIP INFO (caller_info), each after its pause: `keys` is (ms to pause
    before it, key) in order. Returns the XML and the CSeq after the last one."""
    xml = ""
    for pause_ms, key in keys:
        if pause_ms > 0:
            xml += f'  <pause milliseconds="{pause_ms}"/>\n'
        xml += scenario("caller_info", number=number, digit=key, cseq=cseq)
        cseq += 1
    return xml, cseq
