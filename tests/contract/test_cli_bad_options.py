"""Issue 15 §5: no `hotline` command answers a bad option with a traceback. Every typed option
of every command (a number, a range, a choice) is given a value of the wrong kind, which click
refuses before the command runs (so nothing is started or changed); the listings' date options
are given a date that is not one. Each must end in a usage error or a clean message."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from hotline.cli import main

BAD = {click.INT: "x1", click.FLOAT: "x1"}


def _leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                            click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _bad_value(param: click.Parameter) -> str | None:
    t = param.type
    if isinstance(t, click.Choice):
        return "no-such-choice"
    if isinstance(t, click.IntRange | click.FloatRange):
        return "-99999999" if t.min is not None else "99999999999"
    return BAD.get(t) if t in BAD else None


def test_typed_options_refuse_bad_values_without_a_traceback(runner: CliRunner) -> None:
    tried = 0
    for path, cmd in _leaves(main):
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.is_flag:
                continue
            value = _bad_value(param)
            if value is None:
                continue
            res = runner.invoke(main, [*path, param.opts[0], value])
            tried += 1
            assert isinstance(res.exception, SystemExit) and res.exit_code == 2, (
                path, param.opts[0], value, res.output, res.exception)
            assert "Traceback" not in res.output and "Invalid value" in res.output
    assert tried >= 10, tried


def test_values_out_of_range_and_dates_that_are_not_dates_are_a_clean_error(
        runner: CliRunner) -> None:
    for args in (["seed-demo", "--accounts", "1"],
                 ["workorders", "list", "--offset", "99999999999999"],
                 ["recordings", "list", "--min-duration", "-5"],
                 ["recordings", "list", "--min-duration", "10", "--max-duration", "1"],
                 ["surveys", "--from", "2026-01-02", "--to", "2026-01-01"],
                 ["workorders", "list", "--from", "yesterday"],
                 ["workorders", "list", "--to", "2026-13-40"],
                 ["recordings", "list", "--from", "soon"],
                 ["surveys", "--from", "2026-02-30"]):
        res = runner.invoke(main, args)
        assert res.exit_code in (1, 2) and isinstance(res.exception, SystemExit), (
            args, res.output, res.exception)
        assert "Traceback" not in res.output
