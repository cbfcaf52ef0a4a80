"""Settings for the test suite: the project's own settings, with the environment the tests need.

The environment is set (not just defaulted in Python) so subprocesses the tests start — a real
qcluster — see the same database, broker queue and media folder.
"""

import os
import tempfile
import uuid

os.environ.setdefault("STUDIO_TESTING", "1")
os.environ.setdefault("STUDIO_SIMULATOR", "1")
os.environ.setdefault("STUDIO_SIMULATOR_LATENCY", "0.4")
os.environ.setdefault("STUDIO_Q_NAME", f"studio-test-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("STUDIO_TEST_ROOT", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("MEDIA_ROOT", os.path.join(os.environ["STUDIO_TEST_ROOT"], "media"))
os.environ.setdefault("STUDIO_VAR_DIR", os.environ["STUDIO_TEST_ROOT"])
# Dead workers are found in seconds, not half a minute, so crash tests run quickly.
os.environ.setdefault("STUDIO_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("STUDIO_HEARTBEAT_TIMEOUT", "10")

from studio.settings import *  # noqa: E402,F403
from studio.settings import DATABASES, Q_CLUSTER  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The live server's threads outlive the tests that used them (pooled keep-alive connections);
# persistent database connections in them would stop PostgreSQL dropping the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0
Q_CLUSTER["workers"] = 2
Q_CLUSTER["poll"] = 0.1
Q_CLUSTER["guard_cycle"] = 0.2

# A file, not pytest-django's in-memory default, so a qcluster subprocess shares the database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["STUDIO_TEST_ROOT"], "test.sqlite3")}
# A subprocess started by a test points at the test database the parent created.
if os.environ.get("STUDIO_USE_TEST_DB"):
    DATABASES["default"]["NAME"] = os.environ["STUDIO_USE_TEST_DB"]
