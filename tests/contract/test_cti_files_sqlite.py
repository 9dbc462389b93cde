"""stack.secure_cti_files gives the SQLite files to the CTI without breaking a process that has
the database open (issue 10 defect 2's audit test found it: the integration harness, as root,
saw none of the CTI's commits).

Closing an ordinary descriptor of a file drops every POSIX lock the process holds on it. When
_give opened and closed hotline.db and its -wal/-shm that way, a process holding the database
open lost its WAL locks; the CTI, alone as far as SQLite could tell, checkpointed and deleted the
-wal and -shm at its first disconnect and made new ones, and the other process kept reading the
old ones. Real files and real processes here: the CTI's part is a second Python process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from config.settings import Settings
from cti.db.session import make_engine, make_session_factory
from hotline import stack
from tests.support.settings import write_test_settings

# the CTI's part: open, read and disconnect (the migration's engine does so at startup), open
# again, commit a row and stay connected (as the CTI does) until told to go
CTI = """
import sqlite3, sys
db = sys.argv[1]
c = sqlite3.connect(db, isolation_level=None)
c.execute("select count(*) from t").fetchall()
c.close()
c = sqlite3.connect(db, isolation_level=None)
c.execute("insert into t values ('by the cti')")
print("committed", flush=True)
sys.stdin.readline()
"""


def _settings(tmp_path: Path) -> Settings:
    from config.settings import load_settings

    db = tmp_path / "hotline.db"
    path = write_test_settings(tmp_path / "hotline.toml", {"paths": {"state_dir": str(tmp_path)}})
    return load_settings(path, {"HOTLINE_DB_URL": f"sqlite:///{db}"})


def test_a_process_with_the_database_open_still_sees_the_ctis_commits(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    engine = make_engine(settings.db_url)  # WAL, like every engine of the hotline
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as s:
            s.execute(text("create table t (who text)"))
            s.execute(text("insert into t values ('by root')"))
        # the pooled connection stays open, as the integration harness's does
        assert {p.name for p in tmp_path.iterdir()} >= {"hotline.db", "hotline.db-wal",
                                                        "hotline.db-shm"}
        stack.secure_cti_files(settings, None)
        cti = subprocess.Popen([sys.executable, "-c", CTI, str(tmp_path / "hotline.db")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert cti.stdout is not None and cti.stdin is not None
            assert cti.stdout.readline().strip() == "committed"
            with sessions() as s:
                rows = sorted(s.scalars(text("select who from t")))
            assert rows == ["by root", "by the cti"]
            cti.stdin.write("\n")
            cti.stdin.flush()
            assert cti.wait(10) == 0
        finally:
            if cti.poll() is None:
                cti.kill()
                cti.wait(10)
    finally:
        engine.dispose()


def test_a_planted_symbolic_link_is_still_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_text("not the CTI's")
    target.chmod(0o644)
    (tmp_path / "hotline.db").symlink_to(target)
    try:
        stack.secure_cti_files(settings, None)
    except stack.StackError as exc:
        assert "symbolic link" in str(exc)
    else:
        raise AssertionError("a symbolic link in the database's place was given to the CTI")
    assert target.stat().st_mode & 0o777 == 0o644
