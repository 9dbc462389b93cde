"""How `make test` splits the suite between its two pytest-xdist workers (`-n 2 --dist
loadgroup`; the Makefile). A group runs whole on one worker:

- the integration tests of one database backend: the real stack (Asterisk, broker, CTI) is
  session-scoped per backend, so a worker that held both backends' tests would start it twice;
- the database tier's tests of one backend, for the same reason (a migrated database each);
- any other module: its module-scoped fixtures (a browser, a broker) start once.

The group is read from the test's id (its folder, and the backend as the first part of its
parameters: `[sqlite]`, `[postgresql-g722]`) by a scheduler of our own. xdist's own loadgroup
reads `xdist_group` marks and tags the ids through `item._nodeid`, which pytest 9 no longer
reads: with pytest 9.2 and xdist 3.8 every test was a group of its own, and each worker set up
both backends' stacks and every module fixture it met (test_ivr_calls' 108 s calls twice per
backend). tests/unit/test_xdist_groups.py checks the grouping.

Each worker has its own test slot (tests/support/ports.py), so the two real stacks never share
a port. Without xdist (`pytest tests/...` as usual) nothing here runs.
"""

from __future__ import annotations

from typing import Any

import pytest

BACKENDS = ("sqlite", "postgresql")  # the first part of a backend-parametrized test's id
BACKEND_TIERS = ("integration", "db")


def xdist_group(nodeid: str) -> str:
    """The group a test runs in: `<tier>-<backend>` for a backend's integration or database
    test, else its module."""
    path, _, rest = nodeid.partition("::")
    parts = path.split("/")
    tier = parts[-2] if len(parts) >= 2 else ""
    params = rest[rest.index("[") + 1:-1] if rest.endswith("]") and "[" in rest else ""
    backend = params.split("-", 1)[0]
    if tier in BACKEND_TIERS and backend in BACKENDS:
        return f"{tier}-{backend}"
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class BackendGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return BackendGroups(config, log)
