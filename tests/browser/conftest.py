"""Headless Chromium (Debian's, never a downloaded build) driven by Playwright's sync API against
pytest-django's live server, with the simulator standing in for the gateways and, where a test
asks for it, a real qcluster processing jobs.

Without chromium the tests skip with the reason, except in CI (CI=true), where they fail.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run in a thread
# with a running loop unless told that this is deliberate.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def chromium_problem():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return ""


@pytest.fixture(scope="session")
def playwright_browser():
    problem = chromium_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"browser tests cannot run in CI: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Problems(list):
    """Console errors and uncaught exceptions of a page; a test ends by asserting it is empty."""


# Anything the Content-Security-Policy blocks (an inline script or style attribute, eval) becomes
# a console error naming the directive, so the test of that page fails.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
                + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def wait_for_function_without_eval(page):
    """page.wait_for_function, polling page.evaluate instead.

    Playwright's own wait_for_function compiles the expression with eval inside the page, which
    the portal's Content-Security-Policy forbids; page.evaluate goes through the DevTools
    protocol, which the policy does not govern.
    """

    def wait(expression, timeout=20_000, polling=100, arg=None):
        deadline = time.monotonic() + timeout / 1000
        while True:
            value = page.evaluate(expression, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} ms: {expression}")
            page.wait_for_timeout(polling if isinstance(polling, int | float) else 50)

    return wait


def watched_page(context):
    """A new page of the context whose console errors and uncaught exceptions land in .problems."""
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    found = context.new_page()
    found.wait_for_function = wait_for_function_without_eval(found)
    found.problems = Problems()
    found.on("pageerror", lambda error: found.problems.append(f"page error: {error}"))
    found.on("console", lambda message: message.type == "error" and found.problems.append(message.text))
    return found


@pytest.fixture
def page(playwright_browser):
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    yield watched_page(context)
    context.close()


@pytest.fixture
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name, full_page=True):
        path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def studio(simulator, settings):
    """The live server with every gateway on the simulator, quick simulated tasks."""
    settings.STUDIO_SIMULATOR_LATENCY = 0.4
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "100.00"
    return simulator


@pytest.fixture
def worker(studio, qcluster):
    """A real qcluster processing jobs against the simulator on the live server."""
    return qcluster(
        STUDIO_SIMULATOR_URL=studio.url,
        STUDIO_PUBLIC_URL=studio.url,
        STUDIO_SIMULATOR_LATENCY="0.4",
    )


def log_in(page, base_url, username="alice", password="alice-password"):
    """Through the login form, as a person would."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/create/$"))
