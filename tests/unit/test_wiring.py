"""hotline.wiring: the composition root refuses what it does not wire, and builds offline
services over a given database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import PbxNode, load_settings
from hotline.wiring import WiringError, build_services, the_one_node


def test_one_pbx_node_is_driven() -> None:
    settings = load_settings(env={})
    node = the_one_node(settings)
    assert (node.ami_host, node.ami_port) == (settings.ami.host, settings.ami.port)


def test_several_pbx_nodes_are_refused_not_half_wired() -> None:
    settings = load_settings(env={})
    two = replace(settings, pbx=replace(settings.pbx, nodes=(
        PbxNode("pbx1", "127.0.0.1", 5038), PbxNode("pbx2", "127.0.0.1", 5039))))
    with pytest.raises(WiringError, match="2 nodes"):
        the_one_node(two)


def test_offline_services_share_the_given_database_and_clock(tmp_path: Path) -> None:
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    settings = replace(load_settings(env={}), state_dir=tmp_path,
                       db_url=f"sqlite:///{tmp_path / 'w.db'}")
    services = build_services(settings, clock=lambda: at)
    ctx = services.web_context()
    assert ctx.workorders is services.workorders
    assert ctx.sessions is services.sessions and ctx.clock() == at
    assert services.workorders.clock() == at
    # keyword alerts (post-call transcription) are served over the same database and clock
    assert ctx.keyword_alerts is services.keyword_alerts
    assert services.keyword_alerts.workorders is services.workorders
    assert services.keyword_alerts.clock() == at


def test_transcription_needs_a_model_and_a_worker(tmp_path: Path) -> None:
    from config.speech import SpeechSettings
    from hotline.wiring import speech_models, transcription
    from speech.models import ModelRegistry

    settings = load_settings(env={})
    assert speech_models(settings) is None  # the shipped settings have no model
    assert transcription(settings, None, None) is None  # type: ignore[arg-type]
    with_model = replace(settings, speech=SpeechSettings(models={"ko": tmp_path}))
    models = speech_models(with_model)
    assert isinstance(models, ModelRegistry) and models.languages == ("ko",)
    off = replace(with_model, speech=SpeechSettings(models={"ko": tmp_path},
                                                    transcribe_workers=0))
    assert transcription(off, None, models) is None  # type: ignore[arg-type]
    on = transcription(with_model, None, models)  # type: ignore[arg-type]
    assert on is not None
    try:
        assert on.workers == 1 and on.languages == ("ko",)
        assert on.storage_dir == settings.recorder.storage_dir
    finally:
        on.stop()
