"""Sidecar: a helper next to the application, and what its failure takes down.

The app answers a client's requests; a helper works beside it.  Where the
helper's code runs is the lab's `mode`:

  * sidecar:     a second container on the app's node, sharing its volume and
                 its localhost: its crash does not stop the app;
  * service:     a service on another host (still node `sidecar`, so the same
                 commands work in every mode): every use costs a network round
                 trip, and a dead host refuses nothing, so the app waits for
                 its own timeout;
  * in-process:  a library inside the app's process: the fastest, but its
                 crash is a crash of the app.

What the helper does is the lab's `kind`, one module each: log_shipper.py ships
the app's log lines to a store exactly once; proxy.py makes its outbound calls,
with a timeout per try and a retry; cache.py caches a slow backend's answers for
a TTL.  shared.py holds what they share.
"""

from .cache import CacheLab
from .log_shipper import LogShipper
from .proxy import ProxyLab
from .shared import SidecarLab

KINDS: dict[str, type[SidecarLab]] = {"log-shipper": LogShipper, "proxy": ProxyLab, "cache": CacheLab}


class Sidecar(SidecarLab):
    """The lab the page runs (slug `sidecar`): its `kind` param picks the kind's lab."""

    def __new__(cls, params: dict | None = None, seed: int = 0):
        return KINDS[cls.parse_params(params or {})["kind"]](params, seed)
