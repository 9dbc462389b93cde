"""`make up`'s simulated carrier runs only for a demo whose outbound trunk is on this host."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.sipp import scenario
from config.settings import Settings, load_settings
from hotline.stack import simulated_carrier

REPO = Path(__file__).resolve().parents[2]


def _with(settings: Settings, trunk: str, demo: bool = True) -> Settings:
    return replace(settings, demo=demo, pbx=replace(settings.pbx, outbound_trunk=trunk))


def test_the_demo_runs_it_on_the_trunks_local_port() -> None:
    s = load_settings(REPO / "hotline.toml", {"HOTLINE_AMI_SECRET": "x"})
    assert s.demo and simulated_carrier(s) == ("127.0.0.1", 5070)
    assert simulated_carrier(_with(s, "localhost:5080")) == ("127.0.0.1", 5080)


def test_never_for_a_real_carrier_or_a_real_deployment() -> None:
    s = load_settings(REPO / "hotline.toml", {"HOTLINE_AMI_SECRET": "x"})
    assert simulated_carrier(_with(s, "203.0.113.7:5060")) is None
    assert simulated_carrier(_with(s, "127.0.0.1:5070", demo=False)) is None
    assert simulated_carrier(_with(s, "")) is None


def test_its_customers_answer_and_press_one() -> None:
    xml = scenario("carrier_customer", ring_ms=1000, key_after_ms=4000)
    # SIP INFO: no raw socket needed (the carrier runs unprivileged)
    assert "Content-Type: application/dtmf-relay" in xml and "Signal=1" in xml
    assert "<exec play_pcap_audio" not in xml
