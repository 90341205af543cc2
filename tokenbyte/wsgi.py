"""WSGI entry point, for hosts that only speak WSGI. The gateway at /v1 needs ASGI (asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenbyte.settings")

application = get_wsgi_application()
