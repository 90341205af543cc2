"""JSON Schema reduced to the OpenAPI subset Gemini's Schema object accepts (pure).

Gemini refuses any key outside its Schema message ("Unknown name ...: Cannot find field"), so a
schema written for OpenAI is rewritten: $ref/$defs inlined, oneOf read as anyOf, a simple allOf
merged, type lists turned into a type plus `nullable`, `const` into a one-value enum; keys and
formats Gemini lacks are dropped (the model is steered, not validated, by them). The rules are
listed in README.md ("Gemini").
"""

from typing import Any

# Gemini's Schema fields (the v1beta REST reference), in JSON Schema's spelling where it differs.
_KEPT = frozenset(
    {
        "description",
        "title",
        "nullable",
        "maxItems",
        "minItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "default",
        "minimum",
        "maximum",
        "propertyOrdering",
    }
)
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})
MAX_DEPTH = 16  # recursive schemas ($ref to an ancestor) are cut here


def gemini_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    definitions = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _reduce(schema, definitions, 0)


def _reduce(schema: Any, definitions: dict[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    if depth > MAX_DEPTH:
        return {"type": "STRING", "description": "(a nested structure, as JSON text)"}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/") else None
        merged = {**(target or {}), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _reduce(merged, definitions, depth + 1)
    if isinstance(schema.get("allOf"), list):
        schema = _merge_all_of(schema)
    out: dict[str, Any] = {key: schema[key] for key in _KEPT if key in schema}
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        reduced = [_reduce(v, definitions, depth + 1) for v in variants if v != {"type": "null"}]
        if len(reduced) < len(variants):
            out["nullable"] = True
        if len(reduced) == 1:
            out.update({k: v for k, v in reduced[0].items() if k not in out})
        elif reduced:
            out["anyOf"] = reduced
    kind = _type(schema.get("type"), out, definitions, depth)
    if kind is not None:
        out["type"] = kind
    elif "type" not in out and "anyOf" not in out and ("properties" in schema or "items" in schema):
        out["type"] = "OBJECT" if "properties" in schema else "ARRAY"
    kind = out.get("type")
    _enum(schema, out)
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(str(kind), ()):
        out["format"] = fmt
    if isinstance(schema.get("properties"), dict):
        properties = {
            name: _reduce(value, definitions, depth + 1)
            for name, value in schema["properties"].items()
        }
        out["properties"] = properties
        required = [n for n in schema.get("required") or () if n in properties]
        if required:
            out["required"] = required
    items = schema.get("items")
    if isinstance(items, list):  # tuple validation: Gemini has one item schema
        items = items[0] if items else None
    if isinstance(items, dict):
        out["items"] = _reduce(items, definitions, depth + 1)
    return out


def _type(raw: Any, out: dict[str, Any], definitions: dict[str, Any], depth: int) -> str | None:
    if isinstance(raw, str):
        if raw == "null":
            out["nullable"] = True
            return None
        return raw.upper() if raw.upper() in _TYPES else None
    if isinstance(raw, list):
        kinds = [k for k in raw if isinstance(k, str) and k != "null"]
        if len(kinds) < len(raw):
            out["nullable"] = True
        if len(kinds) == 1:
            return _type(kinds[0], out, definitions, depth)
        if kinds:
            out["anyOf"] = [{"type": k.upper()} for k in kinds if k.upper() in _TYPES]
    return None


def _enum(schema: dict[str, Any], out: dict[str, Any]) -> None:
    values = schema.get("enum")
    if "const" in schema:
        values = [schema["const"]]
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        out["enum"] = values  # Gemini's enums are strings only; others are left unconstrained
        out.setdefault("type", "STRING")


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged
