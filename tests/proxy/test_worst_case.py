"""The worst case a request is held for (pure: no database, no gateway), and this process's own
holds (embedded mode, or Redis unreachable) in both billing modes."""

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import orjson

from proxy.gateway.local_holds import LocalHolds
from proxy.gateway.pipeline.ceiling import (
    LONG_CONTEXT_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    OutputLimit,
    worst_case,
)
from tests.proxy.translation_helpers import SONNET  # $3 in, $15 out, $3.75 cache write

MILLION = Decimal(1_000_000)


def test_a_text_prompt_is_bounded_by_its_bytes_at_the_cache_write_price() -> None:
    raw = orjson.dumps({"messages": [{"role": "user", "content": "héllo " * 100}]})
    worst = worst_case(SONNET, raw, OutputLimit(1000))
    assert worst.prompt_tokens == len(raw) + PROMPT_OVERHEAD_TOKENS
    assert worst.cost() == (worst.prompt_tokens * Decimal("3.75") + 1000 * 15) / MILLION


def test_without_a_limit_the_cards_maximum_output_counts_n_times() -> None:
    raw = b'{"messages": []}'
    worst = worst_case(SONNET, raw, OutputLimit(None, choices=3))
    assert worst.output_tokens == 32000
    assert worst.cost() == (worst.prompt_tokens * Decimal("3.75") + 3 * 32000 * 15) / MILLION


def test_images_and_documents_are_bounded_by_the_context_window() -> None:
    for part in (
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ):
        raw = orjson.dumps({"messages": [{"role": "user", "content": [part]}]})
        assert worst_case(SONNET, raw, OutputLimit(10)).prompt_tokens == 200000
    long = worst_case(SONNET, b'{"type": "image"}', OutputLimit(10), long_context=True)
    assert long.prompt_tokens == LONG_CONTEXT_TOKENS


def test_no_prompt_is_bounded_above_the_context_window() -> None:
    raw = b"x" * 300_000
    assert worst_case(SONNET, raw, OutputLimit(10)).prompt_tokens == 200000


def test_fitting_lowers_to_what_the_ceiling_covers_or_gives_up_below_the_minimum() -> None:
    worst = worst_case(SONNET, b"{}", OutputLimit(1000))
    prompt = worst.prompt_tokens * Decimal("3.75") / MILLION
    assert worst.fitting(Decimal(1)) == 1000  # the whole limit fits
    ceiling = prompt + 500 * Decimal(15) / MILLION
    assert worst.fitting(ceiling) == 500
    assert worst.fitting(prompt + 15 * Decimal(15) / MILLION) is None  # under 16 tokens
    assert worst.fitting(prompt / 2) is None
    embedding = worst_case(SONNET, b"{}", None)
    assert embedding.fitting(prompt) == 0
    assert embedding.fitting(prompt / 2) is None


@dataclass(frozen=True)
class Figures:
    balance: Decimal
    credit_limit: Decimal = Decimal(0)
    version: int = 1
    spent: Decimal = Decimal(0)


def holds(figures: Figures, *, postpaid: bool = False) -> LocalHolds:
    async def read(account_id: int, key_id: int, window: str | None) -> Figures:
        return figures

    return LocalHolds(read, postpaid=postpaid)


def test_local_holds_never_take_more_than_the_balance_and_free_it_when_released() -> None:
    local = holds(Figures(Decimal("1.00")))

    async def run() -> None:
        first = await local.reserve("a", 1, 7, None, None, Decimal("0.60"))
        second = await local.reserve("b", 1, 7, None, None, Decimal("0.60"))
        assert first.held
        assert not second.held
        assert second.available == Decimal("0.40")
        local.release("a")
        assert (await local.reserve("b", 1, 7, None, None, Decimal("0.60"))).held

    asyncio.run(run())


def test_postpaid_lets_the_balance_go_down_to_the_credit_limit() -> None:
    figures = Figures(Decimal("-2.00"), credit_limit=Decimal("5.00"))

    async def run() -> None:
        assert not (await holds(figures).reserve("a", 1, 7, None, None, Decimal("1"))).held
        postpaid = holds(figures, postpaid=True)
        verdict = await postpaid.reserve("a", 1, 7, None, None, Decimal("2.50"))
        assert verdict.held
        assert verdict.available == Decimal("0.50")
        assert not (await postpaid.reserve("b", 1, 7, None, None, Decimal("0.51"))).held

    asyncio.run(run())


def test_a_budget_counts_what_was_spent_and_what_is_held() -> None:
    local = holds(Figures(Decimal(100), spent=Decimal("0.70")))

    async def run() -> None:
        first = await local.reserve("a", 1, 7, Decimal(1), "2026-12", Decimal("0.20"))
        assert first.held
        assert first.budget_left == Decimal("0.10")
        second = await local.reserve("b", 1, 7, Decimal(1), "2026-12", Decimal("0.20"))
        assert not second.held
        assert second.budget_left == Decimal("0.10")

    asyncio.run(run())


def test_a_charge_stays_held_until_recorded_here_then_is_in_the_balance() -> None:
    from billing.reservations import BalanceState, RecordedBatch

    local = holds(Figures(Decimal("1.00")))

    async def run() -> None:
        assert (await local.reserve("a", 1, 7, None, None, Decimal("0.90"))).held
        local.finished("a", Decimal("0.40"))  # served: charged 0.40, not yet recorded
        assert not (await local.reserve("b", 1, 7, None, None, Decimal("0.61"))).held
        recorded = RecordedBatch(
            recorded=1,
            event_ids={1: ["a"]},
            balances={1: BalanceState(Decimal("0.60"), Decimal(0), version=2)},
            spends={},
            accounts_of_keys={},
        )
        local.recorded(recorded)
        verdict = await local.reserve("b", 1, 7, None, None, Decimal("0.60"))
        assert verdict.held  # the 0.40 counts once: in the balance, no longer held
        assert verdict.available == 0

    asyncio.run(run())


def test_a_figure_read_before_a_recorded_batch_does_not_undo_it() -> None:
    from billing.reservations import BalanceState, RecordedBatch

    local = holds(Figures(Decimal("1.00"), version=1))
    batch = RecordedBatch(1, {1: []}, {1: BalanceState(Decimal("0.25"), Decimal(0), 5)}, {}, {})

    async def run() -> None:
        local.recorded(batch)
        local._balances[1].read_at = -1e9  # stale: the next reserve reads the database again
        verdict = await local.reserve("c", 1, 7, None, None, Decimal("0.30"))
        assert not verdict.held  # the read (version 1) lost to the recorded version 5
        assert verdict.available == Decimal("0.25")

    asyncio.run(run())


def test_a_prompt_whose_bound_passes_a_long_context_threshold_is_held_at_that_tier() -> None:
    from dataclasses import replace

    from billing.pricing import LongContext, Prices, Rates

    long = Rates(Decimal(6), Decimal("22.50"), Decimal("0.6"), Decimal("7.50"), Decimal(12))
    prices = Prices(
        Decimal(3),
        Decimal(15),
        Decimal("0.3"),
        Decimal("3.75"),
        Decimal(6),
        long_context=(LongContext(200_000, long),),
    )
    tiered = replace(SONNET, prices=prices, context_length=1_000_000)
    short = worst_case(tiered, b"x" * 1000, OutputLimit(100))
    assert (short.input_price, short.output_price) == (Decimal(6), Decimal(15))  # 1h cache write
    big = worst_case(tiered, b"x" * 300_000, OutputLimit(100))
    assert (big.input_price, big.output_price) == (Decimal(12), Decimal("22.50"))
