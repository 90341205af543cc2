"""Refreshing the shipped catalog file from a LiteLLM price table (`catalog import-litellm
--write-catalog`): house-style titles for new models, dated snapshots as aliases, exact prices."""

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from proxy.catalog.litellm_prices import read_litellm_file
from proxy.catalog.litellm_tiers import litellm_tiers
from proxy.catalog.refresh import refresh_catalog
from proxy.catalog.specs import CatalogDataError, read_catalog_file
from proxy.catalog.titles import snapshot_base, title_for
from tests.conftest import manage, manage_env

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "litellm_refresh.json"
TODAY = date(2026, 12, 2)
SONNET: dict[str, Any] = {
    "title": "Claude Sonnet 4.5",
    "provider": "anthropic",
    "upstream_id": "claude-sonnet-4-5",
    "type": "chat",
    "context_length": 200000,
    "max_output_tokens": 64000,
    "capabilities": ["tools", "vision"],
    "pricing": {"input": "3.00", "output": "15.00", "cache_read": "0.30", "cache_write": "3.75"},
    "aliases": ["claude-sonnet-4-5-20250929"],
}
SMALL: dict[str, Any] = {
    "title": "Mistral Small",
    "provider": "mistral",
    "upstream_id": "mistral-small-latest",
    "type": "chat",
    "context_length": 131072,
    "max_output_tokens": 32768,
    "capabilities": ["tools"],
    "pricing": {"input": "0.15", "output": "0.60"},
}
RETIRED: dict[str, Any] = {  # a card the table no longer lists
    "title": "Claude Opus 4.1",
    "provider": "anthropic",
    "upstream_id": "claude-opus-4-1",
    "type": "chat",
    "context_length": 200000,
    "max_output_tokens": 32000,
    "capabilities": ["tools"],
    "pricing": {"input": "15.00", "output": "75.00"},
}


def base_document() -> dict[str, Any]:
    return {"_comment": "test", "version": 1, "models": copy.deepcopy([SONNET, RETIRED, SMALL])}


