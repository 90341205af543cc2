from decimal import Decimal
from pathlib import Path

import pytest

from proxy.models import CardSource, ModelCard
from proxy.services import catalog_sync
from tests.conftest import manage, manage_env

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "litellm_prices.json"


@pytest.fixture
def shipped_catalog(transactional_db: None) -> None:
    catalog_sync()


def test_import_refreshes_matching_cards_exactly(shipped_catalog: None) -> None:
    result = manage("catalog", "import-litellm", str(FIXTURE), env=manage_env())
    assert result.returncode == 0, result.stderr
    sonnet = ModelCard.objects.get(title="Claude Sonnet 4.5")
    # 3.3e-06 per token in the file -> exactly 3.3 per million (no float rounding).
    assert sonnet.input_price == Decimal("3.3")
    assert sonnet.output_price == Decimal("16.5")
    assert sonnet.cache_read_price == Decimal("0.33")
    assert sonnet.cache_write_price == Decimal("4.125")
    assert sonnet.max_output_tokens == 64000
    assert sonnet.source == CardSource.LITELLM
    flash = ModelCard.objects.get(title="Gemini 2.5 Flash")  # matched through "gemini/" prefix
    assert flash.input_price == Decimal("0.31")
    large = ModelCard.objects.get(title="Mistral Large")
    assert large.input_price == Decimal("0.6")
    assert large.cache_read_price == Decimal("0.6")  # no cache price: the input price
    assert "updated Claude Sonnet 4.5" in result.stdout
    # Entries of other providers or modes, and unknown models, are not added by default.
    assert not ModelCard.objects.filter(upstream_id__in=["new-model-x", "dall-e-3"]).exists()


def test_import_add_new_creates_cards_for_unknown_models(shipped_catalog: None) -> None:
    result = manage("catalog", "import-litellm", str(FIXTURE), "--add-new", env=manage_env())
    assert result.returncode == 0, result.stderr
    card = ModelCard.objects.get(upstream_id="new-model-x")
    assert card.title == "new-model-x"
    assert card.provider == "openai"
    assert card.input_price == Decimal("0.7")
    assert card.context_length == 64000
    assert card.supports_tools is True
    assert not ModelCard.objects.filter(upstream_id="dall-e-3").exists()  # image mode: not routable
    assert not ModelCard.objects.filter(upstream_id__contains="bedrock").exists()


def test_import_dry_run_changes_nothing(shipped_catalog: None) -> None:
    before = list(ModelCard.objects.values_list("title", "input_price", "source"))
    result = manage(
        "catalog",
        "import-litellm",
        str(FIXTURE),
        "--add-new",
        "--dry-run",
        env=manage_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "would have updated Claude Sonnet 4.5" in result.stdout
    assert list(ModelCard.objects.values_list("title", "input_price", "source")) == before


def test_bootstrap_leaves_imported_prices_alone(shipped_catalog: None) -> None:
    manage("catalog", "import-litellm", str(FIXTURE), env=manage_env())
    result = catalog_sync()
    assert "Claude Sonnet 4.5" in result.skipped
    assert ModelCard.objects.get(title="Claude Sonnet 4.5").input_price == Decimal("3.3")
