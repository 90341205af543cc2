from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from proxy.catalog.specs import read_catalog_file
from proxy.models import CardSource, ModelCard, UpstreamCredential
from proxy.services import bootstrap_run, credential_upsert
from tests.conftest import manage, manage_env

pytestmark = pytest.mark.django_db


def card_rows() -> list[tuple[object, ...]]:
    return list(
        ModelCard.objects.order_by("title").values_list(
            "id",
            "title",
            "provider",
            "upstream_id",
            "aliases",
            "input_price",
            "output_price",
            "cache_read_price",
            "cache_write_price",
            "context_length",
            "max_output_tokens",
        )
    )


def test_shipped_catalog_has_the_mainstream_models_at_list_prices() -> None:
    specs = {spec.title: spec for spec in read_catalog_file()}
    assert len(specs) >= 25
    assert {spec.provider for spec in specs.values()} >= {
        "openai",
        "anthropic",
        "gemini",
        "mistral",
    }
    expected = {
        "GPT-4o": ("2.50", "10.00", "1.25", None),
        "GPT-4o mini": ("0.15", "0.60", "0.075", None),
        "GPT-4.1": ("2.00", "8.00", "0.50", None),
        "GPT-5": ("1.25", "10.00", "0.125", None),
        "GPT-5 mini": ("0.25", "2.00", "0.025", None),
        "o3": ("2.00", "8.00", "0.50", None),
        "Claude Sonnet 4.5": ("3.00", "15.00", "0.30", "3.75"),
        "Claude Haiku 4.5": ("1.00", "5.00", "0.10", "1.25"),
        "Claude Opus 4.1": ("15.00", "75.00", "1.50", "18.75"),
        "Gemini 2.5 Pro": ("1.25", "10.00", "0.125", None),
        "Gemini 2.5 Flash": ("0.30", "2.50", "0.03", None),
        "Mistral Large": ("0.50", "1.50", None, None),
        "Mistral Small": ("0.15", "0.60", None, None),
        "text-embedding-3-small": ("0.02", None, None, None),
    }
    for title, (inp, out, cache_read, cache_write) in expected.items():
        spec = specs[title]
        assert spec.input_price == Decimal(inp), title
        if out is not None:
            assert spec.output_price == Decimal(out), title
        if cache_read is not None:
            assert spec.cache_read_price == Decimal(cache_read), title
        if cache_write is not None:
            assert spec.cache_write_price == Decimal(cache_write), title
    assert specs["text-embedding-3-small"].type == "embedding"


def test_bootstrap_twice_gives_the_same_rows() -> None:
    env = {"openai": {"api_key": "sk-proj-first-key-0001", "base_url": ""}}
    first = bootstrap_run(provider_env=env)
    assert len(first.catalog.created) >= 25
    rows = card_rows()
    credentials = list(
        UpstreamCredential.objects.values_list("id", "provider", "name", "api_key_last4")
    )

    second = bootstrap_run(provider_env=env)
    assert second.catalog.created == []
    assert second.catalog.updated == []
    assert card_rows() == rows
    assert (
        list(UpstreamCredential.objects.values_list("id", "provider", "name", "api_key_last4"))
        == credentials
    )
    assert second.credentials[0][1] is False  # not created again


def test_bootstrap_follows_a_changed_env_key_and_keeps_operator_edits() -> None:
    bootstrap_run(provider_env={"openai": {"api_key": "sk-old-key-aaaa", "base_url": ""}})
    card = ModelCard.objects.get(title="GPT-4o")
    card.input_price = Decimal("9.99")
    card.source = CardSource.MANUAL  # what an admin edit does
    card.save()

    result = bootstrap_run(provider_env={"openai": {"api_key": "sk-new-key-bbbb", "base_url": ""}})
    assert "GPT-4o" in result.catalog.skipped
    assert ModelCard.objects.get(title="GPT-4o").input_price == Decimal("9.99")
    credential = UpstreamCredential.objects.get(provider="openai", name="env")
    assert credential.get_api_key() == "sk-new-key-bbbb"
    assert UpstreamCredential.objects.count() == 1


