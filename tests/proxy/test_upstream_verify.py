"""`manage.py upstream add` checks a new key with one call to the provider's model list first
(CONTRACT.md §3), against each provider's strict fake, in a subprocess as an operator runs it."""

import pytest

from proxy.models import UpstreamCredential
from tests.conftest import manage, manage_env
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.mistral_api import FakeMistral
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeAPI, FakeServer

pytestmark = pytest.mark.django_db(transaction=True)

# provider, its fake, the base URL's path (as each SDK writes it), the models path, the header
# that carries the key and how it carries it.
PROVIDERS = [
    pytest.param(
        "openai", FakeOpenAI, "/v1", "/v1/models", "authorization", "Bearer ", id="openai"
    ),
    pytest.param(
        "openai-compatible",
        FakeOpenAI,
        "/v1",
        "/v1/models",
        "authorization",
        "Bearer ",
        id="openai-compatible",
    ),
    pytest.param(
        "mistral", FakeMistral, "", "/v1/models", "authorization", "Bearer ", id="mistral"
    ),
    pytest.param("anthropic", FakeAnthropic, "", "/v1/models", "x-api-key", "", id="anthropic"),
    pytest.param("gemini", FakeGemini, "", "/v1beta/models", "x-goog-api-key", "", id="gemini"),
]


def add(*args: str) -> tuple[int, str, list[str]]:
    result = manage("upstream", "add", *args, env=manage_env())
    return result.returncode, result.stdout, result.stderr.strip().splitlines()


@pytest.mark.parametrize(
    ("provider", "fake_class", "base_path", "models_path", "header", "scheme"), PROVIDERS
)
def test_a_key_the_provider_rejects_is_refused_in_one_line_and_not_stored(
    provider: str,
    fake_class: type[FakeAPI],
    base_path: str,
    models_path: str,
    header: str,
    scheme: str,
) -> None:
    with FakeServer(fake_class()) as fake:
        code, out, err = add(
            provider, "--api-key", "sk-wrong-0000", "--base-url", fake.url + base_path
        )
        assert code != 0
        assert out == ""
        assert len(err) == 1, err
        assert f"{provider} at {fake.url}{base_path} rejected this API key" in err[0]
        assert "sk-wrong-0000" not in err[0]
        assert not UpstreamCredential.objects.exists()
        assert [(r.method, r.path, r.headers[header]) for r in fake.app.received] == [
            ("GET", models_path, scheme + "sk-wrong-0000")
        ]


@pytest.mark.parametrize(
    ("provider", "fake_class", "base_path", "models_path", "header", "scheme"), PROVIDERS
)
def test_a_key_the_provider_accepts_is_stored_after_one_models_call(
    provider: str,
    fake_class: type[FakeAPI],
    base_path: str,
    models_path: str,
    header: str,
    scheme: str,
) -> None:
    with FakeServer(app := fake_class()) as fake:
        key: str = app.api_key  # every fake has the one key it accepts
        code, out, err = add(provider, "--api-key", key, "--base-url", fake.url + base_path)
        assert code == 0, err
        assert err == []
        credential = UpstreamCredential.objects.get(pk=int(out))
        assert (credential.provider, credential.get_api_key()) == (provider, key)
        assert [(r.method, r.path, r.headers[header]) for r in fake.app.received] == [
            ("GET", models_path, scheme + key)
        ]


def test_an_unreachable_provider_is_a_clear_error_and_no_verify_skips_the_check() -> None:
    unreachable = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    code, out, err = add("openai", "--api-key", "sk-offline-1234", "--base-url", unreachable)
    assert code != 0
    assert out == ""
    assert len(err) == 1, err
    assert f"could not reach openai at {unreachable}" in err[0]
    assert "--no-verify" in err[0]
    assert not UpstreamCredential.objects.exists()

    code, out, err = add(
        "openai", "--api-key", "sk-offline-1234", "--base-url", unreachable, "--no-verify"
    )
    assert code == 0, err
    assert UpstreamCredential.objects.get(pk=int(out)).base_url == unreachable


def test_another_answer_is_not_a_rejection_but_the_key_is_not_stored() -> None:
    # The OpenAI base URL without its /v1: the models list is not where the gateway would look.
    with FakeServer(FakeOpenAI()) as fake:
        code, out, err = add("openai", "--api-key", fake.app.api_key, "--base-url", fake.url)
    assert code != 0
    assert out == ""
    assert len(err) == 1, err
    assert "could not check the key" in err[0]
    assert "HTTP 404" in err[0]
    assert "--no-verify" in err[0]
    assert not UpstreamCredential.objects.exists()


@pytest.mark.parametrize("flags", [[], ["--no-verify"]], ids=["verified", "no-verify"])
def test_the_readmes_placeholder_is_not_a_key(flags: list[str]) -> None:
    code, out, err = add("anthropic", "--api-key", "sk-ant-…", *flags)
    assert code != 0
    assert out == ""
    assert len(err) == 1, err
    assert "printable ASCII" in err[0]
    assert not UpstreamCredential.objects.exists()
