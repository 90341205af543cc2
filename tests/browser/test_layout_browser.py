"""Every console page fits a phone (390 px wide) and a laptop (1280 px): the page is no wider
than the window, nothing but code scrolls sideways, and no element sticks out of the window.

"Every page" comes from the URL conf (tests/browser/routes.py). Each route must render as a
page in one of three states: signed out; a new user who signed up with a passkey; a user with
keys, two email addresses, TOTP, recovery codes and a passkey, who signs in with a password and
a code. A route that has no page of its own says why in NOT_PAGES, so a new page is checked
without touching this file, or fails here until someone says how to reach it.
Screenshots of each page at each width go to test-artifacts/layout/ for people to look at.
"""

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from accounts.models import User
from accounts.services import user_body_logging_set
from billing.bodies import CapturedBodies, Excerpt
from billing.body_log import usage_bodies_store
from billing.models import UsageRecord
from billing.services import ledger_credit
from keys.models import ApiKey
from keys.services import key_last_used_record, key_mint, key_revoke
from keys.validation import KeySpec
from proxy.models import ModelCard
from tests.accounts.conftest import PASSWORD, fresh_totp, mail_code
from tests.billing.charges import charge
from tests.browser.conftest import ARTIFACTS, open_page
from tests.browser.routes import Route, console_routes, name_of, route_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE, LAPTOP = 390, 1280
HEIGHT = 844

# Routes without a page of their own to check (a route prefix or a route name), and why.
NOT_PAGES: dict[str, str] = {
    "admin/": "the Django admin: staff only, behind OTP, not reached from the console",
    "favicon.ico": "a redirect to the logo image",
    "accounts/social/": "allauth's old addresses: permanent redirects to pages checked here",
    "accounts/github/": "leaves for GitHub (shown only when it is configured)",
    "accounts/discord/": "leaves for Discord (shown only when it is configured)",
    "account_confirm_login_code": "signing in by a mailed code is off (ACCOUNT_LOGIN_BY_CODE)",
    "mfa_login_webauthn": "the passkey sign-in's JSON endpoint; a plain GET goes to sign-in",
    "mfa_download_recovery_codes": "a text file download",
    "billing:ledger_csv": "a CSV download",
    "logs_export": "a CSV or JSON-lines download",
    "socialaccount_signup": "only during a sign-up through GitHub or Discord",
    "settings_body_logging": "POST only: the settings page's body-logging switch posts there",
}

