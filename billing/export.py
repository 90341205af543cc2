"""Streamed exports (CSV, JSON lines): rows are written as they are read, never gathered."""


class Echo:
    """A file-like target for csv.writer that hands back each row it is given."""

    def write(self, value: str) -> str:
        return value


def csv_cell(text: str) -> str:
    """Text as a spreadsheet cell that cannot run as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
