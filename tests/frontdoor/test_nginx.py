"""The shipped nginx config (tokenbyte/deploy/nginx/tokenbyte.conf), run by Debian's nginx on
loopback in front of a live gateway: TLS, unbuffered streams, the client's address forwarded
(and a forged one dropped), refusals in the API's shape, limits in step with the gateway's."""

import contextlib
import datetime
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from pytest_django.fixtures import Settings as SettingsWrapper

from accounts.models import User
from keys.services import key_mint
from keys.validation import KeySpec
from proxy.services import credential_upsert
from tests.conftest import REPO, LiveServer, free_port
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.server import FakeServer

SITE = REPO / "tokenbyte" / "deploy" / "nginx" / "tokenbyte.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists() and os.environ.get("TOKENBYTE_REQUIRE_SERVICES") != "1",
    reason="needs Debian's nginx (`make nginx-deps` installs nginx-light)",
)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def site_config(gateway_port: int, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """The shipped file with its EDIT lines pointed at this test's ports and certificate."""
    text = SITE.read_text()
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{gateway_port};",
        "    listen 80;\n": f"    listen 127.0.0.1:{http_port};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl http2;\n": f"    listen 127.0.0.1:{https_port} ssl http2;\n",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/letsencrypt/live/tokenbyte.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/tokenbyte.example.com/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"the shipped config no longer has {old!r} once"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    url: str
    http_url: str
    cert: Path

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls(), timeout=20)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, f"nginx exited: {log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nginx did not listen on {port}: {log.read_text()}")


