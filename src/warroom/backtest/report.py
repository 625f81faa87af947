"""The backtest's outputs, all from its JSON-ready result
(:func:`warroom.backtest.run.run_backtest`): Rich tables for the terminal, the figures
(matplotlib, PNG) and one self-contained HTML page (inline CSS, images as ``data:`` URIs, no
script, no external URL: it opens offline).

Figures: the reliability diagram of P(first) (forecast probability against observed frequency,
with the number of events per bin), coverage over lead time (p10-p90 coverage and the share at
or below p50, by how far ahead the forecast's median put the arrival), and P(first) of each
racer over the cut-offs with the actual winner's arrival.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from warroom.domain import Scenario
from warroom.publish import style
from warroom.publish.html import data_uri
from warroom.timeutil import parse_time

NOTES = (
    "Each cut-off forecasts from the reports received by then (the bitemporal rule) and is "
    "scored against the arrivals the full record shows ('reached'/'crossed' reports, else "
    "the smoothed track of all reports crossing the objective).",
    "Not scored, counted: forces with no report yet; objectives already reached by the cut-off "
    "(nothing left to forecast); 'censored' cases, where the record shows no arrival and ends "
    "before cut-off + horizon, so what happened is unknown. No arrival while the record runs "
    "past the horizon is scored as 'beyond the horizon'.",
    "Coverage counts a forecast's point mass at 'beyond the horizon' by the randomised PIT "
    "(its expected share). CRPS is in days, arrivals beyond the horizon counted as horizon + "
    "1 day. Naive: the last filtered speed held constant from the last report (a point "
    "forecast: CRPS = absolute error). Skill = 1 - CRPS / naive CRPS.",
)


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct(x: float | None) -> str:
    return _f(None if x is None else 100 * x, "{:.0f}%")


def headline(bt: dict[str, Any]) -> str:
    o = bt["eta"]["overall"]
    r = bt["races"]
    return (f"ETA: p10-p90 coverage {_pct(o['coverage_p10_p90'])} (target 80%), at or below "
            f"p50 {_pct(o['share_at_or_below_p50'])} (target 50%), CRPS {_f(o['crps_days'])} d "
            f"vs naive {_f(o['naive_crps_days'])} d (skill {_f(o['skill'])}), "
            f"{o['n']} cases; P(first): Brier {_f(r['brier'], '{:.3f}')} vs naive "
            f"{_f(r['naive_brier'], '{:.3f}')} and uniform {_f(r['uniform_brier'], '{:.3f}')}, "
            f"{r['events']} events")


def title(bt: dict[str, Any]) -> str:
    every = f" every {bt['every_h']:g} h" if bt.get("every_h") else ""
    return (f"Backtest of {bt['scenario']}: {bt['cutoffs']} cut-offs{every} "
            f"from {bt['from']} to {bt['to']}, {bt['samples']} samples, seed {bt['seed']}, "
            f"horizon {bt['horizon_days']:g} days; the record ends {bt['record_end']}")


def _not_scored(d: dict[str, int] | None) -> str:
    if not d:
        return "-"
    return " / ".join(str(d[k]) for k in ("censored", "already_arrived", "no_estimate"))


def eta_table(bt: dict[str, Any]) -> Table:
    t = Table("force", "objective", "actual arrival", "cases", "p10-p90", "<= p50",
              "CRPS d", "naive d", "skill", "not scored\ncens./done/no rep.",
              title="ETA per force and objective", title_justify="left", header_style="bold")
    for row in bt["eta"]["by_force_objective"]:
        actual = f"{row['actual'][:16]}Z\n{row['actual_from']}" if row["actual"] else \
            row["actual_from"]
        t.add_row(row["force_name"], row["objective_name"], actual, str(row["n"]),
                  _pct(row["coverage_p10_p90"]), _pct(row["share_at_or_below_p50"]),
                  _f(row["crps_days"]), _f(row["naive_crps_days"]), _f(row["skill"]),
                  _not_scored(row["not_scored"]))
    o = bt["eta"]["overall"]
    t.add_row("all", "", "", str(o["n"]), _pct(o["coverage_p10_p90"]),
              _pct(o["share_at_or_below_p50"]), _f(o["crps_days"]), _f(o["naive_crps_days"]),
              _f(o["skill"]), _not_scored(bt["eta"]["not_scored"]), style="bold")
    return t


def lead_table(bt: dict[str, Any]) -> Table:
    t = Table("forecast median ahead", "cases", "p10-p90", "<= p50", "CRPS d", "naive d",
              "skill", title="By lead time (how far ahead the forecast's median put the "
              "arrival)", title_justify="left", header_style="bold")
    for row in bt["eta"]["by_lead_time"]:
        t.add_row(row["lead"], str(row["n"]), _pct(row["coverage_p10_p90"]),
                  _pct(row["share_at_or_below_p50"]), _f(row["crps_days"]),
                  _f(row["naive_crps_days"]), _f(row["skill"]))
    return t


def race_table(bt: dict[str, Any]) -> Table:
    t = Table("race", "winner", "arrival", "events", "Brier", "naive", "uniform",
              "winner's P(first)\nlast / max before", "lead time",
              title="Races: P(first)", title_justify="left", header_style="bold")
    for r in bt["races"]["by_race"]:
        winner = r["winner_name"] or "nobody in the record"
        if r["lead_time_h"] is not None:
            lead = f"{r['lead_time_h'] / 24:.1f} d (from {r['called_from'][:16]}Z)"
            if r["called_at_first_cutoff"]:
                lead = "at least " + lead
        elif r["winner"] is None:
            lead = "-"
        else:
            lead = "never called"
        t.add_row(r["name"], winner, (r["arrival"] or "-")[:16], str(r["events"]),
                  _f(r["brier"], "{:.3f}"), _f(r["naive_brier"], "{:.3f}"),
                  _f(r["uniform_brier"], "{:.3f}"),
                  f"{_f(r['winner_p_last'])} / {_f(r['winner_p_max'])}", lead)
    races = bt["races"]
    t.add_row("all", "", "", str(races["events"]), _f(races["brier"], "{:.3f}"),
              _f(races["naive_brier"], "{:.3f}"), _f(races["uniform_brier"], "{:.3f}"), "", "",
              style="bold")
    return t


def reliability_table(bt: dict[str, Any]) -> Table:
    t = Table("P(first)", "events", "mean forecast", "observed",
              title="Reliability of P(first)", title_justify="left", header_style="bold")
    for b in bt["races"]["reliability"]:
        if b["n"]:
            t.add_row(f"{b['lo']:.1f}-{b['hi']:.1f}", str(b["n"]), _f(b["mean_forecast"]),
                      _f(b["observed"]))
    return t


def tables(bt: dict[str, Any]) -> list[Table]:
    out = [eta_table(bt), lead_table(bt)]
    if bt["races"]["by_race"]:
        out += [race_table(bt), reliability_table(bt)]
    return out


def not_scored_lines(bt: dict[str, Any]) -> list[str]:
    e, r = bt["eta"]["not_scored"], bt["races"]["not_scored"]
    return [f"Not scored: {e['censored']} censored ETA case(s) (no arrival in the record, which "
            f"ends before cut-off + horizon), {e['already_arrived']} already arrived, "
            f"{e['no_estimate']} with no report yet; {r['censored']} censored and "
            f"{r['decided']} already decided race cut-off(s)."]


# -- figures -------------------------------------------------------------------------------------
def reliability_png(bt: dict[str, Any], width_px: int = 900, dpi: float = 130) -> bytes:
    fig = style.new_figure(width_px, round(width_px * 0.8), dpi)
    ax = fig.add_axes((0.11, 0.33, 0.84, 0.6))
    bars = fig.add_axes((0.11, 0.08, 0.84, 0.15), sharex=ax)
    bins = bt["races"]["reliability"]
    ax.plot([0, 1], [0, 1], color=style.GREY, lw=1, ls="--", label="perfectly reliable")
    full = [b for b in bins if b["n"]]
    if full:
        n_max = max(b["n"] for b in full)
        ax.plot([b["mean_forecast"] for b in full], [b["observed"] for b in full], color="#1f4e9c",
                lw=1.5, marker="o", zorder=3, label="observed frequency")
        ax.scatter([b["mean_forecast"] for b in full], [b["observed"] for b in full],
                   s=[30 + 270 * b["n"] / n_max for b in full], color="#1f4e9c", alpha=0.35,
                   zorder=2)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed frequency", family=style.FONT)
    ax.set_title(f"Reliability of P(first): {bt['races']['events']} events, "
                 f"Brier {_f(bt['races']['brier'], '{:.3f}')}", family=style.FONT, fontsize=11)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax.tick_params(labelbottom=False)
    bars.bar([(b["lo"] + b["hi"]) / 2 for b in bins], [b["n"] for b in bins],
             width=[0.9 * (b["hi"] - b["lo"]) for b in bins], color=style.GREY)
    bars.set_xlabel("forecast P(first)", family=style.FONT)
    bars.set_ylabel("events", family=style.FONT, fontsize=8)
    return style.png_bytes(fig)


def coverage_png(bt: dict[str, Any], width_px: int = 900, dpi: float = 130) -> bytes:
    rows = bt["eta"]["by_lead_time"]
    fig = style.new_figure(width_px, round(width_px * 0.55), dpi)
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.68))
    x = list(range(len(rows)))
    cov = [r["coverage_p10_p90"] if r["coverage_p10_p90"] is not None else math.nan
           for r in rows]
    med = [r["share_at_or_below_p50"] if r["share_at_or_below_p50"] is not None else math.nan
           for r in rows]
    ax.bar([i - 0.2 for i in x], cov, width=0.4, color="#1f4e9c", label="p10-p90 coverage")
    ax.bar([i + 0.2 for i in x], med, width=0.4, color="#b8860b", label="share at or below p50")
    ax.axhline(0.8, color="#1f4e9c", ls="--", lw=1)
    ax.axhline(0.5, color="#b8860b", ls="--", lw=1)
    for i, r in enumerate(rows):
        ax.text(i, 1.03, f"n={r['n']}", ha="center", fontsize=8, family=style.FONT)
    ax.set_xticks(x, [r["lead"] for r in rows], family=style.FONT, fontsize=9)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("how far ahead the forecast's median put the arrival", family=style.FONT)
    ax.set_title("Coverage over lead time (dashed: 80% and 50%, the calibrated values)",
                 family=style.FONT, fontsize=11)
    ax.legend(loc="lower left", fontsize=8, frameon=True)
    ax.grid(axis="y", alpha=0.3)
    return style.png_bytes(fig)


def races_png(scenario: Scenario | None, bt: dict[str, Any], width_px: int = 900,
              dpi: float = 130) -> bytes | None:
    races = [r for r in bt["races"]["by_race"] if r["series"]["cutoffs"]]
    if not races or len(races) > 12:  # many races (synthetic): the table and diagram say it
        return None
    colors = style.force_colors(scenario, {}) if scenario is not None else {}
    fig = style.new_figure(width_px, round(260 * len(races) + 60), dpi)
    h = 1.0 / len(races)
    for k, r in enumerate(races):
        ax = fig.add_axes((0.09, 1 - (k + 1) * h + 0.09 * h, 0.62, 0.75 * h))
        t = [parse_time(c) / 86400 for c in r["series"]["cutoffs"]]
        for f, p in r["series"]["p_first"].items():
            ax.plot(t, [math.nan if v is None else v for v in p], lw=1.4,
                    color=colors.get(f), label=r["names"].get(f, f))
        if r["arrival"]:
            ax.axvline(parse_time(r["arrival"]) / 86400, color="k", lw=1, ls=":")
        ax.axhline(0.5, color=style.GREY, lw=0.8, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("P(first)", family=style.FONT, fontsize=9)
        ax.set_title(f"{r['name']}: winner {r['winner_name'] or 'none in the record'}"
                     + (f", arrived {r['arrival'][:16]}Z (dotted)" if r["arrival"] else ""),
                     family=style.FONT, fontsize=10, loc="left")
        ticks = ax.get_xticks()
        from warroom.timeutil import to_iso

        ax.set_xticks(ticks, [(to_iso(v * 86400) or "")[5:10] for v in ticks], fontsize=8)
        ax.set_xlim(t[0], t[-1])
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return style.png_bytes(fig)


# -- HTML --------------------------------------------------------------------------------------
CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1d;
       background: #f4f3ef; margin: 0; line-height: 1.4; font-size: 15px; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 1.6em 3em; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
p.lead { background: #fff7e0; border-left: 4px solid #b8860b; padding: 0.6em 1em; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; margin: 0.4em 0 0.8em; }
th, td { border-bottom: 1px solid #e2e2e2; padding: 0.3em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #f0efe9; } td.num { text-align: right; white-space: nowrap; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, p.muted { color: #666; font-size: 0.85em; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_e(c.header)}</th>" for c in t.columns)
    cols = [list(c.cells) for c in t.columns]
    rows = []
    for i in range(t.row_count):
        cells = []
        for c in cols:
            text = str(c[i])
            num = bool(text) and (text[0].isdigit() or text[0] in "-.") and " " not in text
            cells.append(f"<td{' class=num' if num else ''}>"
                         f"{_e(text).replace(chr(10), '<br>')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<h2>{_e(t.title)}</h2>" if t.title else ""
    return f"{cap}<table><tr>{head}</tr>{''.join(rows)}</table>"


def _figure(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return ""
    return (f'<figure><img alt="{_e(alt)}" src="{data_uri(png)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def render_html(bt: dict[str, Any], scenario: Scenario | None = None) -> str:
    """The whole report as one HTML page."""
    parts = [f"<h1>{_e(title(bt))}</h1>", f'<p class="lead">{_e(headline(bt))}</p>']
    parts.append(_figure(coverage_png(bt), "coverage over lead time",
                         "p10-p90 coverage (should be near 80%) and the share of actual "
                         "arrivals at or before the forecast median (near 50%), by how far "
                         "ahead the median was."))
    ts = tables(bt)
    parts.append(_html_table(ts[0]))
    parts.append(_html_table(ts[1]))
    if bt["races"]["by_race"]:
        parts.append(_figure(reliability_png(bt), "reliability diagram of P(first)",
                             "Each dot: the events whose forecast P(first) fell in a bin; "
                             "on the diagonal when reliable. Bars: events per bin."))
        parts.append(_html_table(ts[2]))
        parts.append(_figure(races_png(scenario, bt), "P(first) over the cut-offs",
                             "P(first) of each racer at each cut-off; dotted: the winner's "
                             "actual arrival; dashed: 0.5."))
        parts.append(_html_table(ts[3]))
    parts.append("<h2>How it is scored</h2>")
    parts += [f'<p class="muted">{_e(n)}</p>' for n in (*NOTES, *not_scored_lines(bt))]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title(bt))}</title>
<style>{CSS}</style></head><body><main>
{chr(10).join(p for p in parts if p)}
</main></body></html>
"""


def pngs(bt: dict[str, Any], scenario: Scenario | None = None) -> Sequence[bytes]:
    """The figures (for tests and callers that want them apart)."""
    out = [coverage_png(bt), reliability_png(bt)]
    r = races_png(scenario, bt)
    return out + ([r] if r is not None else [])
