"""Estimate parameters of a scenario: the defaults, overridden by ``[estimate]`` in
scenario.toml (keys as in :class:`~warroom.estimate.track.EstimateParams`, IMM ones under
``[estimate.imm]``)."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

from warroom.domain import Scenario
from warroom.estimate.track import EstimateParams
from warroom.scenario import ScenarioError


def estimate_params(scenario: Scenario) -> EstimateParams:
    """The scenario's estimate parameters (ScenarioError naming a wrong key)."""
    cfg: dict[str, Any] = {}
    if scenario.path is not None:
        with open(scenario.path / "scenario.toml", "rb") as fh:
            cfg = tomllib.load(fh).get("estimate") or {}
    imm_cfg = cfg.pop("imm", {}) if isinstance(cfg, dict) else {}
    known = {f.name for f in dataclasses.fields(EstimateParams)} - {"imm"}
    bad = sorted(set(cfg) - known)
    if bad:
        raise ScenarioError([f"scenario.toml [estimate]: unknown key(s) {', '.join(bad)}; "
                             f"expected {', '.join(sorted(known))}"])
    base = EstimateParams(**cfg)
    if not imm_cfg:
        return base
    imm = dataclasses.replace(base.imm, **{
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in imm_cfg.items()})
    return dataclasses.replace(base, imm=imm)
