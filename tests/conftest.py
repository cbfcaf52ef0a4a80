import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_failed_logins_from_other_tests(settings):
    """With REDIS_URL, django-axes counts failed logins in Redis, which outlives each test's
    database: a key prefix of its own gives every test a clean count (never FLUSHDB: the
    broker's queues live in the same Redis)."""
    if "axes" in settings.CACHES:
        fresh = {**settings.CACHES["axes"], "KEY_PREFIX": f"axes-{uuid.uuid4().hex}"}
        settings.CACHES = {**settings.CACHES, "axes": fresh}
        # Axes' handler holds its cache from when it was made: make it anew on the fresh one.
        settings.AXES_HANDLER = settings.AXES_HANDLER


@pytest.fixture(autouse=True)
def thumbnails_made(settings):
    """A download in this process leaves its thumbnails to this process's thumbnail thread: each
    test ends when the thread has done them, so none runs into the next test's database (or holds
    a connection when the test database is dropped). The thread does not give way to other jobs'
    downloads here (a test may leave a job downloading on purpose); test_media tests that."""
    settings.STUDIO_THUMBNAIL_GIVE_WAY_SECONDS = 0
    yield
    from studio import media

    media.THUMBNAIL_QUEUE.join()


@pytest.fixture(scope="session", autouse=True)
def media_bucket():
    """With STUDIO_S3_BUCKET (CI's third configuration: moto's server on loopback, spoken to over
    real HTTP), the bucket the suite's media go to: created private, public access blocked."""
    from django.conf import settings

    if settings.STUDIO_S3_BUCKET:
        create_private_bucket(settings.STUDIO_S3_BUCKET)


def s3_client():
    import boto3
    from django.conf import settings

    return boto3.client("s3", endpoint_url=settings.STUDIO_S3_ENDPOINT_URL or None,
                        region_name=settings.STUDIO_S3_REGION or None)


def create_private_bucket(name):
    client = s3_client()
    try:
        region = client.meta.region_name
        where = {} if region in (None, "us-east-1") else {"LocationConstraint": region}
        client.create_bucket(Bucket=name, **({"CreateBucketConfiguration": where} if where else {}))
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    blocked = {key: True for key in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                     "RestrictPublicBuckets")}
    client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=blocked)


@pytest.fixture
def owner(db):
    return User.objects.create_user("alice", "alice@example.invalid", "alice-password")


@pytest.fixture
def teammate(db, owner):
    team = Group.objects.create(name="Design")
    mate = User.objects.create_user("bob", "bob@example.invalid", "bob-password")
    team.user_set.add(owner, mate)
    return mate


@pytest.fixture
def outsider(db):
    return User.objects.create_user("mallory", "mallory@example.invalid", "mallory-password")


@pytest.fixture
def staff(db):
    return User.objects.create_user("root", "root@example.invalid", "root-password", is_staff=True)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def simulator(live_server, settings):
    """The built-in gateway simulator, served over real HTTP on loopback, with every gateway
    pointed at it (no API keys set)."""
    settings.STUDIO_SIMULATOR = True
    settings.STUDIO_SIMULATOR_URL = live_server.url
    settings.STUDIO_PUBLIC_URL = live_server.url
    settings.STUDIO_GATEWAYS = {
        key: {"api_key": "", "base_url": value["base_url"]} for key, value in settings.STUDIO_GATEWAYS.items()
    }
    return live_server


def current_database_name():
    return connection.settings_dict["NAME"]


class QCluster:
    """A real `manage.py qcluster` process on the test database."""

    def __init__(self, extra_env=None):
        self.extra_env = extra_env or {}
        self.process = None

    def start(self):
        env = dict(os.environ)
        env["STUDIO_USE_TEST_DB"] = str(current_database_name())
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def kill(self):
        """SIGKILL the whole process group: no clean shutdown, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Workers that outlive their parent would keep test-database sessions open.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


@pytest.fixture
def qcluster(transactional_db):
    clusters = []

    def start(**extra_env):
        cluster = QCluster(extra_env).start()
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


def wait_for(predicate, timeout=30.0, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def pytest_sessionfinish(session, exitstatus):
    """Leave no queue of this run behind in a shared Redis."""
    from django.conf import settings

    if getattr(settings, "REDIS_URL", ""):
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(f"django_q:{settings.Q_CLUSTER['name']}:*"):
            client.delete(key)