# In the browser: the page's width, sideways scrollers other than code, elements out of view.
# An element inside one already reported is not reported again.
FIND_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  const reported = [];
  const describe = (el) => {
    const text = (el.innerText || el.value || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + [...el.classList].map((c) => '.' + c).join('') + (text ? ` "${text}"` : '');
  };
  const report = (el, what) => { reported.push(el); problems.push(`${describe(el)} ${what}`); };
  // Visually hidden (clipped to nothing, as the skip link and table heads on phones) is fine.
  const clipped = (el) => {
    for (let at = el; at; at = at.parentElement) {
      if (getComputedStyle(at).clip !== 'auto') return true;
    }
    return false;
  };
  if (document.documentElement.scrollWidth > width) {
    problems.push(`the page is ${document.documentElement.scrollWidth} px wide`);
  }
  for (const el of document.body.querySelectorAll('*')) {
    // Code blocks scroll sideways by design; hidden helpers (skip link) are off-screen by design.
    if (el.parentElement.closest('pre') || el.closest('.skip-link, .visually-hidden')) continue;
    if (reported.some((outer) => outer.contains(el))) continue;
    const style = getComputedStyle(el);
    if (el.tagName !== 'PRE' && ['auto', 'scroll'].includes(style.overflowX)
        && el.scrollWidth > el.clientWidth + 1) {
      report(el, `scrolls sideways (${el.scrollWidth} px in ${el.clientWidth} px)`);
      continue;
    }
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden') continue;
    if ((box.left < -0.5 || box.right > width + 0.5) && !clipped(el)) {
      report(el, `spans ${Math.round(box.left)} to ${Math.round(box.right)} px`);
    }
  }
  return problems;
}"""


@dataclass
class Survey:
    page: Page
    rendered: dict[str, set[str]] = field(default_factory=dict)  # route -> states
    problems: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # what routes that showed no page did
    landings: set[tuple[str, str]] = field(default_factory=set)  # (state, path) checked

    def check(self, state: str, label: str) -> None:
        """The page now shown, at both widths (and the phone's menu opened), screenshots kept."""
        folder = ARTIFACTS / "layout"
        folder.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{state}-{label}".lower()).strip("-")
        self.page.evaluate("window.scrollTo(0, 0)")  # a sticky bar mid-screenshot otherwise
        for width in (PHONE, LAPTOP):
            self.page.set_viewport_size({"width": width, "height": HEIGHT})
            for problem in self.page.evaluate(FIND_OVERFLOW):
                self.problems.append(f"{width} px, {state}, {label}: {problem}")
            self.page.screenshot(path=str(folder / f"{width}-{slug}.png"), full_page=True)
        self.page.set_viewport_size({"width": PHONE, "height": HEIGHT})
        toggle = self.page.locator("[data-nav-toggle]")
        if toggle.is_visible():
            toggle.click()
            for problem in self.page.evaluate(FIND_OVERFLOW):
                self.problems.append(f"{PHONE} px, {state}, {label}, menu open: {problem}")
            toggle.click()

    def checked_here(self, state: str) -> None:
        """Record and check the page the browser shows now (after a flow's step)."""
        path = urlsplit(self.page.url).path
        self.rendered.setdefault(route_of(path), set()).add(state)
        self.check(state, name_of(path))

    def visit(self, state: str, route: Route, path: str) -> None:
        response = self.page.goto(path)
        assert response is not None
        landed = urlsplit(self.page.url).path
        is_html = response.headers.get("content-type", "").startswith("text/html")
        # A 401 is a page too (allauth's "social login failed"); 404 and 405 are not this route's.
        own_page = (
            is_html and route_of(landed) == route.route and response.status in (200, 401, 403)
        )
        if own_page:
            self.rendered.setdefault(route.route, set()).add(state)
        else:
            self.answers.append(f"{state}: {path} -> {response.status} {landed}")
        # Whatever shows must fit too, error pages included; a page some earlier route of
        # this state redirected to is not checked again.
        if is_html and (own_page or (state, landed) not in self.landings):
            self.landings.add((state, landed))
            label = name_of(landed) + ("" if own_page else f" (from {path}, {response.status})")
            self.check(state, label)

    def visit_every_route(self, state: str, arguments: dict[str, dict[str, object]]) -> None:
        for route in console_routes():
            if _not_a_page(route):
                continue
            if route.needs_arguments:
                if route.name not in arguments:
                    continue
                path = reverse(route.name, kwargs=arguments[route.name])
            else:
                path = route.path()
            self.visit(state, route, path)


def _not_a_page(route: Route) -> bool:
    return route.name in NOT_PAGES or any(route.route.startswith(p) for p in NOT_PAGES)


def _with_virtual_authenticator(page: Page) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )


