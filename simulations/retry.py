"""Retry: clients that try again when a payment call fails.

Three client machines (c1, c2, c3) send payment requests to a `service` that
charges a card.  A call can fail in several ways, and a careful client treats
them differently:

  * 500 (a transient fault) or 503 (the service is down or overloaded), or no
    answer before the client's timeout: the next try may well work, so retry;
  * 401 (the token is expired): trying again cannot help, so give up at once;
  * 200: done.

The retry loop, as every client runs it for every request:

    attempt = 1; send CHARGE
    on 200:                 success
    on 401:                 give up (a permanent error is never retried)
    on 5xx / timeout:       if attempt == max_attempts: give up
                            if the retry budget is spent: give up
                            wait backoff(attempt); attempt += 1; send CHARGE again

and the waiting time backoff(n) after the n-th failed attempt is

    none         never retry
    immediate    0
    fixed        base
    exponential  min(cap, base * 2^(n-1))
    jitter       random between 0 and min(cap, base * 2^(n-1))   ("full jitter")

Plain exponential backoff keeps clients that failed together in lock step:
they all come back at the same instant, and the service sees a spike at
every retry.  Full jitter spreads each wave over the whole backoff window,
so the service sees a lower peak, more calls succeed on each try, and fewer
calls are made in total (Brooker, "Exponential Backoff and Jitter", AWS
Architecture Blog, 2015).  The lab measures exactly that: `compare` replays
the same burst of clients through the same outage with both strategies.

A retry is only safe when doing the request twice does no harm.  When the
service charged the card but the response was lost, the client cannot tell
this apart from a failure and pays again.  An idempotency key, chosen by the
client once per payment and sent with every attempt, lets the service
recognise a repeat: it answers with the stored result instead of charging
again.  While the first attempt is still being worked on, a repeat gets
409 (in progress) and is retried later, so two attempts never charge at once.

Jitter pays off under contention: when the clients that come back together
outnumber what the service can take at once.  Then lock-step waves are
refused again and again, and full jitter saves calls as well as flattening
the peak.  When the service can take each wave, jitter still lowers the peak
but saves nothing in total: its retries come sooner on average (half the
backoff), so more of them land inside the outage.

A retry budget (as in Finagle's RetryBudget and gRPC's retry throttling) is a
token bucket per client: every request deposits budget% of a token, every
retry withdraws one, and both expire after a window (10 s here).  A small
reserve (Finagle's minimum retries per second) lets a client that makes few
requests retry at all.  In a burst, retries are then capped at about budget%
of the requests, so a client cannot multiply the load on a service that is
already down.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial

from .kernel import Arg, Lab, Node, Param, SimError, action, fmt_ms, is_up, observe, on

WINDOW = 20  # ms: the service's load is counted per window of this size (peaks)
CHART_BIN = 5  # the live chart adds up this many windows per point (100 ms)
CHART_POINTS = 100  # points in the live chart (the last 10 s)
WORK_MS = (20.0, 40.0)  # how long the service works on one accepted charge
BUDGET_WINDOW = 10_000  # ms: deposits and withdrawals of the retry budget count for this long
BUDGET_RESERVE = 2.0  # retries a client may always make per window (0.2 per second), budget or not
TRANSIENT = (500, 503, 409)  # codes worth another try (plus timeouts)
COMPARE_SEEDS = 3  # the comparison averages this many runs per strategy
COMPARE_CLIENTS = 50  # default comparison: this many clients at once...
COMPARE_OUTAGE = 500  # ...hitting an outage of this many ms
COMPARE_LIMIT = 120_000  # ms: a comparison run stops here at the latest
AVERAGED = ("peak_retries", "peak_calls", "calls", "succeeded", "gave_up", "overloaded")  # over the comparison's runs
SHOWN_REQUESTS = 8  # requests drawn on the attempts timeline

STRATEGIES = ("none", "immediate", "fixed", "exponential", "jitter")
CLIENTS = ("c1", "c2", "c3")


@dataclass
class Payment:
    """A client's retry state for one payment."""

    key: str | None  # the idempotency key, the same for every attempt
    token: str
    attempt: int = 0


