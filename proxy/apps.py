from django.apps import AppConfig


class ProxyConfig(AppConfig):
    name = "proxy"
    verbose_name = "Gateway catalog"

    def ready(self) -> None:
        from proxy import signals  # noqa: F401  (catalog change notifications)
