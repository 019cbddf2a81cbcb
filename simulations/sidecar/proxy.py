"""kind=proxy: half of the app's requests need a downstream service (`backend`),
called through the proxy, which does the plumbing of a service mesh (Envoy in
Istio: mTLS, retries, timeouts).  It gives each try TRY_TIMEOUT ms and retries
once on an error or a timeout, so a call ends within its budget.

As a sidecar the proxy listens on localhost: when it has crashed, the node's OS
refuses the connection at once, so the app's outbound calls fail fast while
requests that need no call are served as usual.  A dead proxy host refuses
nothing: the app waits for its own, longer, timeout.
"""

from collections import deque

from ..kernel import Node, fmt_ms, observe, on
from .shared import APP_CALL_TIMEOUT, ROLE, Backend, Call, CallingApp, CallsLab, mean

NEEDS_CALL = 0.5  # share of requests that need the downstream service
PROXY_WORK_MS = 0.3  # the proxy's own work per call (TLS, headers): the same code in every mode
TRY_TIMEOUT = 100  # how long one try may take before the proxy gives up on it
TRIES = 2  # the first try and one retry
CALL_BUDGET = 250  # two tries and the hops: no call should wait longer than this


class ProxiedApp(CallingApp):
    def work(self, rid: int, to: str) -> None:
        if self.rng.random() < NEEDS_CALL:
            self.call(rid, to)
        else:
            self.send(to, "RESP", rid=rid, ok=True)  # no downstream call needed: answered at once


class Proxy(Node):
    """Forwards each call to the downstream service: a timeout per try, one retry."""

    def boot(self) -> None:
        self.role = ROLE[self.lab.mode]
        self.calls: dict[int, Call] = {}

    @on("CALL")
    def call(self, msg) -> None:
        self.after(PROXY_WORK_MS, self.start, msg.body["cid"], msg.src, key=("work", msg.body["cid"]))

    def start(self, cid: int, to: str) -> None:
        self.calls[cid] = Call(to, self.now)
        self.forward(cid)

    def forward(self, cid: int) -> None:
        call = self.calls[cid]
        call.attempt += 1
        self.send("backend", "FETCH", cid=cid, attempt=call.attempt)
        self.after(TRY_TIMEOUT, self.try_again, cid, f"no answer from downstream within {TRY_TIMEOUT} ms",
                   key=("try", cid))

    @on("RESULT")
    def result(self, msg) -> None:
        cid = msg.body["cid"]
        call = self.calls.get(cid)
        if call is None or msg.body["attempt"] != call.attempt:
            return  # the answer to a try we already gave up on
        self.cancel(("try", cid))
        if msg.body["ok"]:
            self.reply(cid, True, "")
        else:
            self.try_again(cid, "the downstream service answered with an error")

    def try_again(self, cid: int, why: str) -> None:
        if self.calls[cid].attempt < TRIES:
            self.lab.count("retries")
            self.lab.emit("retry", node=self.id, cid=cid, why=why)
            self.forward(cid)
        else:
            self.reply(cid, False, why)

    def reply(self, cid: int, ok: bool, why: str) -> None:
        call = self.calls.pop(cid)
        self.send(call.to, "REPLY", cid=cid, ok=ok, why=why, upstream=round(self.now - call.start, 3))

    def view(self) -> dict:
        return {"label": "down" if self.status == "down" else f"{len(self.calls)} calls in flight"}


class ProxyLab(CallsLab):
    NODES = (ProxiedApp, Proxy, Backend)

    def setup(self) -> None:
        self.added_ms: deque[float] = deque(maxlen=100)  # what the proxy's hops and work add to each call
        self.longest_down = 0.0  # the longest call while the proxy was down
        super().setup()
        self.add_check("calls-fail-fast", f"Every outbound call ends, answered or failed, within the proxy's budget "
                                          f"of {CALL_BUDGET} ms, also while the proxy is down. (A paused proxy, or a "
                                          f"fault on the app-proxy hop, leaves only the app's own {APP_CALL_TIMEOUT} "
                                          "ms timeout.)")

    @observe("call-ended")
    def call_measured(self, call: dict) -> None:
        ms = call["ms"]
        if call["upstream"] is not None:
            self.added_ms.append(round(ms - call["upstream"], 3))
        if self.sidecar_down_since is not None:
            self.longest_down = max(self.longest_down, ms)
        if ms > CALL_BUDGET:
            self.fail("calls-fail-fast", f"call {call['cid']} waited {fmt_ms(ms)} ({call['why'] or 'answered late'}): "
                                         f"over the {CALL_BUDGET} ms budget")

    def audit(self) -> None:
        super().audit()
        if self.call_ms:
            self.note("calls-fail-fast", f"longest of the last {len(self.call_ms)} calls: {fmt_ms(max(self.call_ms))}"
                      + (f"; {self.metrics['refused']} refused at once while the proxy was down"
                         if self.metrics["refused"] else ""))

    def view(self) -> dict:
        return {**super().view(),
                "proxy": {"budget": CALL_BUDGET, "try_timeout": TRY_TIMEOUT, "retries": self.metrics["retries"],
                          "refused": self.metrics["refused"], "longest_down": round(self.longest_down, 1),
                          "added": mean(self.added_ms, 2)}}
