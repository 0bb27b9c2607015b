"""Flows as a capability: the engine that matches inbox events, the executor loops, the flows API."""

from clockify_core.capability import Capability, Loop
from clockify_core.flows.engine import FlowEngine, flow_engine
from clockify_core.flows.executor import flow_loop, run_due
from clockify_core.flows.models import Flow, FlowLoopMark, FlowRun
from clockify_core.flows.router import router
from clockify_core.manifest.builder import FLOWS_TAB, ManifestPart
from clockify_core.runtime import Runtime


async def _run_due(runtime: Runtime) -> None:
    while await run_due(runtime):  # due flow runs (retries scheduled later stay queued)
        pass
    await flow_engine(runtime).flush_counters(runtime.sessions)


FLOWS = Capability(
    name="flows",
    routers=(router,),
    # After the mirror in a service's list: flows see the event once it is applied, in the same transaction.
    event_handlers=(FlowEngine,),
    loops=(Loop("flows", flow_loop, copies=lambda settings: settings.flows.concurrency,
                enabled=lambda settings: settings.flows.executor),),
    drain=_run_due,
    models=(Flow, FlowRun, FlowLoopMark),
    settings=("flows",),
    metrics=("flows_executed_total", "flow_action_duration_seconds", "flow_evaluations_total"),
    manifest=ManifestPart(tabs=(FLOWS_TAB,)),
)
