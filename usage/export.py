"""The usage CSV: a header row, then one row per logged call (or per group), streamed; safe to open in a spreadsheet.

Cells: money as the stored decimal (never a float, never 1E-8), timestamps ISO 8601 with their
offset, booleans true/false, empty for null. Free-text cells a spreadsheet would take for a formula
get a leading single quote (OWASP, CSV injection).
"""

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, tzinfo
from itertools import chain, islice

from django.http import StreamingHttpResponse

from usage.selectors import USAGE_EXPORT_COLUMNS

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 1000  # Rows per chunk handed to the server: few writes, small buffers.
CONTENT_TYPE = "text/csv; charset=utf-8"


def spreadsheet_safe(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def _row_formatter(zone: tzinfo) -> Callable[[tuple], tuple]:
    """Cells of one USAGE_EXPORT_COLUMNS row; None stays None (csv writes an empty cell). Spelled out
    column by column: this runs a million times for a million rows."""

    def cells(row: tuple) -> tuple:
        (
            id_,
            timestamp,
            model_name,
            decision_id,
            user_id,
            purpose,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            reasoning_tokens,
            cache_write_5m_tokens,
            cache_write_1h_tokens,
            input_audio_tokens,
            output_audio_tokens,
            output_image_tokens,
            cost,
            currency,
            reporting_cost,
            reporting_currency,
            exchange_rate,
            cost_source,
            price_version_id,
            response_time,
            success,
            error_message,
        ) = row
        return (
            id_,
            timestamp.astimezone(zone).isoformat(),
            spreadsheet_safe(model_name),
            spreadsheet_safe(decision_id),
            user_id,
            spreadsheet_safe(purpose),
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            reasoning_tokens,
            cache_write_5m_tokens,
            cache_write_1h_tokens,
            input_audio_tokens,
            output_audio_tokens,
            output_image_tokens,
            None if cost is None else format(cost, "f"),  # str() would give 1E-8 for 0.00000001.
            None if cost is None else currency,
            None if reporting_cost is None else format(reporting_cost, "f"),
            None if cost is None else reporting_currency,  # Unconverted: the currency, no amount.
            None if exchange_rate is None else format(exchange_rate, "f"),
            cost_source,
            price_version_id,
            None if response_time is None else repr(response_time),
            "true" if success else "false",
            spreadsheet_safe(error_message),
        )

    return cells


def usage_csv_chunks(rows: Iterable[tuple], *, zone: tzinfo) -> Iterator[str]:
    """The CSV text of `rows` (USAGE_EXPORT_COLUMNS tuples) in chunks of ROWS_PER_CHUNK rows, header first."""
    return _csv_chunks(USAGE_EXPORT_COLUMNS, map(_row_formatter(zone), rows))


def _group_cells(row: tuple) -> tuple:
    """Cells of one aggregated row (usage.breakdowns.usage_export_group_columns): the key (and an API
    key's name and prefix), the counts, the exact reporting cost and its currency."""
    *cells, reporting_cost, reporting_currency = row
    return (
        *(spreadsheet_safe(cell) if isinstance(cell, str) else cell for cell in cells),
        format(reporting_cost, "f"),
        reporting_currency,
    )


def usage_groups_csv_chunks(rows: Iterable[tuple], *, columns: Sequence[str]) -> Iterator[str]:
    """The CSV text of aggregated rows, one per group, header first."""
    return _csv_chunks(columns, map(_group_cells, rows))


def _csv_chunks(header: Sequence[str], cells: Iterator[tuple]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
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


def usage_export_filename(*, label: str, start: datetime | None, end: datetime, group_by: str | None = None) -> str:
    """e.g. aicost-usage-7d-20261117T100000Z-20261124T100000Z.csv (start "beginning" for all time),
    aicost-usage-by-user_id-7d-....csv for rows per group."""
    by = "" if group_by is None else f"by-{group_by}-"
    return f"aicost-usage-{by}{label}-{'beginning' if start is None else _stamp(start)}-{_stamp(end)}.csv"


def usage_selection_filename(*, at: datetime) -> str:
    """e.g. aicost-usage-selected-20261124T100000Z.csv (rows picked in admin)."""
    return f"aicost-usage-selected-{_stamp(at)}.csv"


def usage_csv_response(
    rows: Iterator[tuple],
    *,
    zone: tzinfo,
    filename: str,
    chunks: Callable[[Iterator[tuple]], Iterator[str]] | None = None,
) -> StreamingHttpResponse:
    """A streamed CSV download of `rows`. The first row is fetched here, so a database failure happens
    inside the view (an error response) rather than as a download cut short after a 200.

    A failure later, mid-stream, propagates out of the chunk iterator on purpose: gunicorn (27, sync and
    gthread workers) then logs it and closes the connection without the terminating zero-length chunk,
    so a client sees an incomplete transfer, never a complete-looking file (tests/test_export_abort.py).
    Nothing here may catch it and end the stream cleanly."""
    first = next(rows, None)
    if first is not None:
        rows = chain([first], rows)
    text = usage_csv_chunks(rows, zone=zone) if chunks is None else chunks(rows)
    response = StreamingHttpResponse(text, content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
