"""How `make test` splits the suite between its two pytest-xdist workers (`-n 2 --dist
loadgroup`; the Makefile). A group runs whole on one worker:

- the integration tests of one database backend: the real stack (Asterisk, broker, CTI) is
  session-scoped per backend, so a worker that held both backends' tests would start it twice;
- the database tier's tests of one backend, for the same reason (a migrated database each);
- any other module: its module-scoped fixtures (a browser, a broker) start once.

Each worker has its own test slot (tests/support/ports.py), so the two real stacks never share
a port. Without xdist (`pytest tests/...` as usual) the marks change nothing.
"""

from __future__ import annotations

import pytest

BACKEND_PARAMS = ("backend", "db_url")  # the session-scoped, parametrized backend fixtures


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.parent.name
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        backend = next((params[p] for p in BACKEND_PARAMS if p in params), None)
        group = f"{tier}-{backend}" if backend is not None else item.path.stem
        item.add_marker(pytest.mark.xdist_group(group))
