"""The reports' exports: flat rows (the same keys in every row) as CSV (UTF-8 with a BOM, so
Excel reads the Chinese) and as XLSX (openpyxl, one sheet)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from openpyxl import Workbook


def _header(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    return list(rows[0]) if rows else []


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """The rows as CSV bytes; None is an empty cell."""
    out = io.StringIO()
    header = _header(rows, columns)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in header])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: Sequence[Mapping[str, Any]], *, title: str,
            columns: Sequence[str] | None = None) -> bytes:
    """The rows as an XLSX workbook of one sheet named `title`; numbers stay numbers."""
    wb = Workbook(write_only=True)
    sheet = wb.create_sheet(title=title[:31])
    header = _header(rows, columns)
    sheet.append(header)
    for r in rows:
        sheet.append([r.get(c) for c in header])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
