"""Scrubbing text that came from an upstream before a client (or a log line) sees it.

`scrub` is for what a client is shown: an upstream's validation message keeps what the client
can act on (which field, the limit, the unknown model's name) and loses what identifies the
gateway's accounts and machinery: key fragments, organisation and project ids, URLs, hosts and
ports, IP addresses, file paths, e-mail addresses and exception texts. `log_safe` is for the
operator's log: everything stays but a credential's secret and anything shaped like a key.

Each rule names what its matches must contain (strings in lower case, or a quick pattern): a
rule whose strings are all absent is skipped, so a message pays only for the shapes it may hold.
"""

import re
from collections.abc import Callable

_HEX = "[0-9A-Fa-f]"
_FILE_EXTENSION = (
    r"(?:py|pyc|so|js|ts|go|rs|java|rb|php|sock|pem|key|crt|env|log|ya?ml|toml|ini|cfg|conf)"
)
Replacement = str | Callable[[re.Match[str]], str]
Needles = tuple[str, ...] | re.Pattern[str]
Rule = tuple[Needles, re.Pattern[str], Replacement]


def _rule(needles: Needles, pattern: str, replacement: Replacement, flags: int = 0) -> Rule:
    return needles, re.compile(pattern, flags), replacement


def _mixed(match: re.Match[str]) -> str:
    """A long run of letters and digits, both: an id or a key (a word is not; a number is not)."""
    run = match.group()
    return "[id]" if any(c.isdigit() for c in run) and not run.isdigit() else run


# Key shapes, of ours and of every provider: OpenAI sk-, sk-proj-, sk-svcacct- (also as OpenAI
# masks them, sk-abc***...xyz), Anthropic sk-ant-, Google AIza, our tb-, bearer tokens.
_KEYS: tuple[Rule, ...] = (
    _rule(("bearer",), r"\bBearer\s+[^\s\"',;]{6,}", "Bearer [key]", re.I),
    _rule(
        ("key", "token", "secret", "passw", "authorization"),
        r"\b((?:x-)?(?:api[_-]?key|access[_-]?token|secret|password|authorization))"
        r"(\"?\s*[=:]\s*\"?)[^\s\"',;&]+",
        r"\1\2[key]",
        re.I,
    ),
    _rule(("sk-",), r"\bsk-[\w*.…-]*[\w*…]", "[key]"),
    _rule(("aiza",), r"\bAIza[\w-]{8,}", "[key]"),
    _rule(("tb-",), r"\btb-[\w-]{8,}", "[key]"),
)

