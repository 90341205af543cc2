"""`manage.py mintkey` as an operator runs it (CONTRACT.md §3), in a subprocess."""

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.utils import user_pk_to_url_str

from accounts.models import User
from keys.models import ApiKey
from tests.conftest import manage, manage_env

pytestmark = pytest.mark.django_db(transaction=True)


def mintkey(*args: str) -> tuple[int, str, str]:
    # HOST, PORT and CSRF_TRUSTED_ORIGINS unset: links point where `make run` serves.
    env = manage_env(HOST=None, PORT=None, CSRF_TRUSTED_ORIGINS=None)
    result = manage("mintkey", *args, env=env)
    return result.returncode, result.stdout, result.stderr


def test_mintkey_creates_the_user_and_prints_only_the_secret(catalog: None) -> None:
    code, out, err = mintkey(
        "New.Person@Example.com",
        "--name",
        "ci",
        "--rpm",
        "60",
        "--tpm",
        "90000",
        "--models",
        "GPT-4o, claude-sonnet-4-5",
        "--max-request-cost",
        "0.5",
        "--budget",
        "20",
        "--budget-period",
        "daily",
        "--expires",
        "2031-06-01",
    )
    assert code == 0, err
    assert "has no password yet" in err  # how they sign in: see the tests below
    lines = out.splitlines()
    assert len(lines) == 1
    secret = lines[0]
    assert secret.startswith("tb-")
    assert len(secret) >= 35
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    assert not user.has_usable_password()
    key = ApiKey.objects.get()
    assert key.owner == user
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert (key.name, key.rpm, key.tpm) == ("ci", 60, 90000)
    assert key.allowed_models == ["GPT-4o", "Claude Sonnet 4.5"]
    assert (key.max_request_cost, key.budget, key.budget_period) == (
        Decimal("0.5"),
        Decimal("20"),
        "daily",
    )
    assert key.expires_at == datetime(2031, 6, 1, tzinfo=UTC)


def test_mintkey_reuses_an_existing_user_and_accepts_zoned_and_past_expiry(catalog: None) -> None:
    owner = User.objects.create_user("dev@example.com", "correct-horse-battery")
    code, _, err = mintkey("DEV@example.com", "--expires", "2030-01-01T12:00:00+02:00")
    assert code == 0, err
    assert err == ""  # they sign in with their password as before
    code, _, err = mintkey("dev@example.com", "--expires", "2001-02-03T04:05")
    assert code == 0, err
    assert User.objects.count() == 1
    keys = list(ApiKey.objects.order_by("pk"))
    assert [key.owner for key in keys] == [owner, owner]
    assert keys[0].expires_at == datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert keys[1].expires_at == datetime(2001, 2, 3, 4, 5, tzinfo=UTC)
    assert keys[1].is_expired  # a past date mints an already-expired key
    assert keys[1].name == "CLI key"
    assert owner.has_usable_password()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "GPT-4o,Claude Sonet 4.5"], "--models: Unknown model 'Claude Sonet 4.5'"),
        (["--rpm", "ten"], "'ten' is not a whole number"),
        (["--rpm", "0"], "--rpm: Requests per minute must be a whole number from 1"),
        (["--tpm", "-5"], "--tpm: Tokens per minute must be a whole number from 1"),
        (["--budget", "lots"], "'lots' is not an amount of US dollars"),
        (["--budget", "-1"], "--budget: The budget must be a positive amount"),
        (["--max-request-cost", "NaN"], "--max-request-cost: The per-request cost cap must be"),
        (["--budget-period", "yearly"], "invalid choice: 'yearly'"),
        (["--expires", "next tuesday"], "'next tuesday' is not an ISO 8601 date"),
        (["--expires", "2030-02-30"], "'2030-02-30' is not an ISO 8601 date"),
        (["--name", ""], "--name: A key needs a name"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--link", "--site-url", "tokenbyte.example.com"], "is not an http(s):// address"),
    ],
)
def test_bad_arguments_give_one_stderr_line_and_create_nothing(
    catalog: None, args: list[str], message: str
) -> None:
    code, out, err = mintkey("someone@example.com", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not User.objects.exists()
    assert not ApiKey.objects.exists()


def test_a_bad_email_is_refused(catalog: None) -> None:
    code, out, err = mintkey("not-an-email")
    assert (code, out) == (2, "")
    assert "'not-an-email' is not an email address" in err
    assert len(err.strip().splitlines()) == 1
    assert not User.objects.exists()


def test_a_new_user_is_told_on_stderr_how_to_sign_in(catalog: None) -> None:
    code, out, err = mintkey("newcomer@example.com")
    assert code == 0, err
    assert out.strip().startswith("tb-")
    assert len(out.splitlines()) == 1  # the secret alone on stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("newcomer@example.com has no password yet.")
    # allauth's "Forgot your password?" page where `make run` serves, and the --link option.
    assert "http://127.0.0.1:8000/accounts/password/reset/ (a link is mailed to them)" in lines[0]
    assert "mintkey --link" in lines[0]
    assert out.strip() not in err


def test_link_prints_a_one_time_password_link_on_stderr(catalog: None) -> None:
    code, out, err = mintkey(
        "linked@example.com", "--link", "--site-url", "https://tokenbyte.example.com/"
    )
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert out.strip() not in err
    match = re.fullmatch(
        r"One-time sign-in link for linked@example\.com \(choose a password there; it works "
        r"once, for 3 days; the first sign-in mails a code that confirms their address\): "
        r"https://tokenbyte\.example\.com/accounts/password/reset/key/"
        r"(?P<uid>[0-9a-z]+)-(?P<token>\S+)/",
        err.strip(),
    )
    assert match, err
    user = User.objects.get(email="linked@example.com")
    assert match["uid"] == user_pk_to_url_str(user)
    # allauth's own token: good now, dead once a password is set.
    assert default_token_generator.check_token(user, match["token"])
    user.set_password("correct-horse-battery-staple-42")
    user.save()
    assert not default_token_generator.check_token(user, match["token"])
