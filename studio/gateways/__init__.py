"""The gateways: what they offer (catalog), how a request is checked (request), and one adapter
per wire protocol that sends it.

    adapter = gateways.adapter_for("apimart")
    state = adapter.submit(request, inputs)    # TaskState; raises errors.GatewayError
    state = adapter.poll(state.remote_id)
"""

from studio.gateways import catalog
from studio.gateways.fox_async import FoxAsyncAdapter
from studio.gateways.http import CONFIGURED, NOT_CONFIGURED, SIMULATOR, gateway_state
from studio.gateways.openai_sync import OpenAISyncAdapter
from studio.gateways.task_async import TaskAsyncAdapter

ADAPTERS = {
    catalog.OPENAI_SYNC: OpenAISyncAdapter,
    catalog.TASK_ASYNC: TaskAsyncAdapter,
    catalog.FOX_ASYNC: FoxAsyncAdapter,
}

__all__ = ["CONFIGURED", "NOT_CONFIGURED", "SIMULATOR", "adapter_for", "gateway_state", "usable_gateways"]


def adapter_for(gateway):
    """The adapter for a gateway key; configuration is read when it sends, not here."""
    return ADAPTERS[catalog.GATEWAYS[gateway].protocol](gateway)


def usable_gateways():
    """Gateway keys that can take work now: configured with a key, or served by the simulator."""
    return [key for key in catalog.GATEWAYS if gateway_state(key) != NOT_CONFIGURED]
