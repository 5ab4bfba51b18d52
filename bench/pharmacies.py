"""Pharmacies at scale: import rate, and nearest-10 query latency.

50,000 generated pharmacies (seeded: 70% in 40 towns of a country-sized
area, denser in a few big cities, the rest spread over the countryside) are
written to a CSV and a GeoJSON file and imported with ``import_file`` into a
fresh migrated database (the CSV twice: a re-import that changes nothing,
and then the GeoJSON under its own source). Then 1,000 random points (half
in towns, half anywhere in the area) each ask ``nearest(limit=10,
max_km=25)``. Prints rows/s and p50/p99 against the targets (import >= 5,000
rows/s; query p99 <= 10 ms); asserts nothing. With --postgres URL the same
runs against PostgreSQL too, in a database of its own created on that server
and dropped afterwards.

    .venv/bin/python bench/pharmacies.py [--pharmacies 50000] [--queries 1000]
    .venv/bin/python bench/pharmacies.py --postgres postgresql+psycopg://postgres@127.0.0.1/scratch
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scratch import postgres_database, sqlite_database  # noqa: E402 (bench/ is on the path when a bench runs)

from core import pharmacies  # noqa: E402
from core.db import Database  # noqa: E402

IMPORT_TARGET = 5_000  # rows/s
P99_TARGET_MS = 10.0
# Roughly Spain's mainland: 50,000 pharmacies is a country of that size's worth.
AREA = (36.5, 43.5, -9.0, 3.0)


def towns(rng: random.Random) -> list[tuple[float, float, float, float]]:
    """(lat, lon, spread in degrees, weight): a few big cities, many towns."""
    south, north, west, east = AREA
    out = []
    for i in range(40):
        big = i < 4
        out.append(
            (
                rng.uniform(south, north),
                rng.uniform(west, east),
                0.08 if big else 0.03,
                12.0 if big else 1.0,
            )
        )
    return out


def generate(n: int, seed: int = 42) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    places = towns(rng)
    weights = [w for *_, w in places]
    south, north, west, east = AREA
    points = []
    for _ in range(n):
        if rng.random() < 0.7:
            lat, lon, spread, _ = rng.choices(places, weights)[0]
            points.append((rng.gauss(lat, spread), rng.gauss(lon, spread)))
        else:
            points.append((rng.uniform(south, north), rng.uniform(west, east)))
    return points


def write_csv(path: Path, points: list[tuple[float, float]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(pharmacies.CSV_COLUMNS)
        for i, (lat, lon) in enumerate(points):
            writer.writerow(
                [
                    f"b{i}",
                    f"Farmacia {i}",
                    f"Calle {i % 500} {i % 90}",
                    f"{28000 + i % 2000:05d}",
                    f"Town {i % 300}",
                    "ES",
                    f"+3491{i:07d}",
                    "Mo-Fr 09:00-14:00,17:00-20:30; Sa 10:00-14:00; PH off",
                    f"{lat:.6f}",
                    f"{lon:.6f}",
                ]
            )


def write_geojson(path: Path, points: list[tuple[float, float]]) -> None:
    features = [
        {
            "type": "Feature",
            "id": f"node/{i}",
            "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
            "properties": {
                "amenity": "pharmacy",
                "name": f"Farmacia {i}",
                "addr:street": f"Calle {i % 500}",
                "addr:housenumber": str(i % 90),
                "addr:city": f"Town {i % 300}",
                "opening_hours": "Mo-Sa 09:00-21:00",
            },
        }
        for i, (lat, lon) in enumerate(points)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def timed_import(db: Database, path: Path, label: str, source: str | None = None) -> None:
    start = time.perf_counter()
    report = pharmacies.import_file(db, path, source=source)
    seconds = time.perf_counter() - start
    rate = report.total / seconds
    verdict = "ok" if rate >= IMPORT_TARGET else "BELOW TARGET"
    print(
        f"  import {label}: {report.total:,} rows in {seconds:.2f} s = {rate:,.0f} rows/s "
        f"({report.inserted:,} new, {report.updated:,} updated, {report.unchanged:,} "
        f"unchanged) target >= {IMPORT_TARGET:,} rows/s: {verdict}"
    )


def run(db: Database, files: dict[str, Path], queries: int) -> None:
    timed_import(db, files["csv"], "CSV      ")
    timed_import(db, files["csv"], "CSV again")
    timed_import(db, files["geojson"], "GeoJSON  ", source="osm")
    rng = random.Random(7)
    south, north, west, east = AREA
    places = towns(random.Random(42))
    points = []
    for i in range(queries):
        if i % 2:
            lat, lon, spread, _ = rng.choice(places)
            points.append((rng.gauss(lat, spread), rng.gauss(lon, spread)))
        else:
            points.append((rng.uniform(south, north), rng.uniform(west, east)))
    timings: list[float] = []
    found = empty = 0
    with db.transaction() as session:
        for lat, lon in points[:20]:  # warm the caches (statements, pages)
            pharmacies.nearest(session, lat, lon, limit=10, max_km=25)
        for lat, lon in points:
            start = time.perf_counter()
            result = pharmacies.nearest(session, lat, lon, limit=10, max_km=25)
            timings.append((time.perf_counter() - start) * 1000)
            found += len(result)
            empty += not result
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, round(0.99 * len(timings)) - 1)]
    verdict = "ok" if p99 <= P99_TARGET_MS else "ABOVE TARGET"
    print(
        f"  nearest-10 (25 km) over {queries:,} points: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {timings[-1]:.2f} ms (target p99 <= {P99_TARGET_MS:.0f} ms: {verdict}); "
        f"{found / queries:.1f} found on average, {empty} points with none within 25 km"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--pharmacies", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL")
    args = parser.parse_args()
    points = generate(args.pharmacies)
    print(f"pharmacies bench: {args.pharmacies:,} pharmacies, {args.queries:,} queries")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"csv": Path(tmp) / "pharmacies.csv", "geojson": Path(tmp) / "pharmacies.geojson"}
        write_csv(files["csv"], points)
        write_geojson(files["geojson"], points)
        print("SQLite (temporary file)")
        with sqlite_database() as db:
            run(db, files, args.queries)
        if args.postgres:
            print(f"PostgreSQL ({make_url(args.postgres).render_as_string(hide_password=True)})")
            with postgres_database(args.postgres, "bench_pharmacies") as db:
                run(db, files, args.queries)


if __name__ == "__main__":
    main()