class Client(Node):
    """A machine that makes payments and retries them by the strategy."""

    def boot(self) -> None:
        self.role = "client"
        self.payments: dict[str, Payment] = {}  # request id -> its retry state
        self.budget_log: deque = deque()  # (time, +deposit or -1 per retry) within the budget window
        self.ok = 0
        self.failed = 0

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        busy = len(self.payments)
        budget = {"budget": round(self.balance(), 2)} if self.lab.params["budget"] else {}
        return {"pending": busy, "ok": self.ok, "failed": self.failed, **budget,
                "label": f"{self.ok} ok · {self.failed} failed" + (f" · {busy} busy" if busy else "")
                + (f" · {budget['budget']:g} retry tokens" if budget else "")}

    # -- the retry budget: a token bucket over a sliding window -----------------------
    def balance(self) -> float:
        """Retries this client may still make: the reserve, plus budget% of a
        token per request, minus one per retry, all within the last window."""
        log = self.budget_log
        while log and log[0][0] <= self.now - BUDGET_WINDOW:
            log.popleft()
        return BUDGET_RESERVE + sum(amount for _, amount in log)

    # -- the retry loop -------------------------------------------------------------
    def pay(self, rid: str, token: str) -> None:
        params = self.lab.params
        # One key per payment, sent with every attempt of it.
        self.payments[rid] = Payment(f"key-{rid}" if params["idempotency"] else None, token)
        if params["budget"]:
            self.budget_log.append((self.now, params["budget"] / 100))  # each request deposits budget% of a retry
        self.attempt(rid)

    def attempt(self, rid: str) -> None:
        pay = self.payments[rid]
        pay.attempt += 1
        self.lab.emit("attempt", rid=rid, client=self.id, n=pay.attempt)
        self.request("service", "CHARGE", rid=rid, attempt=pay.attempt, key=pay.key, token=pay.token,
                     awaiting=(rid, pay.attempt), timeout=self.lab.params["timeout_ms"],
                     on_timeout=partial(self.timed_out, rid))

    @on("RESULT")
    def result(self, msg) -> None:
        rid, code, n = msg.body["rid"], msg.body["code"], msg.body["attempt"]
        if not self.answered((rid, n)):
            return  # an answer to an attempt we stopped waiting for
        self.lab.emit("answer", rid=rid, n=n, code=code)
        if code == 200:
            self.finish(rid, True, "paid")
        elif code not in TRANSIENT and self.lab.params["retry_on"] == "transient":
            self.finish(rid, False, f"{code} is permanent: not retried")
        else:
            self.retry(rid, str(code))

    def timed_out(self, rid: str) -> None:
        self.lab.emit("answer", rid=rid, n=self.payments[rid].attempt, code="timeout")
        self.retry(rid, "timeout")

    def retry(self, rid: str, why: str) -> None:
        params, pay = self.lab.params, self.payments[rid]
        if params["strategy"] == "none":
            return self.finish(rid, False, f"{why}: no retries")
        if pay.attempt >= params["max_attempts"]:
            return self.finish(rid, False, f"{why}: out of attempts")
        if params["budget"]:
            if self.balance() < 1:
                self.lab.count("budget_refused")
                return self.finish(rid, False, f"{why}: retry budget spent")
            self.budget_log.append((self.now, -1.0))  # each retry withdraws one
        delay = self.backoff(pay.attempt)
        self.lab.emit("retry", client=self.id, rid=rid, after=pay.attempt, why=why, delay=delay)
        self.after(delay, self.attempt, rid, key=("retry", rid))

    def backoff(self, n: int) -> float:
        """How long to wait after the n-th failed attempt."""
        params = self.lab.params
        strategy, base, cap = params["strategy"], params["base_ms"], params["cap_ms"]
        if strategy == "immediate":
            return 0.0
        if strategy == "fixed":
            return float(base)
        ceiling = min(cap, base * 2 ** (n - 1))
        if strategy == "exponential":
            return float(ceiling)
        return round(self.rng.uniform(0, ceiling), 3)  # full jitter

    def finish(self, rid: str, ok: bool, why: str) -> None:
        self.payments.pop(rid)
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.lab.emit("paid" if ok else "gave-up", rid=rid, why=why)

    def crash(self) -> None:
        lost = list(self.payments)
        super().crash()
        for rid in lost:
            self.lab.emit("gave-up", rid=rid, why="client crashed")