@pytest.fixture
def busy_user(live_gateway: object) -> tuple[User, str]:
    """A user with much to show: a long address, limited, used, expired and revoked keys, TOTP
    and recovery codes. Returns the user and their TOTP secret."""
    email = f"jordan.alexandra.mcallister-whitfield-{uuid.uuid4().hex[:6]}@example-enterprises.com"
    user = User.objects.create_user(email, PASSWORD)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    limited = key_mint(
        owner=user,
        spec=KeySpec(
            name="Production backend (EU region, nightly batch jobs)",
            rpm=600,
            tpm=2_000_000,
            allowed_models=("Claude Sonnet 4.5", "GPT-4o", "Gemini 2.5 Flash"),
            max_request_cost=Decimal("0.25"),
            budget=Decimal("150"),
            allowed_networks=("203.0.113.0/24", "2001:db8::/32"),
            expires_at=timezone.now() + timedelta(days=90),
        ),
    ).key
    key_mint(owner=user, spec=KeySpec(name="expired", expires_at=timezone.now()))
    key_revoke(key=key_mint(owner=user, spec=KeySpec(name="old laptop")).key)
    key_mint(owner=user, spec=KeySpec(name="staging"))
    key_last_used_record(used={limited.pk: timezone.now() - timedelta(minutes=5)})
    ledger_credit(account=user, amount=Decimal("1250.5"), note="Annual prepayment, PO 2026-0042")
    ledger_credit(account=user, amount=Decimal("-0.000123457"), note="Correction " + "x" * 60)
    # This month's spend by model and by key on /billing/, and the budget's share on /keys/.
    for model, cost in (
        ("Claude Sonnet 4.5 (2025-09-29, extended thinking)", "123.456789012"),
        ("GPT-4o", "0.000000001"),
    ):
        charge(
            account_id=user.pk, cost=cost, started_at=timezone.now(), key_id=limited.pk, model=model
        )
    # Body logging on (its switch then says so), and bodies stored for those requests, with
    # lines no phone is wide enough for.
    user_body_logging_set(user=user, enabled=True)
    prompt = b'{"messages": [{"role": "user", "content": "' + b"y" * 3000 + b'"}]}'
    usage_bodies_store(
        bodies=[
            CapturedBodies(
                event_id=record.event_id,
                account_id=user.pk,
                started_us=round(record.started_at.timestamp() * 1_000_000),
                request=Excerpt.of(prompt, len(prompt), 1000),
                response=Excerpt.of(b"data: " + b"z" * 500 + b"\n\n", 508, 1000),
                status=200,
            )
            for record in UsageRecord.objects.filter(account=user)
        ]
    )
    return user, secret


def _sign_up_with_a_passkey(page: Page, survey: Survey) -> User:
    email = f"passkey-{uuid.uuid4().hex[:10]}@example.com"
    page.goto("/accounts/signup/passkey/")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Sign Up").click()
    expect(page.get_by_label("Code")).to_be_visible()
    survey.checked_here("new user")  # the mailed code's page
    page.get_by_label("Code").fill(mail_code(email))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Create Passkey")).to_be_visible()
    survey.checked_here("new user")
    page.get_by_label("Name").fill("Phone")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    return User.objects.get(email=email)


def _set_up_an_authenticator_app(page: Page, survey: Survey, user: User) -> None:
    """A passkey-only user confirms it is them with a mailed code, then sees the TOTP set-up."""
    page.goto(reverse("mfa_activate_totp"))
    expect(page).to_have_url(
        re.compile(re.escape(reverse("account_request_reauthentication_code")))
    )
    page.get_by_role("button", name="Request Code").click()
    expect(page.get_by_label("Code")).to_be_visible()
    survey.checked_here("new user")
    page.get_by_label("Code").fill(mail_code(user.email))
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("mfa_activate_totp")) + "$"))
    survey.checked_here("new user")


def _sign_in_with_password_and_code(page: Page, survey: Survey, user: User, secret: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_label("Code")).to_be_visible()
    survey.checked_here("busy user")  # the second factor's page
    page.get_by_label("Code").fill(fresh_totp(secret))
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def _add_a_passkey(page: Page, survey: Survey) -> None:
    page.goto(reverse("mfa_add_webauthn"))
    if urlsplit(page.url).path == reverse("account_reauthenticate"):
        survey.checked_here("busy user")  # allauth asks for the password again first
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Add Security Key")).to_be_visible()
    survey.checked_here("busy user")
    page.get_by_label("Name").fill("Work laptop with a rather long name")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text("Security key added.")).to_be_visible()


def _create_a_key(page: Page, survey: Survey) -> None:
    page.goto(reverse("keys:new"))
    page.get_by_label("Name").fill("mobile app")
    page.get_by_role("button", name="Create key").click()
    page.locator("#key-reveal").wait_for()
    survey.check("busy user", "keys:new, the new key shown once")


