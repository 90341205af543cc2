from django.apps import AppConfig


class TokenByteConfig(AppConfig):
    name = "tokenbyte"
    verbose_name = "TokenByte"

    def ready(self) -> None:
        from tokenbyte import checks  # noqa: F401  (registers the system checks)