def by_title(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {model["title"]: model for model in document["models"]}


@pytest.mark.parametrize(
    ("upstream_id", "title"),
    [
        ("claude-opus-5-5", "Claude Opus 5.5"),
        ("claude-haiku-5-5", "Claude Haiku 5.5"),
        ("claude-fable-5-1-20260101", "Claude Fable 5.1"),
        ("gpt-6.1-sol", "GPT-6.1 Sol"),
        ("gpt-5.4-mini", "GPT-5.4 mini"),
        ("gpt-5-search-api", "GPT-5 Search API"),
        ("o4-mini", "o4-mini"),
        ("text-embedding-3-large", "text-embedding-3-large"),
        ("gemini-3.5-flash-lite", "Gemini 3.5 Flash-Lite"),
        ("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview"),
        ("gemini-flash-latest", "Gemini Flash"),
        ("gemma-4-26b-a4b-it", "Gemma 4 26B A4B"),
        ("mistral-large-4", "Mistral Large 4"),
        ("mistral-large-latest", "Mistral Large"),
        ("ministral-14b-latest", "Ministral 14B"),
        ("mistral-medium-3-5", "Mistral Medium 3.5"),
    ],
)
def test_titles_follow_the_house_style(upstream_id: str, title: str) -> None:
    assert title_for(upstream_id) == title


@pytest.mark.parametrize(
    ("upstream_id", "base"),
    [
        ("claude-sonnet-5-5-20260514", "claude-sonnet-5-5"),
        ("gpt-5.5-2026-04-23", "gpt-5.5"),
        ("deep-research-preview-04-2026", "deep-research-preview"),
        ("mistral-large-2512", "mistral-large"),
        ("mistral-large-4-0", "mistral-large-4"),
        ("gpt-4.1", None),
        ("claude-opus-5-5", None),
        ("text-embedding-ada-002", None),
    ],
)
def test_dated_snapshots_are_recognised(upstream_id: str, base: str | None) -> None:
    assert snapshot_base(upstream_id) == base


def test_refresh_adds_current_models_and_aliases_their_snapshots() -> None:
    document = base_document()
    report = refresh_catalog(document, read_litellm_file(FIXTURE), today=TODAY)
    assert document == base_document()  # the input is left alone
    models = by_title(report.document)

    # 4e-06 per token is exactly 4.00 per million; the 1-hour cache write has its own price.
    assert models["Claude Opus 9.5"] == {
        "title": "Claude Opus 9.5",
        "provider": "anthropic",
        "upstream_id": "claude-opus-9-5",
        "type": "chat",
        "context_length": 1000000,
        "max_output_tokens": 128000,
        "capabilities": ["tools", "vision", "json", "reasoning"],
        "pricing": {
            "input": "4.00",
            "output": "20.00",
            "cache_read": "0.20",
            "cache_write": "5.00",
            "cache_write_1h": "8.00",
        },
        "aliases": ["claude-opus-9-5-20990101"],
    }
    # A future shutdown date is still current; a snapshot names its model's card.
    assert models["GPT-9.1 Sol"]["aliases"] == ["gpt-9.1-sol-2099-03-01"]
    assert models["GPT-9.1 Sol"]["pricing"] == {
        "input": "2.00",
        "output": "10.00",
        "cache_read": "0.10",
    }
    assert models["GPT-9.1 mini"]["pricing"] == {"input": "0.75", "output": "4.50"}
    # Snapshots of a model without an entry of its own: the newest one is the card.
    assert models["Claude Fable 9.1"]["upstream_id"] == "claude-fable-9-1-20990202"
    assert models["Claude Fable 9.1"]["aliases"] == ["claude-fable-9-1-20980101"]
    # "gemini/x" is Google AI Studio's entry and wins over a bare "x" at other prices.
    flash = models["Gemini 9.5 Flash-Lite Preview"]
    assert flash["pricing"] == {"input": "0.30", "output": "2.50", "cache_read": "0.03"}
    assert models["Gemini Embedding 9"]["type"] == "embedding"
    assert models["Gemini Embedding 9"]["max_output_tokens"] is None
    large = models["Mistral Large 9"]
    assert (large["max_output_tokens"], large["aliases"]) == (1048576, ["mistral-large-9-0"])
    assert large["pricing"] == {"input": "0.68", "output": "2.09", "cache_read": "0.068"}

    assert set(report.added) == {
        "Claude Opus 9.5",
        "Claude Fable 9.1",
        "GPT-9.1 Sol",
        "GPT-9.1 mini",
        "Gemini 9.5 Flash-Lite Preview",
        "Gemini Embedding 9",
        "Mistral Large 9",
    }
    assert ("mistral-small-2901", "Mistral Small") in report.aliased  # via mistral-small-latest
    skipped = dict(report.skipped)
    assert skipped["gpt-8"] == "shut down on 2020-10-23"
    assert skipped["gpt-9-pro-agent"] == "not served on chat completions"
    assert skipped["ft:gpt-9.1-mini"] == "a fine-tuning price, not a model"
    assert skipped["gpt-9-cyber"] == "the price table gives no context or output limit"
    assert skipped["gemini-exp-2001"] == "experimental"
    assert skipped["lyria-9-pro-preview"] == "does not answer in text"
    assert skipped["mistral-small"] == "Mistral Small has that title at other prices"
    named = {m["upstream_id"] for m in report.document["models"]} | {
        alias for m in report.document["models"] for alias in m.get("aliases", [])
    }
    assert not named & {"gpt-9-codex", "gemini-9.5-pro", "mistral-audio-9", "gpt-8"}


def test_refresh_updates_existing_cards_and_keeps_their_titles_and_aliases() -> None:
    report = refresh_catalog(base_document(), read_litellm_file(FIXTURE), today=TODAY)
    models = by_title(report.document)
    # Refreshed from the table (exactly: 3.3e-06 -> 3.30), though its shutdown date is past.
    assert models["Claude Sonnet 4.5"] == {
        **SONNET,
        "capabilities": ["tools", "vision", "reasoning"],
        "pricing": {
            "input": "3.30",
            "output": "16.50",
            "cache_read": "0.33",
            "cache_write": "4.125",
        },
    }
    assert models["Mistral Small"]["aliases"] == ["mistral-small-2901"]
    # Listed only under its snapshot, now its alias; never from "mistral-small" (other prices).
    assert models["Mistral Small"]["pricing"] == SMALL["pricing"]
    assert models["Mistral Small"]["context_length"] == 262144
    assert models["Claude Opus 4.1"] == RETIRED
    assert report.updated == ["Claude Sonnet 4.5", "Mistral Small"]
    assert [m["provider"] for m in report.document["models"]] == sorted(
        (m["provider"] for m in report.document["models"]),
        key=["anthropic", "mistral", "openai", "gemini"].index,
    )  # new cards join their provider's group; new providers' cards follow


def test_refresh_is_idempotent() -> None:
    entries = read_litellm_file(FIXTURE)
    once = refresh_catalog(base_document(), entries, today=TODAY)
    twice = refresh_catalog(once.document, entries, today=TODAY)
    assert twice.document == once.document
    assert (twice.updated, twice.added, twice.aliased) == ([], [], [])


def test_refresh_leaves_out_a_title_another_provider_has() -> None:
    document = base_document()
    document["models"].append({**RETIRED, "title": "Claude Opus 9.5", "upstream_id": "x"})
    document["models"][-1]["provider"] = "openai"
    report = refresh_catalog(document, read_litellm_file(FIXTURE), today=TODAY)
    assert ("claude-opus-9-5", "Claude Opus 9.5 has that title at other prices") in report.skipped
    assert "claude-opus-9-5" not in {m["upstream_id"] for m in report.document["models"]}


def test_refresh_refuses_a_catalog_whose_cards_share_a_name() -> None:
    document = base_document()
    document["models"][1]["aliases"] = ["claude-sonnet-4-5-20250929"]  # Sonnet's alias too
    with pytest.raises(CatalogDataError, match="claude-sonnet-4-5-20250929"):
        refresh_catalog(document, read_litellm_file(FIXTURE), today=TODAY)


def test_write_catalog_command_rewrites_the_file_and_dry_run_leaves_it(
    tmp_path: Path, transactional_db: None
) -> None:
    target = tmp_path / "catalog.json"
    target.write_text(json.dumps(base_document(), indent=1))
    before = target.read_bytes()
    env = manage_env()
    dry = manage(
        "catalog",
        "import-litellm",
        str(FIXTURE),
        "--write-catalog",
        str(target),
        "--dry-run",
        env=env,
    )
    assert dry.returncode == 0, dry.stderr
    assert "would have added Claude Opus 9.5" in dry.stdout
    assert target.read_bytes() == before

    done = manage(
        "catalog",
        "import-litellm",
        str(FIXTURE),
        "--write-catalog",
        str(target),
        "--explain",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "added Claude Opus 9.5" in done.stdout
    assert "added alias claude-opus-9-5-20990101 to Claude Opus 9.5" in done.stdout
    assert "left out gpt-8: shut down on 2020-10-23" in done.stdout
    assert "7 added" in done.stdout.splitlines()[-1]
    specs = {spec.title: spec for spec in read_catalog_file(target)}
    assert specs["GPT-9.1 Sol"].aliases == ("gpt-9.1-sol-2099-03-01",)
    assert str(specs["Claude Sonnet 4.5"].cache_write_price) == "4.125000"


def test_write_catalog_command_fails_in_one_line_on_a_bad_catalog(
    tmp_path: Path, transactional_db: None
) -> None:
    target = tmp_path / "catalog.json"
    target.write_text('{"models": "none"}')
    result = manage(
        "catalog", "import-litellm", str(FIXTURE), "--write-catalog", str(target), env=manage_env()
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{target}: expected an object with a 'models' list" in lines[0]
    assert target.read_text() == '{"models": "none"}'


def test_openai_models_that_search_get_the_responses_web_search_price() -> None:
    """OpenAI's `web_search` tool is $10 per 1,000 calls on every model; LiteLLM's own figure
    for models that do not reason is the older preview's $25, not taken. Search models keep
    their chat search price; a model that does not search gets none."""
    preview_price = {"search_context_size_medium": "0.025"}
    assert litellm_tiers(
        "openai", "gpt-4.1", {"search_context_cost_per_query": preview_price}, "t"
    )["server_tools"] == {"web_search": "0.01"}
    assert litellm_tiers("openai", "gpt-5.6-cyber", {"supports_web_search": True}, "t")[
        "server_tools"
    ] == {"web_search": "0.01"}
    search_model = {"search_context_cost_per_query": {"search_context_size_medium": "0.035"}}
    assert litellm_tiers("openai", "gpt-4o-search-preview", search_model, "t")["server_tools"] == {
        "web_search": "0.035"
    }
    assert "server_tools" not in litellm_tiers("openai", "gpt-4o", {}, "t")
    assert "server_tools" not in litellm_tiers(
        "mistral", "mistral-large", {"supports_web_search": True}, "t"
    )