class Service(Node):
    """The payment service: it charges a card per accepted call."""

    def boot(self) -> None:
        self.role = "service"
        # On disk: the payments table and the idempotency keys.
        self.disk.setdefault("ledger", {})  # request id -> how many times it was charged
        keys = self.disk.setdefault("keys", {})  # key -> "in-progress" or the stored answer (200)
        # A charge that was in progress died with the process (the charge and
        # the key's answer are written together), so its claim is released.
        for key in [k for k, v in keys.items() if v == "in-progress"]:
            del keys[key]
        self.working = 0  # calls being worked on right now

    def view(self) -> dict:
        if self.status == "down":
            return {"label": "down"}
        cap, outage = self.lab.params["capacity"], self.lab.outage_until - self.now
        label = f"outage {fmt_ms(outage)}" if outage > 0 else f"busy {self.working}/{cap}"
        return {"working": self.working, "capacity": cap, "label": label}

    @on("CHARGE")
    def charge(self, msg) -> None:
        lab, body, keys = self.lab, msg.body, self.disk["keys"]
        key = body["key"]
        if lab.now < lab.outage_until:
            return self.answer(msg, 503, "unavailable")
        if body["token"] != "valid":
            return self.answer(msg, 401, "token expired")
        if key is not None and key in keys:
            if keys[key] == "in-progress":
                return self.answer(msg, 409, "same key in progress")
            return self.answer(msg, keys[key], "replayed stored answer")  # no second charge
        if self.working >= lab.params["capacity"]:
            lab.count("overloaded")
            return self.answer(msg, 503, "overloaded")
        self.working += 1
        if key is not None:
            keys[key] = "in-progress"  # claim the key before working
        self.after(self.rng.uniform(*WORK_MS), self.worked, msg,
                   key=("work", msg.id, msg.src, body["rid"], body["attempt"]))

    def worked(self, msg) -> None:
        rid, key = msg.body["rid"], msg.body["key"]
        keys = self.disk["keys"]
        self.working -= 1
        if self.rng.random() * 100 < self.lab.fail_percent:
            if key is not None:
                keys.pop(key, None)  # nothing was charged: release the key
            return self.answer(msg, 500, "transient fault")
        # The side effect: charge the card, and store the answer under the key.
        ledger = self.disk["ledger"]
        ledger[rid] = ledger.get(rid, 0) + 1
        if key is not None:
            keys[key] = 200
        self.lab.emit("charge", rid=rid, times=ledger[rid])
        self.answer(msg, 200, "charged")

    def answer(self, msg, code: int, why: str) -> None:
        self.send(msg.src, "RESULT", rid=msg.body["rid"], attempt=msg.body["attempt"], code=code, why=why)