def test_raw_upstream_key_is_not_stored() -> None:
    raw = "sk-ant-api03-SUPERSECRETVALUE-xyz9"
    credential, _ = credential_upsert(provider="anthropic", api_key=raw)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM proxy_upstreamcredential WHERE id = %s", [credential.pk])
        row = cursor.fetchone()
    stored = " ".join(str(value) for value in row)
    assert raw not in stored
    assert "SUPERSECRET" not in stored
    assert credential.api_key_last4 == "xyz9"
    assert UpstreamCredential.objects.get(pk=credential.pk).get_api_key() == raw


def test_bootstrap_command_prints_a_summary() -> None:
    call_command("bootstrap", stdout=(out := __import__("io").StringIO()))
    assert "catalog:" in out.getvalue()
    assert ModelCard.objects.filter(title="Claude Sonnet 4.5").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upstream", "add", "nosuch", "--api-key", "k"], "unknown provider 'nosuch'"),
        (["upstream", "add", "openai"], "--api-key"),
        (
            ["upstream", "add", "openai", "--api-key", "k", "--priority", "high"],
            "invalid int value",
        ),
        (["upstream", "add", "openai", "--api-key", "has space"], "no whitespace"),
        (
            ["upstream", "add", "openai", "--api-key", "k", "--base-url", "ftp://x"],
            "invalid base URL",
        ),
        (["upstream", "add", "openai-compatible", "--api-key", "k"], "needs --base-url"),
        (
            ["upstream", "add", "openai", "--api-key", "k", "--weight", "0"],
            "weight must be 1 or more",
        ),
        (["catalog", "import-litellm", "/nonexistent.json"], "cannot read LiteLLM prices"),
    ],
)
def test_cli_bad_arguments_fail_with_one_line_and_change_nothing(
    transactional_db: None, args: list[str], message: str
) -> None:
    before = UpstreamCredential.objects.count(), ModelCard.objects.count()
    result = manage(*args, env=manage_env())
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert (UpstreamCredential.objects.count(), ModelCard.objects.count()) == before


def test_upstream_add_prints_the_id_and_is_idempotent(transactional_db: None) -> None:
    env = manage_env()
    args = [
        "upstream",
        "add",
        "openai-compatible",
        "--api-key",
        "sk-local-1234",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--priority",
        "3",
        "--no-verify",  # nothing listens there (tests/proxy/test_upstream_verify.py checks keys)
    ]
    first = manage(*args, env=env)
    second = manage(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == second.stdout.strip()
    credential = UpstreamCredential.objects.get(pk=int(first.stdout))
    assert (credential.provider, credential.priority, credential.base_url) == (
        "openai-compatible",
        3,
        "http://127.0.0.1:9/v1",
    )
    assert UpstreamCredential.objects.count() == 1
    listed = manage("upstream", "list", env=env).stdout
    assert "…1234" in listed
    assert "sk-local-1234" not in listed


def test_catalog_add_can_bind_a_card_to_named_upstreams(transactional_db: None) -> None:
    env = manage_env()
    manage(
        "upstream",
        "add",
        "openai-compatible",
        "--name",
        "gpu-box",
        "--api-key",
        "k1",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--no-verify",
        env=env,
        check=True,
    )
    args = [
        "catalog",
        "add",
        "Local Qwen",
        "--provider",
        "openai-compatible",
        "--upstream-id",
        "qwen2.5-7b",
        "--context-length",
        "32768",
        "--max-output-tokens",
        "4096",
        "--input-price",
        "0.02",
        "--output-price",
        "0.05",
    ]
    missing = manage(*args, "--upstream", "nope", env=env)
    assert missing.returncode != 0
    assert "no openai-compatible upstream named nope" in missing.stderr
    assert not ModelCard.objects.filter(title="Local Qwen").exists()
    created = manage(*args, "--upstream", "gpu-box", env=env)
    assert created.returncode == 0, created.stderr
    card = ModelCard.objects.get(pk=int(created.stdout))
    assert [c.name for c in card.credentials.all()] == ["gpu-box"]
    assert card.output_price == Decimal("0.05")
