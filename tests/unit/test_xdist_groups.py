"""`make test`'s two workers each take whole groups (tests/conftest.py): one backend's
integration or database tests, or one module."""

from __future__ import annotations

from tests.conftest import xdist_group


def test_a_backends_integration_and_database_tests_are_one_group_each() -> None:
    assert xdist_group("tests/integration/test_ivr_calls.py::test_bill[sqlite]") == \
        xdist_group("tests/integration/test_acd.py::test_offer[sqlite]") == "integration-sqlite"
    assert xdist_group("tests/integration/test_speech_calls.py::test_leg[postgresql-g722]") \
        == "integration-postgresql"
    assert xdist_group("tests/db/test_db_outbound.py::test_x[postgresql-plus86-dashes]") == \
        "db-postgresql"


def test_anything_else_is_its_modules_group() -> None:
    for nodeid in ("tests/contract/test_desktop_browser.py::test_login",
                   "tests/unit/test_outbound_core.py::test_window[sqlite]",  # not a backend tier
                   "tests/integration/test_doctor.py::test_doctor",
                   "tests/db/test_db_x.py::test_y[mysql]"):
        assert xdist_group(nodeid) == nodeid.partition("::")[0]