class RetryLab(Lab):
    slug = "retry"
    title = "Retry"
    # Checks that hold under any fault in these modes (see Lab.INVARIANTS); the others demonstrate.
    INVARIANTS = {"permanent-not-retried": ("transient",), "no-duplicate-charges": ("idempotency=on",)}
    PARAMS = (
        Param("strategy", "exponential", "How long a client waits before the next attempt.", choices=STRATEGIES),
        Param("max_attempts", 6, "Attempts per request, the first one included.", lo=1, hi=10),
        Param("base_ms", 100, "Delay of fixed backoff, and the first delay of exponential backoff (ms).",
              lo=10, hi=2000),
        Param("cap_ms", 5000, "Longest exponential backoff delay (ms).", lo=100, hi=30000),
        Param("timeout_ms", 500, "How long a client waits for an answer before it counts the attempt as failed (ms).",
              lo=50, hi=5000),
        Param("idempotency", True, "Send an idempotency key with every attempt so the service charges once."),
        Param("retry_on", "transient", "Which errors a client retries: transient (5xx, 409, timeouts) or any "
              "(also 401: a bug).", choices=("transient", "any")),
        Param("budget", 0, "Retry budget: a client may retry at most this % of its requests (0 = no budget).",
              lo=0, hi=100),
        Param("rate", 5.0, "Background payments per second, spread over c1..c3.", lo=0, hi=20),
        Param("capacity", 5, "Calls the service works on at once; more are refused with 503.", lo=1, hi=50),
    )
    AUTO_COMPARE = True  # measure exponential vs jitter when the run starts

    def setup(self) -> None:
        self.outage_until = 0.0
        self.fail_percent = 0
        self.expired_tokens = 0  # the next this-many requests carry an expired token
        self.next_rid = 0
        self.requests: dict[str, dict] = {}  # request id -> what happened to it (for the page)
        self.windows: dict[int, list[int]] = {}  # window index -> [calls, retries]
        self.metrics.update({"requests": 0, "succeeded": 0, "failed": 0, "success_rate": 100.0,
                             "calls": 0, "retries": 0, "peak_calls": 0, "peak_retries": 0,
                             "charges": 0, "duplicate_charges": 0, "budget_refused": 0, "in_flight": 0,
                             "overloaded": 0})
        self.add_node(Service(self, "service"))
        for name in CLIENTS:
            self.add_node(Client(self, name))
        self.add_check("permanent-not-retried", "A permanent error (401) is never retried: the client gives up at "
                       "once.")
        self.add_check("no-duplicate-charges", "However often a payment is retried, the card is charged at most once "
                       "(idempotency keys); a payment reported paid was charged exactly once.")
        self.add_check("jitter-spreads-load", "Many clients retrying through an outage: exponential backoff with full "
                       "jitter gives a lower peak load than without jitter, and under contention (lock-step waves "
                       "turned away for overload) fewer total calls too (Brooker 2015).")
        self.comparison: dict | None = None
        if self.AUTO_COMPARE:
            self.do_compare(COMPARE_CLIENTS, COMPARE_OUTAGE)
        if self.params["rate"] > 0:
            self.every(1000 / self.params["rate"], self.tick, first=200)

    # -- traffic -------------------------------------------------------------------
    def tick(self) -> None:
        """Background traffic: one payment every 1/rate seconds, round robin."""
        clients = [n for n in self.clients() if n.up]
        if clients:
            self.start_payment(clients[self.next_rid % len(clients)])

    def clients(self) -> list[Client]:
        return [n for n in self.nodes.values() if isinstance(n, Client)]

    def start_payment(self, client: Client) -> None:
        self.next_rid += 1
        rid = f"r{self.next_rid}"
        token = "valid"
        if self.expired_tokens:
            self.expired_tokens -= 1
            token = "expired"
        self.count("requests")
        self.count("in_flight")
        self.requests[rid] = {"id": rid, "client": client.id, "start": round(self.now, 3), "end": None,
                              "status": "pending", "why": "", "attempts": [], "charges": 0,
                              "token": token, "permanent": False}
        self.emit("request", rid=rid, client=client.id, token=token)
        if len(self.requests) > 400:  # forget finished requests beyond the last few hundred (the page shows the latest)
            for old in list(self.requests)[:100]:
                if self.requests[old]["status"] != "pending":
                    del self.requests[old]
        client.pay(rid, token)

    # -- watching the run: what each payment went through, and the checks ---------------
    @observe("attempt")
    def attempted(self, event: dict) -> None:
        rec = self.requests.get(event["rid"])
        if rec is None:
            return
        if rec["permanent"]:
            self.fail("permanent-not-retried", f"{event['rid']} got a 401 and was sent again (attempt {event['n']})")
        rec["attempts"].append([round(self.now - rec["start"], 3), None])
        if event["n"] > 1:
            self.count("retries")

    @observe("answer")
    def answered(self, event: dict) -> None:
        rec = self.requests.get(event["rid"])
        if rec is None or not rec["attempts"]:
            return
        rec["attempts"][-1][1] = event["code"]
        if event["code"] == 401:
            rec["permanent"] = True

    @observe("paid", "gave-up")
    def ended(self, event: dict) -> None:
        rid, ok = event["rid"], event["kind"] == "paid"
        rec = self.requests.get(rid)
        self.count("in_flight", -1)
        self.count("succeeded" if ok else "failed")
        if rec is not None:
            rec.update(status="paid" if ok else "failed", why=event["why"], end=round(self.now, 3))
            if ok and rec["charges"] != 1:
                self.fail("no-duplicate-charges", f"{rid} was reported paid after {rec['charges']} charges")

    @observe("charge")
    def charged(self, event: dict) -> None:
        rid, times = event["rid"], event["times"]
        self.count("charges")
        rec = self.requests.get(rid)
        if rec is not None:
            rec["charges"] = times
        if times > 1:
            self.count("duplicate_charges")
            self.fail("no-duplicate-charges", f"{rid} was charged {times} times (the retry repeated the payment)")
        else:  # a double charge cannot be undone: no recovery
            self.note("no-duplicate-charges", f"{self.metrics['charges']} charges, none repeated")

    def handled(self, node: Node, msg) -> None:
        """The service's load, per window: every call it took, and how many were retries."""
        if msg.type != "CHARGE":
            return
        self.count("calls")
        w = int(self.now // WINDOW)
        slot = self.windows.setdefault(w, [0, 0])
        slot[0] += 1
        slot[1] += int(msg.body["attempt"] > 1)
        self.metrics["peak_calls"] = max(self.metrics["peak_calls"], slot[0])
        self.metrics["peak_retries"] = max(self.metrics["peak_retries"], slot[1])
        if len(self.windows) > CHART_BIN * CHART_POINTS + 10:  # forget windows the chart no longer shows
            for old in [k for k in self.windows if k < w - CHART_BIN * CHART_POINTS]:
                del self.windows[old]

    def update_metrics(self) -> None:
        done = self.metrics["succeeded"] + self.metrics["failed"]
        self.metrics["success_rate"] = round(100 * self.metrics["succeeded"] / done, 1) if done else 100.0

    # -- actions ---------------------------------------------------------------------
    @action("request", Arg("client", optional=True), group="request", nodes=CLIENTS, when=is_up,
            not_for="payments start at a client: c1, c2 or c3", refuse="{node} is {status}; pick a running client",
            help="One payment from this client (default: the next one in turn).")
    def do_request(self, client: str | None) -> None:
        node = self.nodes[client] if client else next((n for n in self.clients() if n.up), None)
        if node is None:
            raise SimError("every client is down")
        self.start_payment(node)

    @action("clients", Arg("n", "int", lo=1, hi=200), group="request",
            help="n clients pay at the same instant (a burst spread over c1..c3).")
    def do_clients(self, n: int) -> None:
        live = [c for c in self.clients() if c.up]
        if not live:
            raise SimError("every client is down; restart one first")
        self.emit("burst", clients=n)
        for i in range(n):
            self.start_payment(live[i % len(live)])

    @action("fail", Arg("percent", "percent"), help="The service fails this share of calls with a transient 500.")
    def do_fail(self, percent: int) -> None:
        self.fail_percent = percent
        self.emit("fail-rate", percent=percent)

    @action("outage", Arg("ms", "ms", lo=1, hi=60_000), help="The service answers 503 to every call for this long.")
    def do_outage(self, ms: float) -> None:
        self.outage_until = self.now + ms
        self.emit("outage", ms=ms, until=round(self.outage_until, 3))

    @action("lose-responses", Arg("percent", "percent"),
            help="Lose this share of the service's answers: the charge happened, the client never hears of it.")
    def do_lose_responses(self, percent: int) -> None:
        for client in self.clients():
            self.net.link("service", client.id).loss = percent
        self.emit("lose-responses", percent=percent)

    @action("unauthorized", Arg("n", "int", optional=True, default=1, lo=1, hi=50), group="request",
            help="The next n payments carry an expired token: the service answers 401, a permanent error.")
    def do_unauthorized(self, n: int) -> None:
        self.expired_tokens = n
        self.emit("expired-tokens", n=n)
        live = [c for c in self.clients() if c.up]
        if live and not self.params["rate"]:
            self.start_payment(live[0])  # with no background traffic, send one now

    # -- the measured comparison: exponential vs exponential + full jitter -------------
    @action("compare", Arg("clients", "int", optional=True, default=COMPARE_CLIENTS, lo=1, hi=200),
            Arg("outage", "ms", optional=True, default=COMPARE_OUTAGE, lo=0, hi=10_000),
            help="Measure again: this many clients at once hit an outage, exponential backoff vs full jitter.")
    def do_compare(self, clients: int, outage: float) -> None:
        rows = []
        for strategy in ("exponential", "jitter"):
            runs = [measure(self.params, self.seed * 101 + k, strategy, clients, outage) for k in range(COMPARE_SEEDS)]
            mean = {k: round(sum(r[k] for r in runs) / COMPARE_SEEDS, 1) for k in AVERAGED}
            done_ms = round(sum(r["done_ms"] for r in runs) / COMPARE_SEEDS)
            rows.append({"strategy": strategy, **mean, "done_ms": done_ms, "bins": runs[0]["bins"]})
        exp, jit = rows
        lower_peak = jit["peak_retries"] < exp["peak_retries"]
        fewer_calls = jit["calls"] < exp["calls"]
        # Contention: without jitter, the waves were turned away for overload about once per client or more.
        contention = exp["overloaded"] >= clients
        top = max(max(r["bins"] or [1]) for r in rows) or 1
        span = max(len(r["bins"]) for r in rows) or 1
        self.comparison = {"clients": clients, "outage_ms": outage, "runs": COMPARE_SEEDS, "rows": rows,
                           "top": top, "span_ms": span * WINDOW * CHART_BIN, "width": max(span - 1, 1),
                           "window_ms": WINDOW, "bin_ms": WINDOW * CHART_BIN, "contention": contention,
                           "params": f"max_attempts={self.params['max_attempts']} base={self.params['base_ms']}ms "
                                     f"cap={self.params['cap_ms']}ms capacity={self.params['capacity']}"}
        detail = (f"{clients} clients, {fmt_ms(outage)} outage: peak retries per {WINDOW}ms {jit['peak_retries']:g} "
                  f"with jitter vs {exp['peak_retries']:g} without; total calls {jit['calls']:g} vs {exp['calls']:g}")
        if clients > 1 and contention:  # (one client is no herd at all: said below)
            detail += f" (contention: {exp['overloaded']:g} calls turned away for overload without jitter)"
        elif clients > 1 and not fewer_calls:
            detail += (f" (little contention: without jitter only {exp['overloaded']:g} calls were turned away for "
                       f"overload, fewer than one per client, so jitter saves no calls here; it does when the herd "
                       f"far outnumbers the capacity of {self.params['capacity']})")
        self.emit("compared", clients=clients, outage_ms=outage, exp_peak=exp["peak_retries"],
                  jitter_peak=jit["peak_retries"], exp_calls=exp["calls"], jitter_calls=jit["calls"])
        if exp["peak_retries"] == 0 and jit["peak_retries"] == 0:
            self.holds("jitter-spreads-load", f"{clients} clients, {fmt_ms(outage)} outage: no client had to retry, "
                                              "so there was nothing to spread")
        elif lower_peak and (fewer_calls or not contention):
            self.holds("jitter-spreads-load", detail)
        else:
            why = ""
            if clients == 1:
                why = " (one client is no herd: there is nothing to spread)"
            elif jit["calls"] == exp["calls"] == clients * self.params["max_attempts"]:
                why = " (every client used all its attempts either way: allow more attempts)"
            self.fail("jitter-spreads-load", detail + why)

    # -- the page ----------------------------------------------------------------------
    def view(self) -> dict:
        # The load chart: calls per 100 ms over the last 10 s, and how many were retries.
        last = int(self.now // WINDOW) // CHART_BIN
        calls, retries = [], []
        for b in range(last - CHART_POINTS + 1, last + 1):
            slots = [self.windows.get(b * CHART_BIN + i, [0, 0]) for i in range(CHART_BIN)]
            calls.append(sum(s[0] for s in slots))
            retries.append(sum(s[1] for s in slots))
        # The attempts timeline: the latest requests that retried or failed, and the very latest ones.
        reqs = list(self.requests.values())
        retried = [r for r in reqs[:-3] if len(r["attempts"]) > 1 or r["status"] == "failed" or r["charges"] > 1]
        shown = (retried + reqs[-3:])[-SHOWN_REQUESTS:]
        took = [(r["end"] if r["end"] is not None else self.now) - r["start"] for r in shown]
        span = max([1000.0, *took])
        timeline = [{"id": r["id"], "client": r["client"], "status": r["status"], "why": r["why"],
                     "charges": r["charges"], "tries": len(r["attempts"]), "width": round(100 * ms / span, 2),
                     "codes": " → ".join("…" if c is None else str(c) for _, c in r["attempts"]),
                     "attempts": [[t, _kind(code)] for t, code in r["attempts"][-12:]]} for r, ms in zip(shown, took)]
        lost = [link.loss for (src, _), link in self.net.links.items() if src == "service"]
        return {"edges": [[c.id, "service"] for c in self.clients()], "comparison": self.comparison,
                "faults": {"outage_ms": round(max(0.0, self.outage_until - self.now), 3),
                           "fail_percent": self.fail_percent, "lost_responses": max(lost or [0]),
                           "expired_tokens": self.expired_tokens},
                "load": {"bin_ms": WINDOW * CHART_BIN, "top": max(max(calls), 5), "shown_peak": max(calls),
                         "width": CHART_POINTS - 1, "span_ms": CHART_POINTS * CHART_BIN * WINDOW,
                         "calls": calls, "retries": retries},
                "timeline": {"span_ms": round(span), "rows": timeline}}

class Experiment(RetryLab):
    """The same lab, run off-screen for the comparison (no background traffic)."""

    slug = ""
    AUTO_COMPARE = False


def measure(params: dict, seed: int, strategy: str, clients: int, outage: float) -> dict:
    """One comparison run: `clients` pay at once at the start of an outage."""
    lab = Experiment({**{k: str(v) for k, v in params.items()}, "strategy": strategy, "rate": "0"}, seed)
    if outage:
        lab.do_outage(outage)
    lab.do_clients(clients)
    while lab.metrics["in_flight"] and lab.now < COMPARE_LIMIT:
        lab.run_until(lab.now + 1000)
        lab.drain()
    last = max(lab.windows) if lab.windows else 0
    series = [lab.windows.get(w, [0, 0])[0] for w in range(0, last + 1)][:250]
    finished = [r["end"] for r in lab.requests.values() if r["end"] is not None]
    return {"peak_retries": lab.metrics["peak_retries"], "peak_calls": lab.metrics["peak_calls"],
            "calls": lab.metrics["calls"], "succeeded": lab.metrics["succeeded"], "gave_up": lab.metrics["failed"],
            "overloaded": lab.metrics["overloaded"],
            "done_ms": max(finished or [0]),
            "bins": [sum(series[i:i + CHART_BIN]) for i in range(0, len(series), CHART_BIN)]}  # like the live chart


def _kind(code) -> str:
    if code is None:
        return "open"
    if code == 200:
        return "ok"
    if code in TRANSIENT or code == "timeout":
        return "retryable"
    return "permanent"
