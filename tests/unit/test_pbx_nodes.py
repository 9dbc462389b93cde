"""Ready for more than one PBX node: each node's Asterisk systemname prefixes its Uniqueid and
Linkedid ("pbx1-1700000000.12"), the settings list the nodes, and every id pattern accepts the
prefix (recording names, the AMI translation, the resync order)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asterisk_conf.render import SYSTEM_PROMPTS, RenderError, load_or_create_secrets, render
from config.settings import PbxNode, SettingsError, load_settings
from cti.ami.resync import ChannelInfo, _order
from cti.ami.translate import AsteriskId, CallQueued, parse_asterisk_id, translate
from recorder.naming import BadRecordingName, parse, relative_to_storage
from tests.support.settings import write_test_settings

ENV = {"HOTLINE_AMI_SECRET": "s3cret"}
SYS_PROMPTS = {key: {lang: f"/p/{lang}/sys.{key}" for lang in ("zh", "en")}
               for key in SYSTEM_PROMPTS}


# -------------------------------------------------------------------------------- settings


def test_default_is_one_local_node_named_pbx1() -> None:
    s = load_settings(env=ENV)
    assert s.pbx.systemname == "pbx1"
    assert s.pbx.nodes == (PbxNode("pbx1", s.ami.host, s.ami.port),)


def test_a_node_list_from_the_settings_file(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"pbx": {"systemname": "pbx2", "nodes": [
        {"name": "pbx1", "ami_host": "10.0.0.11"},
        {"name": "pbx2", "ami_host": "10.0.0.12", "ami_port": 5039}]}})
    s = load_settings(path, ENV)
    assert s.pbx.systemname == "pbx2"
    assert s.pbx.nodes == (PbxNode("pbx1", "10.0.0.11", s.ami.port),
                           PbxNode("pbx2", "10.0.0.12", 5039))


@pytest.mark.parametrize(("pbx", "message"), [
    ({"systemname": "PBX1"}, "systemname"),
    ({"systemname": "pbx_1"}, "systemname"),
    ({"systemname": "pbx.1"}, "systemname"),
    ({"nodes": [{"name": "pbx1"}, {"name": "pbx1", "ami_port": 5039}]}, "unique"),
    ({"nodes": [{"name": "pbx1"}, {"name": "pbx2"}]}, "AMI addresses"),
    ({"nodes": [{"name": "Node 1"}]}, "name"),
    ({"nodes": []}, "at least one"),
])
def test_bad_node_settings_fail_at_startup(tmp_path: Path, pbx: dict[str, object],
                                           message: str) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"pbx": pbx})
    with pytest.raises(SettingsError, match=message):
        load_settings(path, ENV)


def test_systemname_is_rendered_into_asterisk_conf(tmp_path: Path) -> None:
    settings = load_settings(env=ENV)
    secrets = load_or_create_secrets(tmp_path / "s.json", settings)
    files = render(settings, secrets, SYS_PROMPTS, "/moh")
    options = files["asterisk.conf"].split("[options]", 1)[1]
    assert "\nsystemname = pbx1\n" in options
    bad = replace(settings, pbx=replace(settings.pbx, systemname="pbx 1"))
    with pytest.raises(RenderError, match="systemname"):
        render(bad, secrets, SYS_PROMPTS, "/moh")


# --------------------------------------------------------------------------------- call ids


def test_asterisk_ids_with_and_without_a_systemname() -> None:
    assert parse_asterisk_id("pbx1-1700000000.12") == AsteriskId("pbx1", 1700000000, 12)
    assert parse_asterisk_id("pbx-east-2-1700000000.12") == AsteriskId("pbx-east-2",
                                                                        1700000000, 12)
    assert parse_asterisk_id("1700000000.12") == AsteriskId("", 1700000000, 12)
    for bad in ("", "pbx1", "pbx1-", "1700000000", "pbx1_1700000000.12", "PBX1-1.2",
                "hotline-spy-0123"):
        assert parse_asterisk_id(bad) is None, bad


def test_a_systemname_call_goes_through_translate_and_recording_names() -> None:
    call_id, leg = "pbx1-1795781350.1", "pbx1-1795781360.7"
    [queued] = translate({
        "Event": "UserEvent", "UserEvent": "HotlineQueued", "Channel": "PJSIP/carrier-00000001",
        "Uniqueid": call_id, "Linkedid": call_id, "CallerIDNum": "13900000001",
        "Skill": "general", "CallPriority": "0", "Account": ""})
    assert isinstance(queued, CallQueued)
    assert (queued.call_id, queued.channel_id) == (call_id, call_id)
    # the dialplan names the agent leg's file <Linkedid>_<Uniqueid>_<seat>.wav
    rel = relative_to_storage(f"/var/lib/hotline/recordings/20261127/{call_id}_{leg}_seat07.wav")
    name = parse(rel)
    assert (name.call_id, name.leg_id, name.seat, name.kind) == (call_id, leg, "seat07", "agent")
    assert parse(f"20261127/{call_id}_{call_id}_ivr.wav").kind == "ivr"
    with pytest.raises(BadRecordingName):
        parse(f"20261127/{call_id}_{leg}_seat07.wav/../../x")


def test_the_resync_orders_channels_by_age_within_a_node() -> None:
    def ch(uid: str) -> ChannelInfo:
        return ChannelInfo(channel="PJSIP/carrier-1", uniqueid=uid, linkedid=uid,
                           context="hotline-wait", exten="s", application="MusicOnHold",
                           bridge_id="", caller_num="1", caller_name="")

    ids = ["pbx1-1700000000.12", "pbx1-1700000000.9", "pbx1-1699999999.40"]
    assert [c.uniqueid for c in sorted(map(ch, ids), key=_order)] == [
        "pbx1-1699999999.40", "pbx1-1700000000.9", "pbx1-1700000000.12"]
