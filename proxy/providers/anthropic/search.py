"""Claude's web search in the chat core's shape (pure): the searches it ran and the sources
its text cites.

A text block's `web_search_result_location` citations become OpenAI's `url_citation`
annotations over that block's span of the message's content (start and end in characters, as
OpenAI counts them). The searches (`server_tool_use` blocks named web_search, each answered by
a `web_search_tool_result`) become `web_search_calls` beside them: no chat API has such a
field, but the Responses API answers them as `web_search_call` items (responses_output.py).
In a stream each entry carries its `index`, as tool calls do, so that clients that merge
deltas (the openai SDK's stream helper) keep them all.
"""

from typing import Any

SEARCH_TOOL = "web_search"
CITED_SOURCE = "web_search_result_location"
SEARCH_ERROR = "web_search_tool_result_error"


def url_citations(block: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
    """A text block's web citations as url_citation annotations over [start, end)."""
    out = []
    for citation in block.get("citations") or ():
        if not isinstance(citation, dict) or citation.get("type") != CITED_SOURCE:
            continue  # a document's citations name no URL
        url = citation.get("url")
        if not isinstance(url, str) or not url:
            continue
        title = citation.get("title")
        out.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": start,
                    "end_index": end,
                    "url": url,
                    "title": title if isinstance(title, str) else "",
                },
            }
        )
    return out


def search_query(block: dict[str, Any]) -> str | None:
    """A server_tool_use block's query, when it is a web search; else None."""
    if block.get("name") != SEARCH_TOOL:
        return None
    tool_input = block.get("input")
    query = tool_input.get("query") if isinstance(tool_input, dict) else None
    return query if isinstance(query, str) else ""


def search_status(result: dict[str, Any]) -> str:
    """A web_search_tool_result's outcome, in the Responses API's words."""
    content = result.get("content")
    failed = isinstance(content, dict) and content.get("type") == SEARCH_ERROR
    return "failed" if failed else "completed"


def search_call(call_id: str, query: str, status: str) -> dict[str, Any]:
    return {"id": call_id, "query": query, "status": status}


def message_searches(content: list[Any]) -> list[dict[str, Any]]:
    """The web searches a whole message ran, in order, each with its outcome."""
    queries: dict[str, str] = {}
    calls = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "server_tool_use" and isinstance(block.get("id"), str):
            query = search_query(block)
            if query is not None:
                queries[block["id"]] = query
        elif block.get("type") == "web_search_tool_result":
            call_id = block.get("tool_use_id")
            if isinstance(call_id, str) and call_id in queries:
                calls.append(search_call(call_id, queries.pop(call_id), search_status(block)))
    return calls
