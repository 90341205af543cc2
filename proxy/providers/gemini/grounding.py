"""Gemini's grounding with Google Search in the chat core's shape (pure), as Claude's web search
is (proxy/providers/anthropic/search.py): the queries it ran (groundingMetadata's
webSearchQueries) as `web_search_calls`, and the sources behind each supported segment of the
answer (groundingSupports naming groundingChunks) as `url_citation` annotations.

A segment is placed where its byte offsets put its own text (Gemini counts in UTF-8 bytes
within one part; the chat content is characters, every part joined); where its text is not
there (a later part, a stream's cut), it is searched for forward from the segment before.
"""

from typing import Any


def grounding_of(candidate: Any) -> dict[str, Any] | None:
    metadata = candidate.get("groundingMetadata") if isinstance(candidate, dict) else None
    return metadata if isinstance(metadata, dict) else None


def grounded_searches(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    queries = metadata.get("webSearchQueries")
    found = (
        [query for query in queries if isinstance(query, str)] if isinstance(queries, list) else []
    )
    return [
        {"id": f"search_{number}", "query": query, "status": "completed"}
        for number, query in enumerate(found, 1)
    ]


def grounded_citations(metadata: dict[str, Any], content: str) -> list[dict[str, Any]]:
    chunks = metadata.get("groundingChunks")
    chunks = chunks if isinstance(chunks, list) else []
    supports = metadata.get("groundingSupports")
    out = []
    cursor = 0
    encoded = content.encode()
    for support in supports if isinstance(supports, list) else ():
        segment = support.get("segment") if isinstance(support, dict) else None
        text = segment.get("text") if isinstance(segment, dict) else None
        if not isinstance(segment, dict) or not isinstance(text, str) or not text:
            continue
        start = _by_bytes(encoded, content, segment.get("startIndex"), text)
        if start is None:
            start = content.find(text, cursor)
            if start < 0:
                start = content.find(text)
        if start < 0:
            continue  # not in what the client got (a cut answer)
        cursor = start + len(text)
        for index in support.get("groundingChunkIndices") or ():
            chunk = chunks[index] if isinstance(index, int) and 0 <= index < len(chunks) else None
            web = chunk.get("web") if isinstance(chunk, dict) else None
            if not isinstance(web, dict) or not isinstance(web.get("uri"), str) or not web["uri"]:
                continue  # a retrieved context or map place, not a web page
            uri, title = web["uri"], web.get("title")
            out.append(
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": start,
                        "end_index": start + len(text),
                        "url": uri,
                        "title": title if isinstance(title, str) else "",
                    },
                }
            )
    return out


def _by_bytes(encoded: bytes, content: str, offset: Any, text: str) -> int | None:
    """Where a byte offset into the content puts `text`, in characters; None if it does not."""
    if not isinstance(offset, int) or not 0 <= offset <= len(encoded):
        return None
    try:
        start = len(encoded[:offset].decode())
    except UnicodeDecodeError:  # inside a character
        return None
    return start if content.startswith(text, start) else None


def indexed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stream's delta entries, numbered as tool calls are (search.py says why)."""
    return [{"index": number, **entry} for number, entry in enumerate(entries)]
