"""Post-call transcription's pure core: keyword matching over vosk's words (speech.keywords)
and the job's state rules (speech.jobs)."""

from __future__ import annotations

import pytest

from cti.db.models_transcripts import ALERT_STATUSES, JOB_STATES
from speech import jobs
from speech.jobs import JobState, JobStateError
from speech.keywords import (
    MAX_HITS,
    Word,
    as_digits,
    distinct_words,
    excerpt,
    find_keywords,
    keyword_form,
    words_of,
)

DEFAULTS = ("投诉", "媒体", "12345", "曝光", "律师")


def said(*tokens: str) -> list[Word]:
    return [Word(t, float(i), i + 0.5, 0.9) for i, t in enumerate(tokens)]


def hit_words(tokens: list[Word], keywords: tuple[str, ...] = DEFAULTS) -> list[tuple[str, float]]:
    return [(h.word, h.start) for h in find_keywords(tokens, keywords)]


def test_a_keyword_said_as_one_word_or_split_by_vosk_is_found_with_its_start() -> None:
    assert hit_words(said("我", "要", "投诉", "你们")) == [("投诉", 2.0)]
    assert hit_words(said("我", "要", "投", "诉")) == [("投诉", 2.0)]      # vosk split it
    assert hit_words(said("我要投诉你们")) == [("投诉", 0.0)]              # inside one word
    assert hit_words(said("找", "媒体", "曝光")) == [("媒体", 1.0), ("曝光", 2.0)]


def test_every_occurrence_is_a_hit_in_time_order_and_words_are_listed_once() -> None:
    hits = find_keywords(said("投诉", "律师", "投诉"), DEFAULTS)
    assert [(h.word, h.start) for h in hits] == [("投诉", 0.0), ("律师", 1.0), ("投诉", 2.0)]
    assert distinct_words([h.doc() for h in hits]) == ["投诉", "律师"]
    many = find_keywords(said(*["投诉"] * (MAX_HITS + 10)), DEFAULTS)
    assert len(many) == MAX_HITS


@pytest.mark.parametrize("tokens", [
    ("1", "2", "3", "4", "5"),             # digits one by one
    ("12345",),
    ("123", "45"),
    ("一", "二", "三", "四", "五"),          # the Chinese model spells them
    ("幺", "二", "三", "四", "五"),
    ("一二三四五",),
    ("일", "이", "삼", "사", "오"),          # the Korean one, Sino-Korean
    ("one", "two", "three", "four", "five"),
])
def test_12345_is_found_however_the_digits_are_spelled(tokens: tuple[str, ...]) -> None:
    assert hit_words(said("打", *tokens, "投")) == [("12345", 1.0)]


def test_numbers_and_latin_words_match_whole_not_inside_longer_ones() -> None:
    assert hit_words(said("123456")) == []
    assert hit_words(said("1", "2", "3", "4", "5", "6")) == []
    assert hit_words(said("0", "1", "2", "3", "4", "5")) == []
    assert hit_words(said("12345", "号")) == [("12345", 0.0)]
    assert hit_words(said("multimedia"), ("media",)) == []
    assert hit_words(said("the", "media"), ("media",)) == [("media", 1.0)]
    assert hit_words(said("Media!"), ("media",)) == [("media", 0.0)]  # case and punctuation
    assert hit_words(said("call", "the", "press"), ("the press",)) == [("the press", 1.0)]


def test_korean_keywords_match_with_their_particles() -> None:
    assert hit_words(said("변호사를", "부르겠습니다"), ("변호사",)) == [("변호사", 0.0)]
    assert hit_words(said("민", "원"), ("민원",)) == [("민원", 0.0)]
    assert hit_words(said("민원"), ("민 원",)) == [("민 원", 0.0)]


def test_keyword_forms() -> None:
    assert keyword_form("1 2 3 4 5") == keyword_form("一二三四五") == "12345"
    assert keyword_form(" 投 诉 ") == "投诉"
    assert keyword_form("The Press") == "thepress"
    assert keyword_form("一下") == "一下"        # not all digit words: as written
    assert as_digits("二") == "2" and as_digits("一下") is None and as_digits("five") == "5"
    assert as_digits("") is None and as_digits("!") is None
    assert find_keywords(said("投诉"), ("", "!!")) == []


def test_nothing_heard_or_nothing_configured() -> None:
    assert find_keywords([], DEFAULTS) == []
    assert find_keywords(said("投诉"), ()) == []
    assert excerpt([], []) == ""


def test_the_excerpt_is_the_words_around_the_first_hit() -> None:
    tokens = said(*[f"w{i}" for i in range(40)])
    tokens[20] = Word("投诉", 20.0, 20.5, 0.9)
    text = excerpt(tokens, find_keywords(tokens, DEFAULTS))
    assert text.startswith("… w12 ") and text.endswith(" w32 …") and "投诉" in text
    assert excerpt(said("a", "投诉"), find_keywords(said("a", "投诉"), DEFAULTS)) == "a 投诉"


def test_words_of_a_vosk_result() -> None:
    result = {"text": "投诉 律师", "result": [
        {"word": "投诉", "start": 1.234567, "end": 1.5, "conf": 0.987654},
        {"word": "律师", "start": 2.0, "end": 2.4},          # no conf: taken as sure
        {"word": "bad"}]}                                    # no timing: left out
    words = words_of(result)
    assert [w.w for w in words] == ["投诉", "律师"]
    assert words[0].doc() == {"w": "投诉", "s": 1.23, "e": 1.5, "c": 0.988}
    assert words[1].c == 1.0
    assert words_of({"text": ""}) == []


def test_the_database_knows_the_same_states() -> None:
    assert JOB_STATES == jobs.STATES
    assert ALERT_STATUSES == jobs.ALERT_STATUSES


def test_a_job_runs_once_claimed_and_is_retried_until_its_attempts_are_used() -> None:
    assert jobs.claimable("queued", 0, 3)
    assert jobs.claimable("queued", 2, 3)
    assert not jobs.claimable("queued", 3, 3)
    for state in ("running", "done", "failed"):
        assert not jobs.claimable(state, 0, 3)
    assert jobs.after_failure("running", 1, 3) is JobState.QUEUED
    assert jobs.after_failure("running", 3, 3) is JobState.FAILED
    assert jobs.after_success("running") is JobState.DONE
    for state in ("queued", "done", "failed"):
        with pytest.raises(JobStateError):
            jobs.after_failure(state, 1, 3)
        with pytest.raises(JobStateError):
            jobs.after_success(state)


def test_at_start_a_dead_process_s_running_job_goes_back_to_the_queue() -> None:
    assert jobs.at_start("running", 1, 3) is JobState.QUEUED
    assert jobs.at_start("running", 3, 3) is JobState.FAILED  # it killed the process each time
    for state in ("queued", "done", "failed"):
        assert jobs.at_start(state, 1, 3) is JobState(state)


def test_the_language_is_the_call_s_when_it_has_a_model_else_the_first_configured() -> None:
    assert jobs.pick_language("zh", ("ko", "zh")) == "zh"
    assert jobs.pick_language("en", ("ko", "zh")) == "ko"
    assert jobs.pick_language(None, ("ko",)) == "ko"
    assert jobs.pick_language("zh", ()) is None


def test_errors_are_clipped() -> None:
    assert jobs.clip_error(RuntimeError("x" * 900)).startswith("RuntimeError: x")
    assert len(jobs.clip_error("y" * 900)) == jobs.MAX_ERROR
