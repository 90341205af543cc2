"""Catalog and credential changes made in one OS process reach a gateway in another within a
second, embedded mode (no Redis) included: the routing version lives in the database."""

import openai
import pytest

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.models import UpstreamCredential
from tests.conftest import manage, manage_env
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer
from tests.keys.gateway_processes import gateway_process, within_a_second

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_changes_from_the_cli_and_from_another_process_reach_an_embedded_gateway(
    catalog: None,
) -> None:
    owner = User.objects.create_user("ops@example.com")
    secret = key_mint(owner=owner, spec=KeySpec(name="routing")).secret
    with FakeServer(FakeOpenAI()) as fake, gateway_process(REDIS_URL=None) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)

        def status() -> int:
            try:
                client.chat.completions.create(
                    model="GPT-4o", messages=[{"role": "user", "content": "Hello!"}]
                )
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(
                model="GPT-4o", messages=[{"role": "user", "content": "Hello!"}]
            )
        assert refused.value.status_code == 503
        assert refused.value.code == "no_upstream"

        # The operator CLI, a process of its own without Redis, adds the credential...
        added = manage(
            *("upstream", "add", "openai", "--api-key", fake.app.api_key),
            *("--base-url", f"{fake.url}/v1"),
            env=manage_env(REDIS_URL=None),
        )
        assert added.returncode == 0, added.stderr
        served_after = within_a_second(lambda: status() == 200)

        # ...and a change made in this process (as the admin saves it) stops it again.
        credential = UpstreamCredential.objects.get(pk=int(added.stdout))
        credential.enabled = False
        credential.save()
        refused_after = within_a_second(lambda: status() == 503)
    print(
        f"served {served_after * 1000:.0f} ms after `upstream add`, refused "
        f"{refused_after * 1000:.0f} ms after the credential was disabled"
    )
