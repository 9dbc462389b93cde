"""The `hotline` CLI in tests: a command's --json output, parsed."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from hotline.cli import main


def cli_json(runner: CliRunner, *args: str) -> Any:
    """`hotline <args> --json`, which must succeed, as parsed JSON."""
    res = runner.invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)
