"""The fake Claude's web searches, in the shapes of Anthropic's web search tool: a
`server_tool_use` block per search (its query), the `web_search_tool_result` block that
answers it (its results, each with opaque `encrypted_content`), and text citing what was
found (`web_search_result_location` citations, each with opaque `encrypted_index`)."""

from typing import Any

SEARCH_PREAMBLE = "Here is what I found. "
SEARCH_QUERY = "fake claude news"


def search_url(number: int) -> str:
    return f"https://example.com/source-{number}"


def search_blocks(count: int, error: str | None = None) -> list[dict[str, Any]]:
    """The searches' blocks; with `error` (an error_code such as max_uses_exceeded) each
    result is the API's web_search_tool_result_error instead."""
    blocks: list[dict[str, Any]] = []
    for number in range(1, count + 1):
        call_id = f"srvtoolu_fake{number:04d}"
        blocks += [
            {
                "type": "server_tool_use",
                "id": call_id,
                "name": "web_search",
                "input": {"query": f"{SEARCH_QUERY} {number}"},
            },
            {
                "type": "web_search_tool_result",
                "tool_use_id": call_id,
                "content": (
                    {"type": "web_search_tool_result_error", "error_code": error}
                    if error
                    else [
                        {
                            "type": "web_search_result",
                            "url": search_url(number),
                            "title": f"Source {number}",
                            "encrypted_content": f"EqgfCioIARgBIiQ3YTAw{number}",
                            "page_age": "June 1, 2026",
                        }
                    ]
                ),
            },
        ]
    return blocks


def citations(count: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "web_search_result_location",
            "url": search_url(number),
            "title": f"Source {number}",
            "encrypted_index": f"Eo8BCioIAhgBIiQyYjQ{number}",
            "cited_text": f"What source {number} says.",
        }
        for number in range(1, count + 1)
    ]