_INTERNALS: tuple[Rule, ...] = (
    # A traceback and all after it (its last line is the exception's own text).
    _rule(("traceback",), r"Traceback \(most recent call last\):.*", "[details]", re.S),
    _rule(("file ",), r"\bFile \"[^\"]*\", line \d+(?:, in \S+)?", "[details]"),
    # A URL, less the sentence's punctuation after it.
    _rule(("://",), r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]]", "[url]", re.I),
    *_KEYS,
    _rule(("org", "user"), r"\b(?:org|user)[-_][A-Za-z0-9]{8,}\b", "[organization]"),
    _rule(("proj_",), r"\bproj_[A-Za-z0-9]{8,}\b", "[project]"),
    _rule(("projects/",), r"\bprojects/[\w-]+", "projects/[project]"),
    _rule(
        ("project",),
        r"\b(project(?:[ _](?:id|number))?)([\s:=]+)\d{5,}\b",
        r"\1\2[project]",
        re.I,
    ),
    _rule(("req_",), r"\breq_[A-Za-z0-9]{8,}\b", "[id]"),
    _rule(("-",), rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b", "[id]"),
    _rule(("@",), r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "[email]"),
    # IPv6 bracketed ([::1]:8080), full, or compressed (fe80::1); then IPv4, with a port or not.
    _rule(("[",), r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?", "[address]"),
    _rule((":",), rf"(?<![\w:])(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}(?![\w:])", "[address]"),
    _rule(
        ("::",),
        rf"(?<![\w:])(?=[0-9A-Fa-f:]*{_HEX})(?:{_HEX}{{1,4}}:)*{_HEX}{{0,4}}::"
        rf"(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}})*)?(?![\w:])",
        "[address]",
    ),
    _rule((".",), r"\b(?:\d{1,3}\.){3}\d{1,3}\b(?::\d{1,5}\b)?", "[address]"),
    # host:port (no underscore: a hostname has none, a field such as max_tokens:5 does).
    _rule(
        re.compile(r"[A-Za-z0-9]:\d\d"),
        r"(?<![\w.-])(?=[A-Za-z0-9.-]*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
        r":\d{2,5}\b",
        "[host]",
    ),
    _rule(
        re.compile(
            r"localhost|\.(?:com|net|org|io|ai|dev|app|cloud|internal|local|localdomain|lan|corp|"
            r"svc|cluster|xyz)\b"
        ),
        # Not a protobuf type's name (type.googleapis.com/google.ai.…), which is public.
        r"(?<![\w.-])(?!type\.googleapis\.com/)(?:localhost|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
        r"(?:com|net|org|io|ai|dev|app|cloud|internal|local|localdomain|lan|corp|svc|cluster|"
        r"xyz))\b(?![\w-]|\.\w)",
        "[host]",
    ),
    # File paths: under a file system's usual roots, or ending in a file's extension.
    _rule(
        ("/", "~", ":\\"),
        r"(?<![\w/])(?:/(?:usr|home|opt|var|tmp|etc|srv|app|root|lib|lib64|mnt|data|"
        r"workspace|Users|proc|run|private|code|src)\b|~/|[A-Za-z]:\\)[^\s\"'`,;)]*",
        "[path]",
    ),
    _rule(
        re.compile(rf"\.{_FILE_EXTENSION}\b"),
        rf"(?<![\w./\\-])[\w.-]*[/\\][\w./\\-]*\.{_FILE_EXTENSION}\b",
        "[path]",
    ),
    # Exception reprs and texts: <x object at 0x…>, ConnectError('…'), httpx.ReadError: …
    _rule((" at 0x",), r"<[\w.]+(?: object)? at 0x[0-9A-Fa-f]+>", "[exception]"),
    _rule(
        ("error(", "exception(", "exit(", "interrupt("),
        r"\b(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt)"
        r"\((?:[^()]|\([^()]*\))*\)",
        "[exception]",
    ),
    _rule(
        ("error", "exception"),
        r"\b(?:[a-z_]\w*\.)+[A-Z]\w*(?:Error|Exception)\b(?::[^\n]*)?",
        "[exception]",
    ),
    _rule(
        ("error: ", "exception: "),
        r"(?:^|(?<=[\s(]))[A-Z]\w*(?:Error|Exception): [^\n]*",
        "[exception]",
        re.M,
    ),
    _rule(("errno",), r"\[Errno -?\d+\][^\n]*", "[exception]"),
    _rule(("0x",), r"\b0x[0-9A-Fa-f]{6,}\b", "[address]"),
    # What is left that looks like an id or a key: a long run of letters and digits, both.
    _rule((), r"\b[A-Za-z0-9]{24,}\b", _mixed),
)

CLIENT_CHARS = 400


def _apply(rules: tuple[Rule, ...], text: str) -> str:
    lowered = text.lower()
    for needles, pattern, replacement in rules:
        if (
            needles.search(text) is not None
            if isinstance(needles, re.Pattern)
            else not needles or any(needle in lowered for needle in needles)
        ):
            text = pattern.sub(replacement, text)
    return text


def scrub(text: str) -> str:
    """An upstream's message as a client may see it; see the module's docstring."""
    text = " ".join(_apply(_INTERNALS, text).split())
    if len(text) > CLIENT_CHARS:
        text = text[:CLIENT_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def log_safe(text: str, secret: str = "") -> str:
    """For the log: all detail kept except the credential's secret and anything key-shaped."""
    if len(secret) >= 4:
        text = text.replace(secret, "[credential]")
    return _apply(_KEYS, text)