@contextlib.contextmanager
def running_nginx(tmp_path: Path, gateway: LiveServer) -> Iterator[Nginx]:
    cert, key = self_signed(tmp_path)
    http_port, https_port = free_port(), free_port()
    (tmp_path / "tokenbyte.conf").write_text(
        site_config(gateway.port, http_port, https_port, cert, key)
    )
    temp = "\n".join(
        f"    {kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would run as nobody, who cannot enter pytest's private tmp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'} warn;\n"
        "events { worker_connections 512; }\n"
        f"http {{\n    access_log off;\n{temp}\n    include {tmp_path / 'tokenbyte.conf'};\n}}\n"
    )
    command = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    command += ["-e", str(tmp_path / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*command, "-g", "daemon off;"])
    try:
        wait_for_port(https_port, process, tmp_path / "error.log")
        yield Nginx(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", cert)
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def fake_openai() -> Iterator[FakeServer]:
    fake = FakeOpenAI()
    fake.chunk_delay = 0.3  # a model writing slowly
    with FakeServer(fake) as server:
        yield server


@pytest.fixture
def behind_nginx(
    settings: SettingsWrapper, catalog: None, fake_openai: FakeServer, tmp_path: Path
) -> Iterator[tuple[LiveServer, Nginx]]:
    """The gateway as the README runs it behind nginx: nginx's address is the one it believes."""
    settings.FORWARDED_ALLOW_IPS = ["127.0.0.1"]
    credential_upsert(
        provider="openai", api_key="sk-fake-openai", base_url=f"{fake_openai.url}/v1", name="fake"
    )
    with LiveServer() as gateway:
        gateway.wait_for_routing(lambda routing: bool(routing.cards))
        with running_nginx(tmp_path, gateway) as nginx:
            yield gateway, nginx


def key_for(networks: tuple[str, ...] = ()) -> str:
    owner, _ = User.objects.get_or_create(email="nginx@example.com")
    return key_mint(owner=owner, spec=KeySpec(name="n", allowed_networks=networks)).secret


def test_nginx_serves_the_api_and_the_console_over_tls(
    behind_nginx: tuple[LiveServer, Nginx],
) -> None:
    _, nginx = behind_nginx
    with nginx.client() as client:
        assert client.get("/v1/models").json()["data"]
        landing = client.get("/")
        assert landing.status_code == HTTPStatus.OK
        # X-Forwarded-Proto reached Django: the page shows the https base URL.
        assert "https://127.0.0.1/v1" in landing.text
    redirect = httpx.get(f"{nginx.http_url}/v1/models", headers={"Host": "tokenbyte.example.com"})
    assert redirect.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert redirect.headers["location"] == "https://tokenbyte.example.com/v1/models"


def test_nginx_relays_a_stream_as_the_model_writes_it(
    behind_nginx: tuple[LiveServer, Nginx],
) -> None:
    _, nginx = behind_nginx
    request = {"model": "GPT-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    arrivals = []
    with (
        nginx.client() as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json=request,
            headers={"Authorization": f"Bearer {key_for()}"},
        ) as response,
    ):
        assert response.status_code == HTTPStatus.OK
        arrivals = [
            (time.monotonic(), line) for line in response.iter_lines() if line.startswith("data: ")
        ]
    assert arrivals[-1][1] == "data: [DONE]"
    # Buffered, every event would arrive at once at the end; relayed, they come as written,
    # 0.3 s apart (half that is margin enough). The config says `proxy_buffering off` and the
    # gateway sends `X-Accel-Buffering: no` too: either one suffices.
    content = [at for at, line in arrivals if '"content"' in line]
    assert len(content) >= 3
    assert content[-1] - content[0] >= 0.15 * (len(content) - 1)


def test_nginx_gives_the_gateway_the_peer_address_not_a_forged_one(
    behind_nginx: tuple[LiveServer, Nginx],
) -> None:
    _, nginx = behind_nginx
    forged = {"X-Forwarded-For": "10.1.2.3"}
    with nginx.client() as client:
        office = {"Authorization": f"Bearer {key_for(('10.0.0.0/8',))}", **forged}
        refused = client.get("/v1/models", headers=office)
        assert refused.status_code == HTTPStatus.FORBIDDEN
        assert "127.0.0.1" in refused.json()["error"]["message"]
        here = {"Authorization": f"Bearer {key_for(('127.0.0.0/8',))}", **forged}
        assert client.get("/v1/models", headers=here).status_code == HTTPStatus.OK


def test_metrics_without_a_token_are_not_served_through_nginx(
    behind_nginx: tuple[LiveServer, Nginx],
) -> None:
    gateway, nginx = behind_nginx
    with nginx.client() as client:
        proxied = client.get("/metrics")  # the gateway's peer is nginx, on loopback
    assert proxied.status_code == HTTPStatus.FORBIDDEN
    assert proxied.json()["error"]["code"] == "metrics_forbidden"
    assert httpx.get(f"{gateway.url}/metrics").status_code == HTTPStatus.OK  # the host itself


def test_nginx_refuses_oversized_heads_and_bodies_in_the_api_shape(
    behind_nginx: tuple[LiveServer, Nginx],
) -> None:
    _, nginx = behind_nginx
    with nginx.client() as client:
        huge = client.get("/v1/models", headers={"X-Huge": "h" * 20_000})
        assert huge.status_code == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        assert huge.json()["error"]["code"] == "headers_too_large"
    # A body declared too large is refused before it is sent (httpx will not send such a lie).
    port = int(nginx.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
        nginx.tls().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (21 << 20)
        )
        answer = b""
        while b"}}" not in answer:
            chunk = tls.recv(65536)
            assert chunk, answer
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert orjson.loads(body)["error"]["code"] == "request_too_large"


def nginx_value(directive: str) -> str:
    match = re.search(rf"^\s*{directive}\s+([^;]+);", SITE.read_text(), re.MULTILINE)
    assert match, directive
    return match.group(1)


def seconds(value: str) -> float:
    return float(value.removesuffix("s"))


def test_the_config_is_in_step_with_the_gateways_defaults() -> None:
    # The gateway's own defaults (settings_test changes none of these).
    assert nginx_value("client_max_body_size") == "20m"
    assert settings.TOKENBYTE_MAX_BODY_BYTES == 20 * 1024 * 1024
    count, size = nginx_value("large_client_header_buffers").split()
    assert int(count) * int(size.removesuffix("k")) * 1024 == settings.TOKENBYTE_MAX_HEADER_BYTES
    assert seconds(nginx_value("client_header_timeout")) == settings.TOKENBYTE_HEADER_TIMEOUT
    # nginx must drop a kept-alive connection before the gateway would.
    upstream_idle = re.search(
        r"upstream tokenbyte \{[^}]*keepalive_timeout (\w+);", SITE.read_text()
    )
    assert upstream_idle
    assert seconds(upstream_idle.group(1)) < settings.TOKENBYTE_KEEP_ALIVE_TIMEOUT
    # The gateway answers its own upstream timeouts (504) before nginx would give up.
    assert seconds(nginx_value("proxy_read_timeout")) > max(
        settings.TOKENBYTE_FIRST_BYTE_TIMEOUT, settings.TOKENBYTE_REASONING_FIRST_BYTE_TIMEOUT
    )
