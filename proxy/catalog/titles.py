"""House-style titles for upstream model ids, and the base id of a dated snapshot.

The house style follows the providers' own names: "Claude Opus 5.5", "GPT-5.4 mini",
"Gemini 3.5 Flash-Lite", "Mistral Large 4". A "-latest" pointer is named for its family
("mistral-large-latest" is "Mistral Large"), as the shipped Mistral cards always were.
"""

import re

# Where the rules below would not give the provider's own name.
TITLES = {
    "chat-latest": "ChatGPT Latest",
    "text-embedding-ada-002-v2": "text-embedding-ada-002",  # the name its answers carry
    "open-mistral-nemo": "Mistral Nemo",
    "deepseek-v4-1-flash-1017": "DeepSeek-V4.1 Flash 1017",
    "gemini-gemma-2-27b-it": "Gemma 2 27B",
    "gemini-gemma-2-9b-it": "Gemma 2 9B",
    "deep-research-preview": "Gemini Deep Research Preview",
    "deep-research-max-preview": "Gemini Deep Research Max Preview",
}
_WORDS = {
    "api": "API",
    "cli": "CLI",
    "er": "ER",
    "fim": "FIM",
    "glm": "GLM",
    "gpt": "GPT",
    "zai": "Z.ai",
    "customtools": "Custom Tools",
    "mini": "mini",  # OpenAI writes its sizes in lower case: "GPT-5 mini"
    "nano": "nano",
    "it": "",  # Gemma's "instruction-tuned" suffix is not part of its name
}
_JOINED = {("flash", "lite"), ("robotics", "er")}  # "Flash-Lite", "Robotics-ER"
_PREFIXED = {"gpt", "glm"}  # "GPT-5.5", "GLM-5.2": the version hangs on with a hyphen
_SIZE = re.compile(r"a?\d+b")  # parameter counts: 27b -> 27B, a4b -> A4B
# Dated snapshots: Anthropic's -20251001, OpenAI's -2026-04-23, Gemini's -04-2026 and
# Mistral's year-and-month -2512. Old OpenAI month-day ids (-0613) are all retired.
_SNAPSHOT = re.compile(
    r"^(?P<base>.+?)-(?P<date>\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|(?:2[3-9]|3\d)(?:0[1-9]|1[0-2]))$"
)
_POINT_ZERO = re.compile(r"^(?P<base>.+-\d+)-0$")  # mistral-large-4-0 is mistral-large-4


def snapshot_base(upstream_id: str) -> str | None:
    """The id a dated snapshot (or an "-N-0" spelling) is a version of; None for other ids."""
    match = _SNAPSHOT.match(upstream_id) or _POINT_ZERO.match(upstream_id)
    return match["base"] if match else None


def snapshot_date(upstream_id: str) -> str:
    """A sortable YYYYMM[DD] for a dated snapshot, "" for any other id."""
    match = _SNAPSHOT.match(upstream_id)
    if match is None:
        return ""
    date = match["date"].replace("-", "")
    if len(date) == 4:  # Mistral's YYMM
        return "20" + date
    if len(match["date"]) == 7:  # Gemini's MM-YYYY
        return date[2:] + date[:2]
    return date


def title_for(upstream_id: str) -> str:
    """The house-style title of a model id (a dated snapshot is named for its model)."""
    base = snapshot_base(upstream_id)
    if base is not None:
        return title_for(base)
    if upstream_id in TITLES:
        return TITLES[upstream_id]
    if re.match(r"o\d|text-embedding-", upstream_id):  # "o3", "o4-mini": OpenAI's own spelling
        return upstream_id
    parts = upstream_id.split("-")
    if len(parts) > 1 and parts[-1] == "latest":
        parts.pop()
    merged: list[str] = []
    for part in parts:  # opus-5-5 -> opus 5.5
        if part.isdigit() and merged and merged[-1].isdigit():
            merged[-1] += "." + part
        else:
            merged.append(part)
    words: list[str] = []
    for part in merged:
        previous = words[-1].lower() if words else ""
        if previous in _PREFIXED and part[:1].isdigit():
            words[-1] += "-" + part
        elif words and (previous, part) in _JOINED:
            words[-1] += "-" + _WORDS.get(part, part.capitalize())
        elif _SIZE.fullmatch(part):
            words.append(part.upper())
        elif part in _WORDS:
            words.append(_WORDS[part])
        else:
            words.append(part[:1].upper() + part[1:])
    return " ".join(word for word in words if word)
