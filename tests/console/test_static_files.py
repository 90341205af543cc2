import warnings

import httpx
import pytest

from tokenbyte.asgi import django_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_static_files_stream_asynchronously_under_asgi() -> None:
    transport = httpx.ASGITransport(app=django_application)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            response = await client.get("/static/vendor/htmx-2.0.11.min.js")
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["content-length"]) > 10_000
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
