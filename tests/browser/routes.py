"""The console's pages, read from the URL conf (tokenbyte/urls.py and everything it includes), so
a test that visits "every page" also visits one added tomorrow."""

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern


@dataclass(frozen=True)
class Route:
    route: str  # as written in the URL confs, prefixes joined: "keys/<int:key_id>/"
    name: str | None  # with its namespace: "keys:edit"
    needs_arguments: bool

    @property
    def label(self) -> str:
        return self.name or self.route

    def path(self) -> str:
        """The URL of a route without arguments."""
        assert not self.needs_arguments, self
        return "/" + self.route.replace("^", "").replace("$", "").replace("\\", "")


def _piece(pattern: object) -> tuple[str, bool]:
    if isinstance(pattern, RoutePattern):
        return str(pattern), bool(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return str(pattern), pattern.regex.groups > 0
    raise TypeError(f"unknown URL pattern type {type(pattern).__name__}")


def _walk(resolver: URLResolver, prefix: str, namespace: str, needs: bool) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        piece, has_arguments = _piece(entry.pattern)
        if prefix:
            piece = piece.removeprefix("^")  # as Django joins them (ResolverMatch.route)
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry, prefix + piece, inner, needs or has_arguments)
        elif isinstance(entry, URLPattern):
            name = entry.name
            if name and namespace:
                name = f"{namespace}:{name}"
            yield Route(prefix + piece, name, needs or has_arguments)


def console_routes() -> list[Route]:
    """Every route Django serves, in URL-conf order, duplicates (same route) once."""
    seen: set[str] = set()
    routes = []
    for route in _walk(get_resolver(), "", "", needs=False):
        if route.route not in seen:
            seen.add(route.route)
            routes.append(route)
    return routes


def route_of(path: str) -> str:
    """The route (as in console_routes) that serves `path`."""
    return resolve(path).route


def name_of(path: str) -> str:
    """The view name (namespaced) that serves `path`, or its route when it has none."""
    match = resolve(path)
    return match.view_name if match.url_name else match.route
