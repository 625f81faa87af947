"""The HTTP API: FastAPI over one workspace (a store and its scenario).

Endpoints (JSON unless said; times are ISO 8601 with a zone, ``at`` defaults to now):

- ``POST /reports``: a body in any format the ingest pipeline detects (CSV, NDJSON, GeoJSON,
  CoT XML), or one signed telegram (a JSON object with ``source``, ``seq``, ``sent_at``,
  ``payload``, ``signature``; see :mod:`warroom.telegram`). Answers the counts
  ``{accepted, duplicate, conflict, quarantined, errors}`` with 200 once the rows are committed
  (also when some rows were quarantined: the counts say so); 413 for a body over
  ``max_body_bytes``; a refused telegram gets its :class:`~warroom.telegram.TelegramError`
  status (400, 401, 403, 409, 422). Reports without ``received_at`` get the time of arrival.
- ``GET /situation``, ``GET /forces``, ``GET /forces/{id}``, ``GET /forecast``: the estimates
  and the forecast as of ``at`` (the forecast is the ``warroom forecast --json`` contract).
- ``GET /alerts``, ``POST /alerts/{id}/ack``: stored alerts, with an ``acked`` flag.
- ``GET /briefings``, ``GET /briefings/latest``, ``GET /briefings/{slot}.{fmt}``,
  ``POST /briefings``: stored briefings, and building one now (as ``warroom brief`` does).
- ``GET /map.png``: the map of a briefing as of ``at`` (not stored).
- ``GET /healthz``.

With ``create_app(..., auth=True)`` every endpoint but ``/healthz`` and the docs
(``/openapi.json``, ``/docs``, ``/redoc``) needs ``Authorization: Bearer TOKEN`` with a role
allowed there: ``POST /reports`` reporter; every ``GET``, ``POST /alerts/{id}/ack`` and
``POST /briefings`` analyst; admin everything (see :mod:`warroom.server.auth`). 401 for a
missing, unknown or revoked token, 403 for a role (or a reporter's source) not allowed, 429
over the token's rate.

The store has one SQLite connection: every use of it holds ``lock``. Estimates, forecasts and
rendering run outside the lock (they are pure functions of the reports read under it), except
that building and saving a briefing holds ``brief_lock`` throughout so alert state advances
once per briefing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from warroom.assess.config import alert_config
from warroom.assess.lifecycle import Alert, Transition, advance
from warroom.assess.rules import evaluate
from warroom.assess.sinks import payload
from warroom.brief import build_briefing
from warroom.checkpointer import checkpoint_in_background
from warroom.estimate.config import estimate_params
from warroom.estimate.track import estimate
from warroom.forecast.params import ForecastParams, OverrideError, parse_overrides
from warroom.ingest import detect
from warroom.ingest.base import CountingReader
from warroom.ingest.cot_format import CotFormat
from warroom.ingest.pipeline import ingest_stream
from warroom.keystore import KeyStore
from warroom.publish import RENDERERS
from warroom.publish.cot import render_bytes as cot_render
from warroom.server import dashboard, data
from warroom.server.assessor import Assessor, AssessorClosed, conditions_of
from warroom.server.auth import (
    DEFAULT_BURST,
    DEFAULT_RATE_PER_S,
    Authenticator,
    RateLimiter,
    TokenInfo,
    TokenStore,
)
from warroom.server.cot_bridge import start_cot
from warroom.server.events import (
    EventHub,
    briefing_event,
    events_router,
    hub_sink,
    report_event,
)
from warroom.server.landing import Landing, LandingError
from warroom.server.reports_route import ReportsRoute, read_body
from warroom.server.scheduler import BriefingScheduler
from warroom.server.telegram_writer import TelegramWriter
from warroom.situation import Situation, build_situation
from warroom.telegram import TelegramError
from warroom.timeutil import TimeFormatError, parse_time, to_iso
from warroom.workspace import Workspace

log = logging.getLogger("warroom.server")

MiB = 1 << 20
MAX_SAMPLES = 100_000
ALERT_STATES = ("pending", "firing", "resolved")
CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8",
                 "json": "application/json", "pdf": "application/pdf",
                 "cot": "application/xml"}
_SLOT_NAME = re.compile(r"^(?:briefing-)?(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})Z$")

SetQuery = Annotated[list[str] | None, Query(
    alias="set", description="what-if override KEY=VALUE, e.g. us3.p_obey=0.1 (repeatable)")]
AtQuery = Annotated[str | None, Query(description="as of this time, ISO 8601 with a zone "
                                      "(default: now)")]


def parse_at(at: str | None, name: str = "at") -> int:
    """Epoch seconds of a query time (now when absent); 422 for a bad one."""
    if at is None:
        return int(time.time())
    try:
        return parse_time(at)
    except TimeFormatError as e:
        raise HTTPException(422, f"{name}: {e}") from None


def parse_slot(text: str) -> int:
    """A briefing slot from ``1945-04-12T1200Z`` (a file stem) or ISO 8601 with a zone."""
    m = _SLOT_NAME.match(text)
    if m:
        text = f"{m[1]}T{m[2]}:{m[3]}:00Z"
    try:
        return parse_time(text)
    except TimeFormatError as e:
        raise HTTPException(422, f"slot: {e}; expected e.g. 1945-04-12T1200Z or an ISO "
                                 "8601 time with a zone") from None


class WarroomAPI(FastAPI):
    """FastAPI, with ``POST /reports`` answered by :class:`ReportsRoute` before the middleware
    stack (the route that takes the field's telegrams, thousands a second)."""

    reports_route: ReportsRoute | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = self.reports_route
        if (route is not None and scope["type"] == "http" and scope["path"] == "/reports"
                and scope["method"] == "POST"):
            await route(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _telegram_body(body: bytes) -> bool:
    """Whether a body is one JSON object that claims to be a telegram: it has a ``signature``,
    or both ``seq`` and ``sent_at``, and is not GeoJSON (no ``type``). It then goes to
    :func:`warroom.telegram.accept`, which checks it strictly (a missing or unknown member is a
    400 there, rather than a report row quarantined here)."""
    if body.lstrip()[:1] != b"{":
        return False
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(obj, dict) or "type" in obj:
        return False
    return "signature" in obj or {"seq", "sent_at"} <= obj.keys()


def _body_sources(body: bytes) -> set[Any]:
    """The ``source`` of every report a plain body holds (None for a report without one),
    parsed as the ingest pipeline will parse it; rows that do not parse are skipped (they go to
    quarantine)."""
    fmt = detect(body[: 1 << 16])
    found: set[Any] = set()
    for rec in fmt.records(CountingReader(io.BytesIO(body)), "http"):
        if rec.fields is not None:
            src = rec.fields.get("source")
            found.add(src.strip() if isinstance(src, str) else None)
    return found


def _safely(fn: Any, *args: Any) -> None:
    """Run ``fn`` in a background thread, logging (never raising) its failure."""
    try:
        fn(*args)
    except AssessorClosed:  # the server is stopping: the assessment was abandoned
        pass
    except Exception:  # a failed assessment must not take the server down
        log.exception("background %s failed", getattr(fn, "__name__", fn))


def create_app(workspace: Workspace, *, max_body_bytes: int = 16 * MiB,
               samples: int = 2000, auth: bool = False,
               rate_per_s: float = DEFAULT_RATE_PER_S, burst: float = DEFAULT_BURST,
               brief_every_h: float | None = None, cot_host: str = "127.0.0.1",
               cot_port: int | None = None, assess_after_ingest: bool = True,
               event_hub: EventHub | None = None, ping_s: float = 15.0,
               max_streams: int = 100, cot_uid_forces: dict[str, str] | None = None,
               assess_interval_s: float = 2.0, cot_forecasts: bool = False,
               assess_in_worker: bool | None = None,
               land_in_worker: bool | None = None) -> FastAPI:
    """The API over ``workspace``; ``samples``: Monte Carlo samples of situations, briefings and
    maps (and the default of ``GET /forecast``).

    ``auth``: every endpoint but ``/healthz`` and the docs needs an API token
    (``Authorization: Bearer``) of a role allowed there (see :mod:`warroom.server.auth`), each
    token limited to ``rate_per_s`` requests a second (bursts of ``burst``). Without it the API
    is open (and :func:`warroom.server.run.serve` keeps it on loopback).

    Live parts: ``GET /events`` streams alerts, briefings and new reports (SSE). After every
    ingest that lands reports, the alert rules run on the new situation in the background
    (``assess_after_ingest``), so an alert reaches the stream moments after the report that
    fired it (under sustained ingest, at most one assessment per ``assess_interval_s``,
    covering everything that came in meanwhile, and resting at least three times as long as
    the last one took, so it takes at most a quarter of a core from ingest); the estimate,
    forecast and rules of that assessment run in a worker process when the store is a file
    (``assess_in_worker``, see :mod:`warroom.server.assessor`), so they never hold up
    requests. Signed telegrams land in a worker process of their own when the store is a file
    (``land_in_worker``, see :mod:`warroom.server.landing`). ``brief_every_h``: a
    scheduler writes a briefing at each slot, catching up missed ones (marked late).
    ``cot_port``: a CoT listener for TAK clients on ``cot_host:cot_port``; with
    ``cot_forecasts`` it also sends its clients the forecast as CoT (``how="m-p"``,
    :mod:`warroom.publish.cot`) after every assessment and briefing."""
    store = workspace.store
    sc = workspace.scenario
    lock = threading.RLock()
    brief_lock = threading.Lock()
    render_lock = threading.Lock()  # matplotlib is not thread safe
    eparams = estimate_params(sc)
    acfg = alert_config(sc)
    arrival = data.ArrivalValidator(sc)
    plain = workspace.validator()
    with lock:
        keys = KeyStore(store)
        data.init_acks(store)
        authn = (Authenticator(TokenStore(store), lock, RateLimiter(rate_per_s, burst))
                 if auth else None)

    def need(*roles: str) -> list[DependsParam]:
        """Route dependencies: a token of one of ``roles`` (or admin) when ``auth``."""
        return [] if authn is None else [Depends(authn.require(*roles))]

    in_file = store.path != ":memory:" and sc.path is not None
    if land_in_worker is None:
        land_in_worker = in_file
    telegrams: Landing | TelegramWriter = (Landing(store.path, str(sc.path)) if land_in_worker
                                           else TelegramWriter(store, plain, keys, lock))
    if assess_in_worker is None:
        assess_in_worker = in_file
    assessor = Assessor(store.path, str(sc.path)) if assess_in_worker else None
    reporter = need("reporter")
    analyst = need("analyst")

    hub = event_hub or EventHub(max_subscribers=max_streams)
    alert_sink = hub_sink(hub)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        checkpointer = None
        if in_file:  # the server's commits leave WAL checkpoints to a thread
            with lock:
                checkpointer = checkpoint_in_background(store)
        if assessor is not None and assess_after_ingest:
            assessor.start()  # the worker loads while the server starts
        if isinstance(telegrams, Landing):
            telegrams.start()
        task = (asyncio.create_task(BriefingScheduler(make_briefing, last_slot,
                                                      every_h=brief_every_h).run_forever(stop))
                if brief_every_h else None)
        cot = (await start_cot(workspace, cot_host, cot_port, hub=hub, lock=lock,
                               fmt=CotFormat(uid_forces=cot_uid_forces))
               if cot_port is not None else None)
        app.state.cot = cot  # the CoT listener (its port), or None
        if cot is not None and cot_forecasts:
            cot_out["push"] = cot.broadcast_threadsafe(asyncio.get_running_loop())
        try:
            yield
        finally:
            stop.set()
            hub.close()
            if task is not None:
                await task
            if cot is not None:
                await cot.stop()
            await asyncio.to_thread(telegrams.close)
            if assessor is not None:
                await asyncio.to_thread(assessor.close)
            if checkpointer is not None:
                await asyncio.to_thread(checkpointer.stop)

    app = WarroomAPI(title="warroom", version="1", lifespan=lifespan,
                  description="Where each force is, how fast it advances, and who reaches "
                              "each objective first.")
    app.state.hub = hub
    app.state.telegrams = telegrams
    app.include_router(events_router(hub, ping_s=ping_s), dependencies=analyst)

    # -- helpers ---------------------------------------------------------------------------
    def situation(at: int, n: int = samples, seed: int = 0, horizon: float = 30.0,
                  overrides: dict[str, float] | None = None) -> Situation:
        with lock:
            reports = store.reports_by_force(as_of=at)
        return build_situation(sc, reports, at,
                               ForecastParams(samples=n, seed=seed, horizon_days=horizon,
                                              overrides=overrides or {}),
                               eparams)

    def what_if(items: list[str] | None) -> dict[str, float]:
        """``set`` query values (``us3.p_obey=0.1``) as forecast overrides; 422 if wrong."""
        try:
            return parse_overrides(items or [], set(sc.forces),
                                   {o.feature for o in sc.obstacles}, set(sc.lines))
        except OverrideError as e:
            raise HTTPException(422, str(e)) from None

    def briefing_chain(at: int, late: bool = False
                       ) -> tuple[dict[str, Any], dict[str, Alert], list[Transition]]:
        """As ``warroom brief``: the situation, alerts advanced from the stored ones, the
        briefing (nothing saved)."""
        sit = situation(at)
        with lock:
            previous = store.briefing_before(at)
            stored = {a["id"]: Alert.from_dict(a) for a in store.alerts()
                      if a["state"] != "resolved"}
        alerts, transitions = advance(stored, evaluate(sit, previous, acfg), at, acfg)
        return (build_briefing(sit, alerts, transitions, previous, at, late), alerts,
                transitions)

    cot_out: dict[str, Any] = {"push": None}

    def save(alerts: dict[str, Alert], transitions: list[Transition]) -> None:
        with lock:
            store.save_alerts([a.as_dict() for a in alerts.values()],
                              [(t.alert.id, t.to, t.at, payload(t)) for t in transitions])
        for t in transitions:
            alert_sink.send(t)

    def make_briefing(slot: int, late: bool) -> dict[str, Any]:
        """Build, store and announce the briefing of ``slot`` (the scheduler's job too)."""
        with brief_lock:
            b, alerts, transitions = briefing_chain(slot, late)
            save(alerts, transitions)
            with lock:
                store.save_briefing(slot, slot, late, b)
        hub.publish("briefing", briefing_event(b))
        if cot_out["push"] is not None:
            cot_out["push"](cot_render(sc, b))
        return b

    def last_slot() -> int | None:
        with lock:
            return store.last_briefing_slot()

    def assess(now: int) -> None:
        """Run the alert rules on the situation now (after an ingest): fire what fires. The
        rules' heavy half runs in the assessor's process when the store is a file."""
        push = cot_out["push"]
        with brief_lock:
            with lock:
                previous = store.briefing_before(now + 1)
            if assessor is not None:
                conds, cot = assessor.conditions(now, samples, previous, push is not None)
            else:
                with lock:
                    reports = store.reports_by_force(as_of=now)
                conds, cot = conditions_of(sc, reports, now, samples, previous,
                                           push is not None)
            with lock:
                stored = {a["id"]: Alert.from_dict(a) for a in store.alerts()
                          if a["state"] != "resolved"}
            alerts, transitions = advance(stored, conds, now, acfg)
            save(alerts, transitions)
        if push is not None and cot:
            push(cot)

    pending = {"running": False, "again": False}
    pending_lock = threading.Lock()

    def request_assessment() -> None:
        """At most one assessment runs; ingests arriving meanwhile ask for one more after it
        (coalesced), so a sustained ingest never piles up threads or forecasts."""
        with pending_lock:
            if pending["running"]:
                pending["again"] = True
                return
            pending["running"] = True
        threading.Thread(target=assessment_loop, daemon=True, name="warroom-assess").start()

    def assessment_loop() -> None:
        while True:
            started = time.monotonic()
            _safely(assess, int(time.time()))
            with pending_lock:
                if not pending["again"]:
                    pending["running"] = False
                    return
                pending["again"] = False
            # under sustained ingest, one assessment per interval covers all that came in; and
            # it rests at least three times as long as it ran, so it takes at most a quarter of
            # a core from ingest (the alert still follows within a few assessment times)
            took = time.monotonic() - started
            time.sleep(max(assess_interval_s - took, 3 * took))

    def landed(res: dict[str, Any], origin: str, now: int) -> dict[str, Any]:
        if res["accepted"]:
            hub.publish("report", report_event(res, origin))
            if assess_after_ingest:
                request_assessment()
        return res

    def counts(accepted: int, duplicate: int, conflict: int, quarantined: int,
               errors: list[str], fmt: str) -> dict[str, Any]:
        return {"accepted": accepted, "duplicate": duplicate, "conflict": conflict,
                "quarantined": quarantined, "errors": errors, "format": fmt}

    # -- reports ---------------------------------------------------------------------------
    @app.post("/reports", summary="Ingest reports or a signed telegram",
              dependencies=reporter, response_class=JSONResponse,
              responses={200: {"description": "the ingest counts", "content": {
                  "application/json": {"schema": {"type": "object"}}}}},
              openapi_extra={
        "requestBody": {"required": True, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/geo+json": {"schema": {"type": "object"}},
            "application/xml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}}}}})
    async def post_reports(request: Request) -> JSONResponse:
        """Ingest a CSV, NDJSON, GeoJSON or CoT XML body (detected from the content), or one
        signed telegram. Answered once the rows are committed."""
        body = await read_body(request.stream(), request.headers.get("content-length"),
                               max_body_bytes)
        token: TokenInfo | None = getattr(request.state, "token", None)
        return JSONResponse(await take_reports(body, token))

    async def take_reports(body: bytes, token: TokenInfo | None) -> dict[str, Any]:
        """The answer to a ``POST /reports`` of ``body`` (read in full) by ``token``; raises
        HTTPException for a refusal. Served by :class:`ReportsRoute` ahead of FastAPI, and by
        the route above when the app is reached another way."""
        if not body.strip():
            raise HTTPException(400, "empty body; expected CSV, NDJSON, GeoJSON, CoT XML or a "
                                     "signed telegram")
        now = int(time.time())
        telegram = _telegram_body(body)
        if token is not None and token.sources is not None:
            if telegram:
                claimed = {json.loads(body).get("source")}
            else:
                claimed = await run_in_threadpool(_body_sources, body)
            refused = sorted(repr(x) for x in claimed if not token.may_send_for(x))
            if refused:
                raise HTTPException(403, f"token {token.id} may not send reports of source(s) "
                                         f"{', '.join(refused)}; allowed: "
                                         f"{', '.join(token.sources)}")
        if telegram:  # group commit: see warroom.server.telegram_writer
            try:
                r = await telegrams.land(body, now)
            except TelegramError as e:
                raise HTTPException(e.status, e.reason) from None
            except LandingError as e:  # not acknowledged: the station sends it again
                raise HTTPException(503, str(e)) from None
            res = counts(r.accepted, r.duplicate, r.conflict, r.quarantined, r.messages,
                         r.format)
            return landed(res, "telegram", now)
        res = await run_in_threadpool(ingest_file, io.BytesIO(body), now)
        return landed(res, "http", now)

    app.reports_route = ReportsRoute(
        take_reports, None if authn is None else authn.authorizer("reporter"), max_body_bytes)

    def ingest_file(stream: Any, now: int) -> dict[str, Any]:
        with lock:
            arrival.arrival = now
            try:
                r = ingest_stream(store, arrival, stream, origin=f"http:{to_iso(now)}")
            finally:
                arrival.arrival = None
        return counts(r.accepted, r.duplicate, r.conflict, r.quarantined, r.messages, r.format)

    # -- situation, forces, forecast ---------------------------------------------------------
    @app.get("/situation", summary="Every force's estimate and the forecast", dependencies=analyst)
    def get_situation(at: AtQuery = None) -> dict[str, Any]:
        """Estimates of every force (without history) and the forecast, as of ``at``."""
        when = parse_at(at)
        sit = situation(when)
        forces = {}
        for fid, est in sit.estimates.items():
            d = est.as_dict()
            d.pop("history", None)
            d.pop("measurements", None)
            forces[fid] = d
        return {"as_of": to_iso(when), "forces": forces, "forecast": sit.forecast}

    @app.get("/forces", summary="The scenario's forces", dependencies=analyst)
    def get_forces() -> list[dict[str, Any]]:
        """Ids, names and sides of the scenario's forces."""
        return [{"id": f.id, "name": f.name, "side": f.side} for f in sc.forces.values()]

    @app.get("/forces/{force_id}", summary="One force's estimate and the reports behind it",
             dependencies=analyst)
    def get_force(force_id: str, at: AtQuery = None) -> dict[str, Any]:
        """The force's estimate with its smoothed history, its measurements and flags, and
        the reports known as of ``at``."""
        if force_id not in sc.forces:
            raise HTTPException(404, f"no force {force_id!r}; expected one of "
                                     f"{', '.join(sc.forces)}")
        when = parse_at(at)
        with lock:
            reports = store.reports_by_force(as_of=when)
        est = estimate(sc, reports, when, eparams)[force_id]
        d = est.as_dict()
        flags: dict[str, list[str]] = {}
        for fl in d["flags"]:
            flags.setdefault(fl["report"], []).append(fl["reason"])
        f = sc.forces[force_id]
        d["name"] = f.name
        d["side"] = f.side
        d["report_list"] = [
            {"report": f"{r.source}/{r.report_id}", "report_id": r.report_id,
             "source": r.source, "grade": r.grade, "event": r.event,
             "observed_at": to_iso(r.observed_at), "received_at": to_iso(r.received_at),
             "lat": r.lat, "lon": r.lon, "place": r.place, "target": r.target, "text": r.text,
             "flags": flags.get(f"{r.source}/{r.report_id}", [])}
            for r in reports.get(force_id, [])]
        return d

    @app.get("/forecast", summary="The forecast (the `warroom forecast --json` contract)",
             dependencies=analyst)
    def get_forecast(
        at: AtQuery = None,
        samples_: Annotated[int | None, Query(alias="samples", ge=1, le=MAX_SAMPLES,
                                              description="Monte Carlo samples per force")
                            ] = None,
        seed: Annotated[int, Query(description="random seed (same seed, same output)")] = 0,
        horizon: Annotated[float, Query(gt=0, le=3650, description="days ahead")] = 30.0,
        set_: SetQuery = None,
    ) -> dict[str, Any]:
        """When each force reaches each objective, and who gets there first."""
        when = parse_at(at)
        return situation(when, samples_ or samples, seed, horizon, what_if(set_)).forecast

    # -- alerts ----------------------------------------------------------------------------
    @app.get("/alerts", summary="Stored alerts", dependencies=analyst)
    def get_alerts(state: Annotated[str | None, Query(
            description="pending, firing or resolved")] = None) -> list[dict[str, Any]]:
        """Alerts kept in the store, each with ``acked``."""
        if state is not None and state not in ALERT_STATES:
            raise HTTPException(422, f"state: {state!r}; expected one of "
                                     f"{', '.join(ALERT_STATES)}")
        with lock:
            rows = store.alerts(state)
            acks = data.acked_ids(store)
        return [{**a, "acked": a["id"] in acks, "acked_at": to_iso(acks.get(a["id"]))}
                for a in rows]

    @app.post("/alerts/{alert_id:path}/ack", summary="Acknowledge an alert", dependencies=analyst)
    def ack_alert(alert_id: str) -> dict[str, Any]:
        """Mark a stored alert acknowledged (idempotent)."""
        with lock:
            found = [a for a in store.alerts() if a["id"] == alert_id]
            if not found:
                raise HTTPException(404, f"no alert {alert_id!r}")
            at = data.ack(store, alert_id)
        return {**found[0], "acked": True, "acked_at": to_iso(at)}

    # -- briefings ---------------------------------------------------------------------------
    @app.get("/briefings", summary="Stored briefings", dependencies=analyst)
    def get_briefings() -> list[dict[str, Any]]:
        """Slot, as_of and lateness of every stored briefing."""
        with lock:
            return data.list_briefings(store)

    @app.get("/briefings/latest", summary="The latest stored briefing", dependencies=analyst)
    def get_latest() -> dict[str, Any]:
        """The briefing of the latest slot (the schema of :mod:`warroom.brief`)."""
        with lock:
            slot = store.last_briefing_slot()
            b = None if slot is None else data.briefing_at(store, slot)
        if b is None:
            raise HTTPException(404, "no briefing stored yet")
        return b

    @app.get("/briefings/{name}", summary="One stored briefing as md, html, json or pdf",
             dependencies=analyst,
             responses={200: {"content": {t: {} for t in CONTENT_TYPES.values()}}})
    def get_briefing(name: str) -> Response:
        """``SLOT.FMT``: the slot as ``1945-04-12T1200Z`` or ISO 8601, the format one of
        md, html, json, pdf."""
        slot_text, dot, fmt = name.rpartition(".")
        if not dot:
            raise HTTPException(422, f"{name!r}: expected SLOT.FMT, e.g. "
                                     "1945-04-12T1200Z.html")
        if fmt not in RENDERERS:
            raise HTTPException(422, f"format {fmt!r}; expected one of {', '.join(RENDERERS)}")
        slot = parse_slot(slot_text)
        with lock:
            b = data.briefing_at(store, slot)
        if b is None:
            raise HTTPException(404, f"no briefing stored for slot {to_iso(slot)}")
        with render_lock:
            content = RENDERERS[fmt](sc, b)
        return Response(content, media_type=CONTENT_TYPES[fmt])

    @app.post("/briefings", summary="Build and store a briefing now", dependencies=analyst)
    def post_briefing(at: AtQuery = None) -> dict[str, Any]:
        """As ``warroom brief``: evaluate alerts against the stored alerts and the previous
        briefing, save the alerts and the briefing (slot = ``at``); the briefing."""
        return make_briefing(parse_at(at), False)

    @app.get("/map.png", summary="The situation map as of a time (PNG)", dependencies=analyst,
             responses={200: {"content": {"image/png": {}}}}, response_class=Response)
    def get_map(at: AtQuery = None) -> Response:
        """The map of a briefing built as of ``at`` (not stored)."""
        from warroom.publish.map import render_map

        when = parse_at(at)
        b, _, _ = briefing_chain(when)
        with render_lock:
            png = render_map(sc, b)
        return Response(png, media_type="image/png")

    # -- dashboard -------------------------------------------------------------------------
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    state_cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        """The dashboard (plain HTML and ES modules; data from the endpoints below)."""
        return FileResponse(dashboard.STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/dashboard/scenario", summary="The scenario's geometry for the dashboard",
             dependencies=analyst)
    def get_dashboard_scenario() -> dict[str, Any]:
        """Routes, objectives, rivers, halt lines, timetable, map bounds and the reports' time
        range (see :mod:`warroom.server.dashboard`)."""
        with lock:
            first, last = data.time_range(store)
        return dashboard.scenario_geo(sc, (first, last), brief_every_h or 6.0)

    @app.get("/dashboard/state", summary="The situation as the dashboard draws it",
             dependencies=analyst)
    def get_dashboard_state(
        at: AtQuery = None,
        set_: SetQuery = None,
        samples_: Annotated[int | None, Query(alias="samples", ge=1, le=MAX_SAMPLES)] = None,
    ) -> dict[str, Any]:
        """The briefing as of ``at`` (without alerts) with tracks and fans in [lat, lon]."""
        when = parse_at(at)
        overrides = what_if(set_)
        n = samples_ or samples
        with lock:
            version = data.reports_version(store)
            key = (when, tuple(sorted(overrides.items())), n, version)
            hit = state_cache.get(key)
        if hit is not None:
            return hit
        sit = situation(when, n, overrides=overrides)
        state = dashboard.map_state(sc, build_briefing(sit, {}, [], None, when))
        with lock:
            if len(state_cache) >= 256:  # the slider revisits; live "now" keys never repeat
                state_cache.pop(next(iter(state_cache)))
            state_cache[key] = state
        return state

    # -- health ----------------------------------------------------------------------------
    @app.get("/healthz", summary="Liveness and store facts")
    def healthz() -> dict[str, Any]:
        """``{"ok": true, "reports": n, "schema": version}``."""
        with lock:
            return {"ok": True, "reports": store.count_reports(),
                    "schema": store.schema_version, "scenario": sc.name}

    @app.exception_handler(TelegramError)
    async def _telegram_error(_: Request, e: TelegramError) -> JSONResponse:
        return JSONResponse({"detail": e.reason}, status_code=e.status)

    return app
