"""Scrubbing text that came from an upstream before a client (or a log line) sees it.

`scrub` is for what a client is shown: an upstream's validation message keeps what the client
can act on (which field, the limit, the unknown model's name) and loses what identifies the
gateway's accounts and machinery: key fragments, organisation and project ids, URLs, hosts and
ports, IP addresses, file paths, e-mail addresses and exception texts. `log_safe` is for the
operator's log: everything stays but a credential's secret and anything shaped like a key.
"""

import re

_HEX = "[0-9A-Fa-f]"

# Key shapes, of ours and of every provider: OpenAI sk-, sk-proj-, sk-svcacct- (also as OpenAI
# masks them, sk-abc***...xyz), Anthropic sk-ant-, Google AIza, our tb-, bearer tokens.
_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bBearer\s+[^\s\"',;]{6,}", re.I), "Bearer [key]"),
    (
        re.compile(
            r"\b((?:x-)?(?:api[_-]?key|access[_-]?token|secret|password|authorization))"
            r"(\"?\s*[=:]\s*\"?)[^\s\"',;&]+",
            re.I,
        ),
        r"\1\2[key]",
    ),
    (re.compile(r"\bsk-[\w*.…-]*[\w*…]"), "[key]"),
    (re.compile(r"\bAIza[\w-]{8,}"), "[key]"),
    (re.compile(r"\btb-[\w-]{8,}"), "[key]"),
)

_INTERNALS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A traceback and all after it (its last line is the exception's own text).
    (re.compile(r"Traceback \(most recent call last\):.*", re.S), "[details]"),
    (re.compile(r"\bFile \"[^\"]*\", line \d+(?:, in \S+)?"), "[details]"),
    # A URL, less the sentence's punctuation after it.
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]*[^\s\"'<>`.,;:!?)\]]", re.I), "[url]"),
    *_KEYS,
    (re.compile(r"\b(?:org|user)[-_][A-Za-z0-9]{8,}\b"), "[organization]"),
    (re.compile(r"\bproj_[A-Za-z0-9]{8,}\b"), "[project]"),
    (re.compile(r"\bprojects/[\w-]+"), "projects/[project]"),
    (re.compile(r"\b(project(?:[ _](?:id|number))?)([\s:=]+)\d{5,}\b", re.I), r"\1\2[project]"),
    (re.compile(r"\breq_[A-Za-z0-9]{8,}\b"), "[id]"),
    (re.compile(rf"\b{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}\b"), "[id]"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    # IPv6 bracketed ([::1]:8080), full, or compressed (fe80::1); then IPv4, with a port or not.
    (re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d{1,5})?"), "[address]"),
    (re.compile(rf"(?<![\w:])(?:{_HEX}{{1,4}}:){{7}}{_HEX}{{1,4}}(?![\w:])"), "[address]"),
    (
        re.compile(
            rf"(?<![\w:])(?=[0-9A-Fa-f:]*{_HEX})(?:{_HEX}{{1,4}}:)*{_HEX}{{0,4}}::"
            rf"(?:{_HEX}{{1,4}}(?::{_HEX}{{1,4}})*)?(?![\w:])"
        ),
        "[address]",
    ),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b(?::\d{1,5}\b)?"), "[address]"),
    # host:port (no underscore: a hostname has none, a field such as max_tokens:5 does).
    (
        re.compile(
            r"(?<![\w.-])(?=[A-Za-z0-9.-]*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
            r":\d{2,5}\b"
        ),
        "[host]",
    ),
    (
        re.compile(
            # Not a protobuf type's name (type.googleapis.com/google.ai.…), which is public.
            r"(?<![\w.-])(?!type\.googleapis\.com/)(?:localhost|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
            r"(?:com|net|org|io|ai|dev|app|cloud|internal|local|localdomain|lan|corp|svc|cluster|"
            r"xyz))\b(?![\w-]|\.\w)"
        ),
        "[host]",
    ),
    # File paths: under a file system's usual roots, or ending in a file's extension.
    (
        re.compile(
            r"(?<![\w/])(?:/(?:usr|home|opt|var|tmp|etc|srv|app|root|lib|lib64|mnt|data|"
            r"workspace|Users|proc|run|private|code|src)\b|~/|[A-Za-z]:\\)[^\s\"'`,;)]*"
        ),
        "[path]",
    ),
    (
        re.compile(
            r"[\w.-]*[/\\][\w./\\-]*\.(?:py|pyc|so|js|ts|go|rs|java|rb|php|sock|pem|key|crt|"
            r"env|log|ya?ml|toml|ini|cfg|conf)\b"
        ),
        "[path]",
    ),
    # Exception reprs and texts: <x object at 0x…>, ConnectError('…'), httpx.ReadError: …
    (re.compile(r"<[\w.]+(?: object)? at 0x[0-9A-Fa-f]+>"), "[exception]"),
    (
        re.compile(
            r"\b(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt)"
            r"\((?:[^()]|\([^()]*\))*\)"
        ),
        "[exception]",
    ),
    (re.compile(r"\b(?:[a-z_]\w*\.)+[A-Z]\w*(?:Error|Exception)\b(?::[^\n]*)?"), "[exception]"),
    (re.compile(r"(?:^|(?<=[\s(]))[A-Z]\w*(?:Error|Exception): [^\n]*", re.M), "[exception]"),
    (re.compile(r"\[Errno -?\d+\][^\n]*"), "[exception]"),
    (re.compile(r"\b0x[0-9A-Fa-f]{6,}\b"), "[address]"),
    # What is left that looks like an id or a key: a long run of letters and digits, both.
    (re.compile(r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{24,}\b"), "[id]"),
)

CLIENT_CHARS = 400


def scrub(text: str) -> str:
    """An upstream's message as a client may see it; see the module's docstring."""
    for pattern, replacement in _INTERNALS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if len(text) > CLIENT_CHARS:
        text = text[:CLIENT_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def log_safe(text: str, secret: str = "") -> str:
    """For the log: all detail kept except the credential's secret and anything key-shaped."""
    if len(secret) >= 4:
        text = text.replace(secret, "[credential]")
    for pattern, replacement in _KEYS:
        text = pattern.sub(replacement, text)
    return text
