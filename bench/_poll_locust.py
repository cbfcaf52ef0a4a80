"""The locust users of bench/poll_fragment.py: each asks one URL as fast as it is answered.

The leading underscore keeps `make bench` from running it as a bench of its own. Told what to
ask by the environment: BENCH_PATH (with its query string), BENCH_COOKIE (a session cookie,
"name=value") and BENCH_STATUS (the status every answer must have, or it counts as a failure:
a 200 where a 204 was meant would flatter nothing and spoil the figure).
"""

import os

from locust import FastHttpUser, constant, task

PATH = os.environ["BENCH_PATH"]
COOKIE = os.environ.get("BENCH_COOKIE", "")
STATUS = int(os.environ.get("BENCH_STATUS", "200"))
HEADERS = {"HX-Request": "true", **({"Cookie": COOKIE} if COOKIE else {})}


class Poller(FastHttpUser):
    wait_time = constant(0)  # closed loop: the next request as soon as the answer is in

    @task
    def ask(self):
        with self.client.get(PATH, headers=HEADERS, name="ask", catch_response=True,
                             allow_redirects=False) as answer:
            if answer.status_code != STATUS:
                answer.failure(f"HTTP {answer.status_code}, not {STATUS}")
            else:
                answer.success()
