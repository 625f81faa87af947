"""The forecast stage: Monte Carlo ETAs to every objective, race odds, timetable threats.

``plan`` turns the scenario, the estimates and the reports into per-force tables (what lies
ahead on each route); ``engine`` simulates them; ``summary`` turns arrival times into the
forecast JSON.
"""
