"""The built-in stand-in for the four paid gateways (anyfast, apimart, gccai, foxapi).

It plays the real gateway: its own wire-level checks (validation.py, independent of
studio.gateways), tasks in the database so the web server and the worker see the same state,
faults chosen by a `[sim:<fault>]` marker in the prompt (faults.py), and real PNG results
(rendering.py). The helpers below are for tests; they import lazily because this package is
imported before the app registry is ready.
"""


def counters(gateway):
    """{"submits": tasks created, "billed_images": images in completed tasks} for one gateway."""
    from studio.simulator import store

    return store.counters(gateway)


def all_done():
    """Whether every task the simulator took is over by its clock, so counters() is final: for
    tests that compare what was billed, to wait for instead of sleeping."""
    from studio.simulator import store

    return store.all_done()


def last_request(gateway):
    """The last generation body the gateway received (parsed JSON), or None."""
    from studio.simulator import store

    return store.last_request(gateway)
