"""A user made by `manage.py mintkey` signs in to the console and sees the key (issue 12), the
way the command's stderr says: through its one-time link (`--link`), or through "Forgot your
password?". In Debian Chromium driven by Playwright, against the whole app in a thread."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD, mail_code, mail_link
from tests.conftest import manage, manage_env

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def mintkey(email: str, console_url: str, *flags: str) -> str:
    """Runs the command as an operator does; returns its stderr line (the secret is checked)."""
    result = manage(
        *("mintkey", email, "--name", "from the CLI", "--site-url", console_url, *flags),
        env=manage_env(),
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"tb-[\w-]{43}\n?", result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def choose_password_then_sign_in(page: Page, email: str) -> None:
    expect(page.get_by_role("heading", name="Change Password")).to_be_visible()
    page.get_by_label("New Password", exact=True).fill(PASSWORD)
    page.get_by_label("New Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Change Password").click()
    expect(page.get_by_text("Your password is now changed.")).to_be_visible()

    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In", exact=True).click()
    # The address was never proven: the first sign-in mails a code (mandatory verification).
    page.get_by_label("Code").fill(mail_code(email))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.goto("/keys/")
    expect(page.get_by_text("from the CLI")).to_be_visible()


def test_the_one_time_link_lets_a_cli_user_choose_a_password_and_see_the_key(
    page: Page, console_url: str
) -> None:
    email = "linked-user@example.com"
    line = mintkey(email, console_url, "--link")
    link = line.rsplit(" ", 1)[-1]
    assert link.startswith(f"{console_url}/accounts/password/reset/key/")
    page.goto(link)
    choose_password_then_sign_in(page, email)

    page.context.clear_cookies()
    page.goto(link)  # one time only: the password it set retired it
    expect(page.get_by_role("heading", name="Bad Token")).to_be_visible()


def test_forgot_password_lets_a_cli_user_choose_a_password_and_see_the_key(
    page: Page, console_url: str
) -> None:
    email = "reset-user@example.com"
    line = mintkey(email, console_url)
    reset_page = f"{console_url}/accounts/password/reset/"
    assert reset_page in line
    page.goto(reset_page)
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Reset My Password").click()
    page.goto(mail_link(email, "/accounts/password/reset/key/"))
    choose_password_then_sign_in(page, email)
