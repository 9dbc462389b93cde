"""B3 `hotline bench ivr`, its pure parts: which events start a prompt, keys paired with the next
prompt on their channel, the calls up at a moment, percentiles, the verdict, speech responses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.ivr import (
    DIALPLAN_SERVICE,
    Spans,
    Utterance,
    caller_xml,
    dialplan_menus,
    key_plan,
    latency_summary,
    pair_keys,
    patch_for_bench,
    prompt_start,
    side_figures,
    speech_figures,
    verdict,
)

SERVICE = "95598"


def ev(name: str, t: float, uid: str = "c1", **more: Any) -> dict[str, Any]:
    return {"Event": name, "Timestamp": f"{t:.6f}", "Uniqueid": uid, **more}


def newchannel(t: float, uid: str, service: str = SERVICE) -> dict[str, Any]:
    return ev("Newchannel", t, uid, Context="from-carrier", Exten=service)


def key(t: float, uid: str = "c1", digit: str = "3") -> dict[str, Any]:
    return ev("DTMFEnd", t, uid, Digit=digit, Direction="Received", DurationMs="160")


def agi(t: float, command: str, uid: str = "c1") -> dict[str, Any]:
    return ev("AGIExecStart", t, uid, Command=command)


def test_prompt_starts_on_both_sides() -> None:
    assert prompt_start(agi(1, "STREAM FILE /p/a \"0123\""))
    assert prompt_start(agi(1, 'EXEC Read "HOTLINE_INPUT,/p/a&/p/b,1,t(),1,6"'))
    assert prompt_start(agi(1, 'EXEC AudioSocket "u,127.0.0.1:1"'))
    assert prompt_start(agi(1, 'GET OPTION /p/a "0123456789*#" 6000'))
    assert prompt_start(ev("Newexten", 1, Application="BackGround", AppData="/p/a"))
    assert prompt_start(ev("Newexten", 1, Application="Playback", AppData="/p/a"))
    # a Read with no file plays nothing; commands and applications that play nothing
    assert prompt_start(agi(1, 'EXEC Read "HOTLINE_INPUT,,3,t(#),1,4"')) is None
    assert prompt_start(ev("Newexten", 1, Application="Read", AppData="X,,1")) is None
    assert prompt_start(agi(1, 'GET FULL VARIABLE "${HOTLINE_INPUT}|${READSTATUS}"')) is None
    assert prompt_start(ev("Newexten", 1, Application="Goto", AppData="m,s,1")) is None
    assert prompt_start(ev("Newexten", 1, Application="WaitExten", AppData="6")) is None


def test_each_key_pairs_with_the_next_prompt_on_its_own_channel() -> None:
    events = [
        key(10.000, "c1"),
        key(10.001, "c2", "9"),
        agi(10.002, 'GET FULL VARIABLE "x"', "c1"),
        agi(10.004, "STREAM FILE /p/b \"\"", "c2"),      # c2's prompt: 3 ms
        agi(10.0065, 'EXEC Read "V,/p/a,1,t(),1,6"', "c1"),  # c1's: 6.5 ms
        agi(10.100, "STREAM FILE /p/c \"\"", "c1"),     # a second prompt: not a key's
        key(11.0, "c1"), key(11.5, "c1"),                # the first has no prompt before the next
        agi(11.501, "STREAM FILE /p/d \"\"", "c1"),
        key(12.0, "c2"), ev("Hangup", 12.1, "c2"),       # hung up before a prompt
        key(13.0, "other"),                              # not a caller
    ]
    got = pair_keys(events, {"c1", "c2"})
    assert [(s.uid, s.key, round(s.latency_ms, 1)) for s in got.samples] == [
        ("c2", "9", 3.0), ("c1", "3", 6.5), ("c1", "3", 1.0)]
    assert got.keys == 5
    assert got.no_prompt == 2


def test_the_calls_up_at_a_moment() -> None:
    spans = Spans.of([newchannel(0, "a"), newchannel(1, "b"), newchannel(1, "x", "123"),
                      ev("Hangup", 2, "a"), newchannel(3, "c"), ev("Hangup", 5, "b")], SERVICE)
    assert "x" not in spans
    assert spans.live_at([0.5, 1.5, 2.5, 3.5, 6]) == [1, 2, 1, 2, 1]


def test_percentiles_interpolate_like_numpy() -> None:
    got = latency_summary([float(x) for x in range(1, 101)])
    assert got["samples"] == 100
    assert got["p50_ms"] == 50.5
    assert got["p99_ms"] == 99.0
    assert got["max_ms"] == 100.0
    assert latency_summary([])["p99_ms"] is None


def test_side_figures_time_only_the_keys_at_load() -> None:
    events = [newchannel(0, "a"), newchannel(0, "b"),
              key(1.0, "a", "1"), agi(1.010, "STREAM FILE /p/x \"\"", "a"),  # both up: at load
              ev("Hangup", 2, "b"),
              key(3.0, "a", "3"), agi(3.500, "STREAM FILE /p/y \"\"", "a"),  # only one up
              ev("Hangup", 4, "a")]
    fig = side_figures(events, SERVICE, calls=2)
    assert fig["callers_seen"] == 2
    assert fig["at_load"]["all"]["samples"] == 1
    assert fig["at_load"]["all"]["p99_ms"] == pytest.approx(10.0)
    assert fig["at_load"]["language_key"]["samples"] == 1
    assert fig["whole_run"]["all"]["samples"] == 2
    assert fig["whole_run"]["menu_keys"]["p50_ms"] == pytest.approx(500.0)


def _side(p50: float, p99: float) -> dict[str, Any]:
    s = {"p50_ms": p50, "p99_ms": p99}
    return {"at_load": {"all": s, "menu_keys": s}}


def test_verdict_against_the_targets_and_the_dialplan() -> None:
    v = verdict(_side(20, 90), _side(10, 80))["all"]
    assert v["p99_ratio"] == 1.12
    assert v["target_met"] and v["moonshot_met"]
    v = verdict(_side(20, 140), _side(10, 80))["all"]
    assert v["target_met"] is False  # 1.75x
    v = verdict(_side(20, 160), _side(10, 150))["all"]
    assert v["target_met"] is False  # over 150 ms


def test_speech_response_from_the_utterance_end_to_the_next_prompt() -> None:
    sock = 'EXEC AudioSocket "u,127.0.0.1:1"'
    events = [newchannel(0, "a"), ev("Newstate", 0.1, "a", ChannelStateDesc="Up"),
              agi(0.2, sock, "a"),
              ev("AGIExecEnd", 3.0, "a", Command=sock),            # decided 0.9 s after the end
              agi(3.002, "STREAM FILE /p/ack \"\"", "a"),
              agi(4.0, sock, "a"),
              ev("AGIExecEnd", 9.0, "a", Command=sock),            # ended 4 s after: not heard
              agi(9.001, "STREAM FILE /p/ack \"\"", "a"),
              ev("Hangup", 12, "a")]
    fig = speech_figures(events, SERVICE, [Utterance(1000, 2000), Utterance(4500, 4900),
                                           Utterance(20000, 21000)])
    assert fig["utterances"] == 2  # the third would end after the hangup
    assert fig["heard"] == 1
    assert fig["response"]["p50_ms"] == pytest.approx(902.0)
    assert fig["listenings_open_peak"] == 1


def test_the_baseline_dialplan_and_the_bench_config(tmp_path: Path) -> None:
    prompts = {n: f"/p/{n}" for n in ("welcome", "language_menu", "main_menu", "fault_intro",
                                      "fault_confirm")}
    head, contexts = dialplan_menus(prompts)
    assert f"exten => {DIALPLAN_SERVICE},1," in head
    assert "exten => s,1,Background(/p/fault_intro&/p/fault_confirm)" in contexts
    assert "exten => 3,1,Goto(bench-ivr-fault,s,1)" in contexts
    (tmp_path / "extensions.conf").write_text("[globals]\n[from-carrier]\nexten => x\n")
    (tmp_path / "manager.conf").write_text(
        "[general]\ndisabledevents = Newexten,VarSet\n[hotline]\nread = system,call\n"
        "eventfilter(action(exclude),name(Newexten)) =\n[obs]\n"
        "read = system,call,dtmf\neventfilter(action(exclude),name(Newexten)) =\n")
    patch_for_bench(tmp_path, prompts)
    man = (tmp_path / "manager.conf").read_text()
    assert "disabledevents = VarSet\n" in man
    assert "read = system,call,dtmf,agi,dialplan\n" in man
    obs = man.split("[obs]")[1]
    assert "exclude" not in obs and "eventfilter(action(include),name(Newexten))" in obs
    assert man.split("[obs]")[0].count("exclude") == 1  # the CTI's user keeps its filters
    assert "[bench-ivr-main]" in (tmp_path / "extensions.conf").read_text()


def test_the_callers_keys() -> None:
    plan = key_plan(4)
    assert [k for _, k in plan] == ["1", "3", "9", "3"]
    xml = caller_xml(Path("/x.pcap"), plan, 1000)
    assert xml.count("INFO sip:") == 4 and "CSeq: 6 BYE" in xml
    assert xml.index("play_pcap_audio") < xml.index("Signal=1")


def test_a_speech_step_holds_while_it_answers_as_fast_as_one_caller() -> None:
    from bench.ivr import speech_holds

    def step(p99: float, share: float) -> dict[str, Any]:
        return {"response": {"p99_ms": p99}, "heard_share": share}
    assert speech_holds(step(1100, 1.0), 1000)
    assert not speech_holds(step(1200, 1.0), 1000)  # 200 ms later than one caller alone
    assert not speech_holds(step(1000, 0.8), 1000)  # a fifth not heard
    assert not speech_holds(step(1000, 1.0), None)
