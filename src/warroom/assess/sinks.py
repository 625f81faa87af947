"""Where alert transitions go: the terminal, the log, a JSON-lines file, a webhook.

Each sink is a small class with ``send(transition)``; ``SINKS`` maps a name to its class.
The webhook never blocks the caller: transitions go on a queue that a daemon thread POSTs
(the alert as JSON), retrying with exponential backoff; ``close()`` drains it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from warroom.assess.lifecycle import Transition
from warroom.timeutil import to_iso

log = logging.getLogger("warroom.alerts")


def payload(t: Transition) -> dict[str, Any]:
    """The JSON of a transition: the alert as it is, with the transition's state and time."""
    return {"event": t.to, "at": to_iso(t.at), "alert": t.alert.as_dict()}


class Sink(Protocol):
    def send(self, t: Transition) -> None: ...

    def close(self) -> None: ...


class TerminalSink:
    """One line per transition on the terminal (suppressed alerts are not shown)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)

    def send(self, t: Transition) -> None:
        if t.alert.suppressed:
            return
        style = {"critical": "bold red", "warning": "yellow"}.get(t.alert.severity, "cyan")
        word = "ALERT" if t.to == "firing" else "resolved"
        self.console.print(f"[{style}]{word}[/{style}] {to_iso(t.at)} {t.alert.message}"
                           if t.to == "firing" else
                           f"[green]{word}[/green] {to_iso(t.at)} {t.alert.id}")

    def close(self) -> None:
        pass


class LogSink:
    """Python logging, logger ``warroom.alerts`` (WARNING for firing, INFO for resolved)."""

    def send(self, t: Transition) -> None:
        level = logging.WARNING if t.to == "firing" else logging.INFO
        log.log(level, "%s %s %s", t.to, t.alert.id, t.alert.message)

    def close(self) -> None:
        pass


class JsonLinesSink:
    """Appends one JSON object per transition to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, t: Transition) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(payload(t), ensure_ascii=False) + "\n")

    def close(self) -> None:
        pass


class WebhookSink:
    """HTTP POST of each transition's JSON to ``url``, off the caller's thread.

    Retries on connection errors and 5xx answers with backoff ``base_s * 2**k`` (k = 0..),
    up to ``attempts`` tries; a 4xx answer is not retried (the receiver refused it).
    """

    def __init__(self, url: str, attempts: int = 5, base_s: float = 0.5,
                 timeout_s: float = 5.0) -> None:
        self.url, self.attempts, self.base_s, self.timeout_s = url, attempts, base_s, timeout_s
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="warroom-webhook", daemon=True)
        self._thread.start()

    def send(self, t: Transition) -> None:
        if not t.alert.suppressed:
            self.queue.put(payload(t))

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            self._post(item)

    def _post(self, item: dict[str, Any]) -> None:
        body = json.dumps(item).encode()
        for k in range(self.attempts):
            req = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s):
                    self.delivered += 1
                    return
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    log.warning("webhook %s refused alert %s: HTTP %s", self.url,
                                item["alert"]["id"], e.code)
                    self.failed += 1
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(self.base_s * 2**k)
        self.failed += 1
        log.warning("webhook %s: alert %s not delivered after %d tries", self.url,
                    item["alert"]["id"], self.attempts)

    def close(self, timeout_s: float = 30.0) -> None:
        self.queue.put(None)
        self._thread.join(timeout_s)


SINKS: dict[str, type] = {"terminal": TerminalSink, "log": LogSink, "jsonl": JsonLinesSink,
                          "webhook": WebhookSink}
