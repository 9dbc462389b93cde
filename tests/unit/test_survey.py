"""The post-call survey's pure parts: [acd] survey_skills, a report's figures, the score the
CTI takes from the dialplan's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.surveys import score_of
from config.settings import SettingsError, load_settings
from cti.ami.translate import SurveyAnswered
from cti.db.surveys import figures
from tests.support.settings import write_test_settings


def _settings(tmp_path: Path, acd: dict[str, object]) -> object:
    return load_settings(write_test_settings(tmp_path / "hotline.toml", {"acd": acd}),
                         env={})


def test_survey_skills_are_a_list_of_skill_names(tmp_path: Path) -> None:
    shipped = load_settings(env={})
    assert shipped.acd.survey_skills == ("general", "repair", "english")
    # the tests' settings have none unless asked (tests/support/settings.py)
    assert _settings(tmp_path, {}).acd.survey_skills == ()  # type: ignore[attr-defined]
    s = _settings(tmp_path, {"survey_skills": ["repair", "general", "repair"]})
    assert s.acd.survey_skills == ("repair", "general")  # type: ignore[attr-defined]
    for bad in (["General"], ["a/b"], [".*"], ["general", ""], "general"):
        with pytest.raises(SettingsError, match="survey_skills"):
            _settings(tmp_path, {"survey_skills": bad})


def test_figures_count_the_asked_the_rated_and_average_the_scores() -> None:
    f = figures("A001", [(5, 2), (None, 3), (1, 1)], name="张三")
    assert (f.key, f.name, f.offered, f.answered, f.average) == ("A001", "张三", 6, 3, 3.67)
    assert f.scores == {1: 1, 2: 0, 3: 0, 4: 0, 5: 2}
    none = figures(None, [(None, 2)])
    assert (none.offered, none.answered, none.average) == (2, 0, None)
    assert figures("x", []).offered == 0


def test_only_one_to_five_is_a_score() -> None:
    for key, score in ((1, 1), (5, 5), (None, None), (0, None), (6, None), (-1, None)):
        assert score_of(SurveyAnswered("1.1", "seat01", "general", key)) == score