def _arguments(user: User) -> dict[str, dict[str, object]]:
    key = ApiKey.objects.filter(owner=user, revoked_at__isnull=True).first()
    passkey = Authenticator.objects.filter(user=user, type=Authenticator.Type.WEBAUTHN).first()
    arguments: dict[str, dict[str, object]] = {}
    if key is not None:
        for name in ("keys:edit", "keys:rotate", "keys:revoke"):
            arguments[name] = {"key_id": key.pk}
    if passkey is not None:
        for name in ("mfa_edit_webauthn", "mfa_remove_webauthn"):
            arguments[name] = {"pk": passkey.pk}
    record = UsageRecord.objects.filter(account=user).first()
    if record is not None:
        arguments["log_detail"] = {"event_id": record.event_id}
    card = ModelCard.objects.filter(active=True).order_by("pk").first()
    if card is not None:
        arguments["model_detail"] = {"card_id": card.pk}
    return arguments


def _reset_arguments(user: User) -> dict[str, dict[str, object]]:
    token = default_token_generator.make_token(user)
    uid = user_pk_to_url_str(user)
    return {"account_reset_password_from_key": {"uidb36": uid, "key": token}}


def test_every_console_page_fits_a_phone_and_a_laptop(
    browser: Browser, console_url: str, busy_user: tuple[User, str]
) -> None:
    user, secret = busy_user
    # Errors are script errors and CSP refusals; a 404 or 405 is the route's own answer.
    page, errors = open_page(
        browser, console_url, width=PHONE, height=HEIGHT, failed_loads_are_errors=False
    )
    survey = Survey(page)

    survey.visit_every_route("signed out", _reset_arguments(user))

    _with_virtual_authenticator(page)
    new_user = _sign_up_with_a_passkey(page, survey)
    survey.visit_every_route("new user", _arguments(new_user))
    _set_up_an_authenticator_app(page, survey, new_user)
    page.context.clear_cookies()

    _sign_in_with_password_and_code(page, survey, user, secret)
    _add_a_passkey(page, survey)
    # Added after the passkey: allauth adds no authenticator while an address is unverified.
    EmailAddress.objects.create(user=user, email=f"j.{uuid.uuid4().hex[:6]}@example.org")
    _create_a_key(page, survey)
    survey.visit_every_route("busy user", _arguments(user))
    page.context.close()

    never = [
        route.label
        for route in console_routes()
        if not _not_a_page(route) and route.route not in survey.rendered
    ]
    report = []
    if never:
        report.append(
            "Routes that showed no page in any state (reach them in a flow here, give their "
            "arguments in _arguments, or say why in NOT_PAGES): " + ", ".join(never)
        )
        report.append("What the routes that showed no page of their own answered:")
        report.extend(survey.answers)
    report.extend(survey.problems)
    assert report == [], "\n".join(report)
    assert errors == []


def test_the_overflow_check_sees_a_wide_page_and_a_sideways_scroller(
    browser: Browser, console_url: str
) -> None:
    """The check above can fail: a too-wide element and a scrolling box are both reported."""
    page, _errors = open_page(browser, console_url, width=PHONE, height=HEIGHT)
    page.goto("/models/")
    page.evaluate(
        """() => {
          const wide = document.createElement('div');
          wide.id = 'too-wide'; wide.style.width = '600px'; wide.textContent = 'wide';
          const scroller = document.createElement('div');
          scroller.id = 'scroller'; scroller.style.overflowX = 'auto';
          const inner = document.createElement('div');  // CSSOM: the CSP refuses style=""
          inner.style.width = '900px'; inner.textContent = 'inner';
          scroller.append(inner);
          document.querySelector('main').append(wide, scroller);
        }"""
    )
    problems = page.evaluate(FIND_OVERFLOW)
    page.context.close()
    assert any(p.startswith("the page is") for p in problems), problems
    assert any(p.startswith('div#too-wide "wide" spans') for p in problems), problems
    assert any(p.startswith('div#scroller "inner" scrolls sideways') for p in problems), problems
    assert not any("inner" in p and "spans" in p for p in problems), problems  # reported once
