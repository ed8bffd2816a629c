"""A warning when local core's connections come near its open-file limit.

Local core holds one file descriptor per connection. At the process's limit (RLIMIT_NOFILE)
a connection can no longer be accepted: libuv, under uvloop, accepts it and closes it at once
so as not to spin on it, and the device sees its TLS handshake end in EOF (fleetsim counts it
`tls_refused`), while nothing else says why. 20,000 devices on one local core meet this on a
machine whose per-process limit is 20,000 (README, issue 9). So the broker warns, once each
time the connections it holds cross `limit - MARGIN`, naming the limit and how to raise it.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

MARGIN = 64  # descriptors kept for local core's own files: database, logs, listeners, API


class DescriptorWatch:
    def __init__(self, limits: tuple[int, int] | None = None):
        soft, hard = limits or resource.getrlimit(resource.RLIMIT_NOFILE)
        self.soft, self.hard = soft, hard
        self.threshold = max(soft - MARGIN, 1) if soft != resource.RLIM_INFINITY else None
        self._warned = False

    def check(self, held: int) -> None:
        """Called with the number of connections held after each new one."""
        if self.threshold is None:
            return
        if held < self.threshold * 0.9:
            self._warned = False  # re-armed once well below the threshold
        elif held >= self.threshold and not self._warned:
            self._warned = True
            hard = "unlimited" if self.hard == resource.RLIM_INFINITY else str(self.hard)
            log.warning("local core holds %d connections, near its limit of %d open files: "
                        "connections beyond it are closed as soon as they are accepted (a "
                        "device sees its TLS handshake end); raise `ulimit -n` (hard limit "
                        "%s) before starting local core", held, self.soft, hard)
