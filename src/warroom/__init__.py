"""warroom: a situation room for races to objectives.

Field reports about moving forces arrive late, out of order and of mixed reliability; warroom
turns them into where each force is along its route (km), how fast it advances (km/day), when it
will reach each objective and who gets there first.

Data flows one way: ingest -> store -> estimate -> forecast -> assess -> publish.
"""

__version__ = "0.1.0"
