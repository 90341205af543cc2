"""Strict local fakes of GitHub's and Discord's OAuth2 endpoints, served on 127.0.0.1.

They follow each provider's documented wire format and refuse what the real ones refuse: an
unknown client or wrong secret, a code used twice or for another client or redirect URI, a
missing or bad token, a JSON token request to Discord, a GitHub API call without User-Agent.
(GitHub answers token errors with 200 and an `error` field, as the real one does.)
"""

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class FakeUser:
    id: int
    login: str
    email: str
    verified: bool = True
    name: str = "Ada Lovelace"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    scope: str
    user: FakeUser


@dataclass
class FakeProvider:
    """One provider's registered app, the user who will consent, and what happened."""

    name: str  # "github" or "discord"
    client_id: str
    client_secret: str
    user: FakeUser
    codes: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("client_id") != self.client_id:
            return HTTPStatus.NOT_FOUND, {}, b"unknown client_id"
        redirect_uri = query.get("redirect_uri", "")
        if urlsplit(redirect_uri).path != f"/accounts/{self.name}/login/callback/":
            return HTTPStatus.BAD_REQUEST, {}, b"redirect_uri is not registered for this app"
        if self.name == "discord" and query.get("response_type") != "code":
            return HTTPStatus.BAD_REQUEST, {}, b"response_type must be code"
        code = secrets.token_hex(10)
        self.codes[code] = Grant(self.client_id, redirect_uri, query.get("scope", ""), self.user)
        self.log.append("authorize")
        target = f"{redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return HTTPStatus.FOUND, {"Location": target}, b""


class Handler(BaseHTTPRequestHandler):
    server: "FakeOAuthServer"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def reply(self, status: int, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[-1] for k, v in parse_qs(raw).items()}

    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def bearer(self, *schemes: str) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token if scheme.lower() in schemes else ""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        github, discord = self.server.github, self.server.discord
        if path == "/login/oauth/authorize":
            self.reply(*reversed_args(github.authorize(self.query())))
        elif path == "/api/oauth2/authorize":
            self.reply(*reversed_args(discord.authorize(self.query())))
        elif path in ("/user", "/user/emails"):
            self.github_api(path)
        elif path == "/api/users/@me":
            grant = discord.tokens.get(self.bearer("bearer"))
            if grant is None:
                self.reply(HTTPStatus.UNAUTHORIZED, {"message": "401: Unauthorized", "code": 0})
                return
            discord.log.append("me")
            me: dict[str, Any] = {
                "id": str(grant.user.id),
                "username": grant.user.login,
                "discriminator": "0",
                "global_name": grant.user.name,
                "avatar": None,
                "mfa_enabled": False,
                "locale": "en-US",
            }
            if "email" in grant.scope.split():
                me.update(email=grant.user.email, verified=grant.user.verified)
            self.reply(HTTPStatus.OK, me)
        else:
            self.reply(HTTPStatus.NOT_FOUND, {"message": "Not Found"})

    def github_api(self, path: str) -> None:
        github = self.server.github
        if not self.headers.get("User-Agent"):
            self.reply(HTTPStatus.FORBIDDEN, {"message": "Request forbidden: missing User-Agent"})
            return
        grant = github.tokens.get(self.bearer("token", "bearer"))
        if grant is None:
            self.reply(HTTPStatus.UNAUTHORIZED, {"message": "Bad credentials"})
            return
        user = grant.user
        github.log.append(path)
        if path == "/user":
            self.reply(
                HTTPStatus.OK,
                {
                    "login": user.login,
                    "id": user.id,
                    "node_id": f"U_{user.id}",
                    "type": "User",
                    "name": user.name,
                    "email": None,  # the public email is usually unset
                    "html_url": f"https://github.com/{user.login}",
                    "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}",
                },
            )
        elif "user:email" not in grant.scope.replace(",", " ").split():
            self.reply(HTTPStatus.NOT_FOUND, {"message": "Not Found"})
        else:
            emails = [
                {
                    "email": user.email,
                    "primary": True,
                    "verified": user.verified,
                    "visibility": "private",
                },
                {
                    "email": f"{user.id}+{user.login}@users.noreply.github.com",
                    "primary": False,
                    "verified": True,
                    "visibility": None,
                },
            ]
            self.reply(HTTPStatus.OK, emails)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/login/oauth/access_token":
            self.github_token()
        elif path == "/api/oauth2/token":
            self.discord_token()
        else:
            self.reply(HTTPStatus.NOT_FOUND, {"message": "Not Found"})

    def github_token(self) -> None:
        github = self.server.github
        params = {**self.query(), **self.form()}

        def answer(payload: dict[str, str]) -> None:
            if "application/json" in self.headers.get("Accept", ""):
                self.reply(HTTPStatus.OK, payload)
            else:  # GitHub's default: a form-encoded body
                body = urlencode(payload).encode()
                self.reply(
                    HTTPStatus.OK, body, {"Content-Type": "application/x-www-form-urlencoded"}
                )

        if params.get("client_id") != github.client_id or (
            params.get("client_secret") != github.client_secret
        ):
            answer({"error": "incorrect_client_credentials"})
            return
        grant = github.codes.pop(params.get("code", ""), None)
        if grant is None or grant.client_id != github.client_id:
            answer({"error": "bad_verification_code"})
            return
        if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
            answer({"error": "redirect_uri_mismatch"})
            return
        token = "gho_" + secrets.token_hex(16)
        github.tokens[token] = grant
        github.log.append("token")
        answer({"access_token": token, "token_type": "bearer", "scope": grant.scope})

    def discord_token(self) -> None:
        discord = self.server.discord
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            self.reply(HTTPStatus.BAD_REQUEST, {"error": "unsupported_grant_type"})
            return
        params = self.form()
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        basic = self.bearer("basic")
        if basic:
            client_id, _, client_secret = base64.b64decode(basic).decode().partition(":")
        if client_id != discord.client_id or client_secret != discord.client_secret:
            self.reply(HTTPStatus.UNAUTHORIZED, {"error": "invalid_client"})
            return
        if params.get("grant_type") != "authorization_code":
            self.reply(HTTPStatus.BAD_REQUEST, {"error": "unsupported_grant_type"})
            return
        grant = discord.codes.pop(params.get("code", ""), None)
        if grant is None or params.get("redirect_uri") != grant.redirect_uri:
            self.reply(
                HTTPStatus.BAD_REQUEST,
                {"error": "invalid_grant", "error_description": 'Invalid "code" in request.'},
            )
            return
        token = secrets.token_urlsafe(24)
        discord.tokens[token] = grant
        discord.log.append("token")
        self.reply(
            HTTPStatus.OK,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 604800,
                "refresh_token": secrets.token_urlsafe(24),
                "scope": grant.scope,
            },
        )


def reversed_args(result: tuple[int, dict[str, str], bytes]) -> tuple[int, bytes, dict[str, str]]:
    status, headers, body = result
    return status, body, headers


class FakeOAuthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, github: FakeProvider, discord: FakeProvider) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.github = github
        self.discord = discord
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, name="fake-oauth", daemon=True)

    def __enter__(self) -> "FakeOAuthServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(5)
