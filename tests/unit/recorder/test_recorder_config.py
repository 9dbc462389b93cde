"""The recorder's settings and its dialplan: both answer paths record, the IVR part only when
asked, the folder is never a tmpfs."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from asterisk_conf.render import SYSTEM_PROMPTS, render
from config.recorder import RecorderSettings
from config.settings import Settings, SettingsError, load_settings
from recorder.service import RecorderError, check_storage, filesystem_type
from tests.support.settings import write_test_settings

SYS_PROMPTS = {k: {lang: f"/p/{lang}/sys.{k}" for lang in ("zh", "en")} for k in SYSTEM_PROMPTS}
SECRETS = ({f"seat{i:02d}": "x" for i in range(1, 51)} | {f"sup{i:02d}": "x" for i in range(1, 6)}
           | {"fastagi": "f" * 48})  # the dialplan passes it on every AGI() call


def _settings(record_ivr: bool = False) -> Settings:
    s = load_settings(env={"HOTLINE_AMI_SECRET": "s"})
    return replace(s, recorder=replace(s.recorder, record_ivr=record_ivr))


def _context(plan: str, name: str) -> str:
    m = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", plan, re.S | re.M)
    assert m, name
    return m.group(1)


def test_both_answer_paths_record_the_agent_leg() -> None:
    plan = render(_settings(), SECRETS, SYS_PROMPTS, "/moh")["extensions.conf"]
    connect = _context(plan, "hotline-connect")
    assert re.search(r"Dial\(PJSIP/\$\{EXTEN\},\$\{RING_TIMEOUT\},[^\n]*"
                     r"U\(hotline-record\^\$\{HOTLINE_SKILL\}\)", connect), connect
    wait = _context(plan, "hotline-wait")
    assert "Queue(${QUEUE},t,,,${QUEUE_MAX_WAIT},,hotline-record)" in wait
    rec = _context(plan, "hotline-record")
    assert "MixMonitor(${f})" in rec and "hangup_handler_push)=hotline-record-done" in rec
    # named by the call (Linkedid), the leg and the answering endpoint, under the mount point
    assert "Set(LOCAL(day)=${STRFTIME(${EPOCH},UTC,%Y%m%d)})" in rec
    # (or a name the Dial gives a leg that is no seat: the trunk's leg of an outside consult)
    assert "Set(HOTLINE_REC_SEAT=${IF($[\"${ARG2}\" = \"\"]?${CHANNEL(endpoint)}:${ARG2})})" \
        in rec
    assert "${RECDIR}/${day}/${CHANNEL(linkedid)}_${UNIQUEID}_${HOTLINE_REC_SEAT}.wav" in rec
    consult = _context(plan, "hotline-consult")
    assert "U(hotline-record^${HOTLINE_SKILL}^outside)" in consult
    assert "RECDIR = /var/lib/hotline/recordings" in plan


def test_astdb_notes_are_kept_by_day_and_each_day_goes_at_once() -> None:
    """Every recorded leg notes its caller and queue in AstDB for a CTI that misses the events.
    The CTI's AMI user may not DBDel, so the dialplan itself drops a day's notes 3 to 7 days
    later (before, each leg's note stayed for ever)."""
    plan = render(_settings(True), SECRETS, SYS_PROMPTS, "/moh")["extensions.conf"]
    for name in ("hotline-record", "hotline-record-ivr"):
        rec = _context(plan, name)
        assert re.search(r"Set\(DB\(hotline-rec/\$\{day\}/\$\{CHANNEL\(linkedid\)\}_"
                         r"\$\{UNIQUEID\}\)=", rec), rec
        assert "Gosub(hotline-rec-tidy,s,1(${day}))" in rec
        assert rec.index("Set(LOCAL(day)=") < rec.index("Set(LOCAL(f)=")
    tidy = _context(plan, "hotline-rec-tidy")
    # once per day (and per Asterisk start): the global says which day was tidied
    assert 'GotoIf($["${HOTLINE_REC_TIDIED}" = "${ARG1}"]?done)' in tidy
    assert "Set(GLOBAL(HOTLINE_REC_TIDIED)=${ARG1})" in tidy
    ago = [int(d) for d in re.findall(
        r"DBdeltree\(hotline-rec/\$\{STRFTIME\(\$\[\$\{EPOCH\} - (\d) \* 86400\],UTC,%Y%m%d\)\}\)",
        tidy)]
    assert ago == [3, 4, 5, 6, 7]
    modules = render(_settings(), SECRETS, SYS_PROMPTS, "/moh")["modules.conf"]
    assert re.search(r"^load => app_db\.so", modules, re.M)


def test_the_ivr_part_is_recorded_only_when_the_setting_says_so() -> None:
    off = render(_settings(False), SECRETS, SYS_PROMPTS, "/moh")["extensions.conf"]
    on = render(_settings(True), SECRETS, SYS_PROMPTS, "/moh")["extensions.conf"]
    assert "RECORD_IVR = 0" in off and "RECORD_IVR = 1" in on
    carrier = _context(on, "from-carrier")
    assert "ExecIf($[${RECORD_IVR}]?Gosub(hotline-record-ivr,s,1))" in carrier
    # it stops when the caller goes to the agent side, which records on its own
    assert "StopMixMonitor(${HOTLINE_IVR_MIXMON})" in _context(on, "hotline-next")


def test_settings_default_folder_and_retention(tmp_path: Path) -> None:
    path = write_test_settings(tmp_path / "h.toml", {"paths": {"state_dir": str(tmp_path)}})
    s = load_settings(path, env={})
    assert s.recorder.storage_dir == tmp_path / "recordings"
    assert s.recorder.retention.keep_days(["complaint"])[0] > \
        s.recorder.retention.keep_days(["consultation"])[0]
    path = write_test_settings(tmp_path / "h2.toml", {
        "recorder": {"storage_dir": "/srv/rec", "retention": {"default": 30}}})
    s = load_settings(path, env={})
    assert s.recorder.storage_dir == Path("/srv/rec")
    assert (s.recorder.retention.default_days, dict(s.recorder.retention.by_category)) == (30, {})


@pytest.mark.parametrize("recorder, message", [
    ({"retention": {"default": 0}}, "at least 1"),
    ({"retention": {"default": 30, "complain": 9}}, "unknown work-order category"),
    ({"purge_hour": 24}, "purge_hour"),
])
def test_bad_recorder_settings_fail_at_load(tmp_path: Path, recorder: dict[str, object],
                                            message: str) -> None:
    raw = {"default": 180, "complaint": 730, "consultation": 90, "report": 730,
           "fault_repair": 365}
    rec = dict(recorder)
    if "retention" not in rec:
        rec["retention"] = raw
    path = write_test_settings(tmp_path / "h.toml", {"recorder": rec})
    with pytest.raises(SettingsError, match=message):
        load_settings(path, env={})


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /run tmpfs rw,nosuid 0 0
tmpfs /var/tmp/ram tmpfs rw 0 0
"""


def test_a_tmpfs_folder_is_refused(tmp_path: Path) -> None:
    assert filesystem_type(Path("/var/tmp/ram/rec"), MOUNTS) == "tmpfs"
    assert filesystem_type(Path("/var/tmp/ramdisk"), MOUNTS) == "ext4"
    assert filesystem_type(Path("/srv/rec"), MOUNTS) == "ext4"
    check_storage(tmp_path / "rec")  # this machine's test folder is on disk
    shm = Path("/dev/shm")  # a tmpfs on every Debian machine
    assert filesystem_type(shm) == "tmpfs"
    with pytest.raises(RecorderError, match="tmpfs"):
        check_storage(shm / "hotline-recorder-test")
    assert not (shm / "hotline-recorder-test").exists()  # refused before anything was made
    assert RecorderSettings().storage_dir == Path("var/recordings")
