"""Settings for the test suite: the real settings, with safe defaults for what tests must not need.

Tests still honour DATABASE_URL and REDIS_URL, so CI runs the same suite on PostgreSQL + Redis
and in embedded mode.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-" + "k" * 60)
# Every account the tests create can pay for its calls (tests of the balance itself set 0),
# here and in the gateway processes the tests start.
os.environ.setdefault("TOKENBYTE_STARTING_BALANCE", "1000")

from tokenbyte.settings import *  # noqa: F403
from tokenbyte.settings import DATABASES

# Fast hashing: password strength is not what these tests measure.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so servers started by tests in threads see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "db.test.sqlite3")}  # noqa: F405
