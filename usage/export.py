"""The usage CSV: a header row, then one row per logged call, streamed; safe to open in a spreadsheet.

Cells: money as the stored decimal (never a float, never 1E-8), timestamps ISO 8601 with their
offset, booleans true/false, empty for null. Free-text cells a spreadsheet would take for a formula
get a leading single quote (OWASP, CSV injection).
"""

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from itertools import chain, islice

from django.http import StreamingHttpResponse

from usage.selectors import USAGE_EXPORT_COLUMNS

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT_COLUMNS = frozenset({"model_name", "decision_id", "purpose", "error_message"})
ROWS_PER_CHUNK = 1000  # Rows per chunk handed to the server: few writes, small buffers.
CONTENT_TYPE = "text/csv; charset=utf-8"


def spreadsheet_safe(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def _decimal(value) -> str:
    return format(value, "f")


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _formatters(zone: tzinfo) -> list[Callable | None]:
    """One formatter per column (never called with None: csv writes None as an empty cell); None where
    csv's own str() is already right (integers, codes)."""
    special = {
        "timestamp": lambda moment: moment.astimezone(zone).isoformat(),
        "cost": _decimal,
        "response_time": repr,
        "success": _boolean,
    }
    return [spreadsheet_safe if column in FREE_TEXT_COLUMNS else special.get(column) for column in USAGE_EXPORT_COLUMNS]


def usage_csv_chunks(rows: Iterable[tuple], *, zone: tzinfo) -> Iterator[str]:
    """The CSV text of `rows` (USAGE_EXPORT_COLUMNS tuples) in chunks of ROWS_PER_CHUNK rows, header first."""
    formatters = _formatters(zone)
    cells = (
        [value if fmt is None or value is None else fmt(value) for fmt, value in zip(formatters, row, strict=True)]
        for row in rows
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(USAGE_EXPORT_COLUMNS)
    while True:
        writer.writerows(islice(cells, ROWS_PER_CHUNK))
        text = buffer.getvalue()
        if not text:
            return
        yield text
        buffer.seek(0)
        buffer.truncate()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def usage_export_filename(*, label: str, start: datetime | None, end: datetime) -> str:
    """e.g. aicost-usage-7d-20261117T100000Z-20261124T100000Z.csv (start "beginning" for all time)."""
    return f"aicost-usage-{label}-{'beginning' if start is None else _stamp(start)}-{_stamp(end)}.csv"


def usage_selection_filename(*, at: datetime) -> str:
    """e.g. aicost-usage-selected-20261124T100000Z.csv (rows picked in admin)."""
    return f"aicost-usage-selected-{_stamp(at)}.csv"


def usage_csv_response(rows: Iterator[tuple], *, zone: tzinfo, filename: str) -> StreamingHttpResponse:
    """A streamed CSV download of `rows`. The first row is fetched here, so a database failure happens
    inside the view (an error response) rather than as a download cut short after a 200."""
    first = next(rows, None)
    if first is not None:
        rows = chain([first], rows)
    response = StreamingHttpResponse(usage_csv_chunks(rows, zone=zone), content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
