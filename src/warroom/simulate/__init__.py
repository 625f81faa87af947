"""Synthetic races with known truth, written as a scenario folder (``warroom simulate``).

- :mod:`~warroom.simulate.world`: the geography: forces in races of a few, each on its own
  route to its race's objective, across rivers and halt lines;
- :mod:`~warroom.simulate.generate`: the true tracks (:func:`warroom.synthetic.simulate_truth`,
  the forecast's own generative model) and the reports about them: reporting delays by
  source, noise by Admiralty grade, off-axis and false reports, ``reached``/``crossed``/
  ``halted`` events;
- :mod:`~warroom.simulate.write`: the scenario folder (``scenario.toml``, ``world.geojson``,
  ``reports.csv``) and the truth (``truth.csv``, ``truth_track.csv``,
  ``truth_reports.csv``).
"""

from warroom.simulate.generate import SimSpec, Simulation, simulate
from warroom.simulate.write import write_scenario

__all__ = ["SimSpec", "Simulation", "simulate", "write_scenario"]
