"""The ledger exported as CSV. The /billing/ page itself joins billing's figures with the
names of keys, so it lives in the console shell (accounts/views.py), above both apps."""

import csv
from collections.abc import Iterator

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from billing import selectors
from billing.export import Echo, csv_cell, in_chunks
from billing.pricing import price_text

CSV_COLUMNS = ("created_at", "kind", "amount_usd", "note", "request_id", "event_id")


def _account_id(request: HttpRequest) -> int:
    """The signed-in user's id (LoginRequiredMiddleware lets no one else here)."""
    pk = request.user.pk
    if not isinstance(pk, int):
        raise PermissionDenied
    return pk


@require_GET
def ledger_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The whole ledger as CSV, streamed row by row (never built in memory)."""
    writer = csv.writer(Echo())
    account_id = _account_id(request)

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for entry in selectors.ledger_rows(account_id=account_id):
            yield writer.writerow(
                (
                    entry.created_at.isoformat(),
                    entry.kind,
                    price_text(entry.amount),
                    csv_cell(entry.note),
                    entry.request_id,
                    entry.event_id,
                )
            )

    response = StreamingHttpResponse(in_chunks(rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="tokenbyte-ledger.csv"'
    return response
