"""Pharmacy lookup and import against a real database (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from core import pharmacies as ph
from core.db import Database
from core.demo import seed_demo
from core.models import Pharmacy, table_of

NOW = datetime(2026, 4, 14, 13, 0, tzinfo=UTC)
# A dense city, a second one, and sparse countryside around them.
CITIES = [(40.72, -73.99, 0.04), (39.95, -75.16, 0.03)]


def generated(rng: random.Random, n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(n):
        if rng.random() < 0.75:
            lat0, lon0, spread = rng.choice(CITIES)
            lat, lon = rng.gauss(lat0, spread), rng.gauss(lon0, spread)
        else:
            lat, lon = rng.uniform(38.5, 42.5), rng.uniform(-78.0, -72.0)
        rows.append(
            {
                "source": "gen",
                "ref": f"g{i}",
                "name": f"Pharmacy {i}",
                "address": f"{i} Main Street",
                "postcode": None,
                "city": None,
                "country": "US",
                "phone": None,
                "opening_hours": "24/7",
                "latitude": lat,
                "longitude": lon,
                "cell": ph.cell_of(lat, lon),
                "active": True,
            }
        )
    return rows


def brute_force(
    rows: list[dict[str, object]], lat: float, lon: float, k: int, max_km: float
) -> list[str]:
    scored = sorted(
        (ph.haversine_km(lat, lon, float(r["latitude"]), float(r["longitude"])), str(r["ref"]))  # type: ignore[arg-type]
        for r in rows
    )
    return [ref for d, ref in scored if d <= max_km][:k]


@pytest.fixture
def generated_db(db: Database) -> tuple[Database, list[dict[str, object]]]:
    rows = generated(random.Random(20260414), 3000)
    with db.transaction() as session:
        ph.load_records(session, rows, now=NOW)
    return db, rows


def test_nearest_equals_brute_force(generated_db: tuple[Database, list[dict[str, object]]]) -> None:
    db, rows = generated_db
    rng = random.Random(7)
    points = [(rng.gauss(40.72, 0.05), rng.gauss(-73.99, 0.05)) for _ in range(60)]
    points += [(rng.uniform(38.5, 42.5), rng.uniform(-78.0, -72.0)) for _ in range(60)]
    with db.transaction() as session:
        for lat, lon in points:
            for k, max_km in ((5, 25.0), (10, 50.0), (1, 3.0)):
                found = ph.nearest(session, lat, lon, limit=k, max_km=max_km)
                assert [f.ref for f in found] == brute_force(rows, lat, lon, k, max_km)
                assert [f.distance_km for f in found] == sorted(f.distance_km for f in found)
                assert all(f.distance_km <= max_km for f in found)


def test_nearest_returns_fields(db: Database) -> None:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
        found = ph.nearest(session, 40.7070, -74.0030, limit=3)
    assert len(found) == 3
    first = found[0]
    assert first.name == "Seaport Apothecary"
    assert first.address == "19 Fulton Street"
    assert first.postcode == "10038" and first.city == "New York" and first.country == "US"
    assert first.phone == "+12125550106" and first.opening_hours == "Mo-Su 08:00-22:00"
    assert 0 < first.distance_km < 0.2


def test_a_point_in_the_sea_finds_nothing(
    generated_db: tuple[Database, list[dict[str, object]]],
) -> None:
    db, _ = generated_db
    with db.transaction() as session:
        assert ph.nearest(session, 36.0, -60.0, limit=5, max_km=25) == []  # mid-Atlantic
        # With a radius that reaches land, the coast answers.
        assert len(ph.nearest(session, 40.0, -71.0, limit=5, max_km=400)) == 5


def test_inactive_pharmacies_are_not_found(db: Database) -> None:
    with db.transaction() as session:
        seed_demo(session)
        first = ph.nearest(session, 40.7075, -74.0021, limit=1)[0]
        session.get(Pharmacy, first.id).active = False  # type: ignore[union-attr]
        session.flush()
        assert ph.nearest(session, 40.7075, -74.0021, limit=1)[0].id != first.id


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(0.0, 179.999), (0.0, -179.999), (89.99, 10.0), (-89.99, -170.0), (60.0, 180.0)],
)
def test_antimeridian_and_poles(db: Database, lat: float, lon: float) -> None:
    rng = random.Random(f"{lat},{lon}")
    rows = []
    for i in range(200):
        la = max(-90.0, min(90.0, lat + rng.uniform(-0.3, 0.3)))
        lo = (lon + rng.uniform(-3, 3) + 180) % 360 - 180
        rows.append(
            {
                "source": "edge",
                "ref": f"e{i}",
                "name": f"E{i}",
                "latitude": la,
                "longitude": lo,
                "cell": ph.cell_of(la, lo),
                "active": True,
            }
            | {c: None for c in ("address", "postcode", "city", "country", "phone")}
            | {"opening_hours": None}
        )
    with db.transaction() as session:
        ph.load_records(session, rows, now=NOW)
        found = ph.nearest(session, lat, lon, limit=5, max_km=60)
    assert [f.ref for f in found] == brute_force(rows, lat, lon, 5, 60)  # type: ignore[arg-type]
    assert found


def test_nearest_rejects_a_non_point(db: Database) -> None:
    with db.transaction() as session, pytest.raises(ValueError):
        ph.nearest(session, 91.0, 0.0)


def test_the_grid() -> None:
    assert ph.cell_of(-90, -180) == 0
    assert ph.cell_of(90, 180) == ph.cell_of(90, -180)  # one meridian, clamped pole row
    assert ph.cell_of(0, 180) == ph.cell_of(0, -180)
    assert ph.cell_of(89.999, 179.999) < 2**31 - 1  # fits the INTEGER column
    assert ph.cell_of(40.71, -74.0) != ph.cell_of(40.71 + ph.CELL_DEG, -74.0)


# -- text search -------------------------------------------------------------------------


def place_rows() -> list[dict[str, object]]:
    specs = [
        ("s1", "Main Pharmacy", "1 Oak Street", "62701", "Springfield", 39.80, -89.65),
        ("s2", "Oak Drugs", "9 Oak Street", "62701", "Springfield", 39.81, -89.64),
        ("s3", "Bay Pharmacy", "4 Elm Street", "01103", "Springfield", 42.10, -72.59),
        ("s4", "Elm Chemist", "7 Elm Street", "SW1A 1AA", "London", 51.50, -0.14),
        ("s5", "Farmacia Central", "Calle Mayor 3", "28013", "Málaga", 36.72, -4.42),
    ]
    return [
        {
            "source": "t",
            "ref": ref,
            "name": name,
            "address": address,
            "postcode": ph.normalize_postcode(postcode),
            "city": city,
            "country": "US",
            "phone": None,
            "opening_hours": None,
            "latitude": lat,
            "longitude": lon,
            "cell": ph.cell_of(lat, lon),
            "active": True,
        }
        for ref, name, address, postcode, city, lat, lon in specs
    ]


@pytest.fixture
def places_db(db: Database) -> Database:
    with db.transaction() as session:
        ph.load_records(session, place_rows(), now=NOW)
    return db


def test_text_by_postcode(places_db: Database) -> None:
    with places_db.transaction() as session:
        result = ph.search_text(session, " sw1a 1aa ", limit=5)
        assert result.kind == "postcode" and not result.ambiguous
        assert result.place is not None and result.place.city == "London"
        near = ph.nearest(session, result.place.latitude, result.place.longitude, limit=1)
        assert near[0].ref == "s4"
        assert ph.search_text(session, "62701", limit=5).place.count == 2  # type: ignore[union-attr]


def test_text_by_town_ignores_case_and_accents(places_db: Database) -> None:
    with places_db.transaction() as session:
        result = ph.search_text(session, "MALAGA", limit=5)
    assert result.kind == "town" and result.place is not None
    assert result.place.city == "Málaga"


def test_ambiguous_town_lists_the_places(places_db: Database) -> None:
    with places_db.transaction() as session:
        result = ph.search_text(session, "springfield", limit=5)
    assert result.kind == "town" and result.ambiguous and result.place is None
    assert [p.label for p in result.places] == ["Springfield (62701)", "Springfield (01103)"]
    assert [p.count for p in result.places] == [2, 1]
    with places_db.transaction() as session:
        assert ph.search_text(session, "springfield", limit=1).more


def test_text_by_street_or_name(places_db: Database) -> None:
    with places_db.transaction() as session:
        street = ph.search_text(session, "oak street", limit=5)
        name = ph.search_text(session, "farmacia", limit=5)
    assert street.kind == "street" and street.place is not None
    assert street.place.city == "Springfield" and street.place.count == 2
    assert name.kind == "street" and name.place is not None and name.place.city == "Málaga"


def test_text_that_matches_nothing(places_db: Database) -> None:
    with places_db.transaction() as session:
        postcode = ph.search_text(session, "99999", limit=5)
        typo = ph.search_text(session, "Springfeld", limit=5)
        empty = ph.search_text(session, "   ", limit=5)
    assert postcode.kind == "none" and postcode.places == ()
    assert typo.kind == "none" and typo.suggestions == ("Springfield",)
    assert empty.kind == "none"


# -- import ------------------------------------------------------------------------------


def rows_of(db: Database) -> list[tuple[object, ...]]:
    t = table_of(Pharmacy)
    columns = [c for c in t.c if c.name not in ("id", "updated_at")]
    with db.transaction() as session:
        return [tuple(r) for r in session.execute(select(*columns).order_by(t.c.ref))]


def geojson(tmp_path: Path, name: str = "Corner Pharmacy") -> Path:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "node/101",
                "geometry": {"type": "Point", "coordinates": [-73.99, 40.73]},
                "properties": {
                    "amenity": "pharmacy",
                    "name": name,
                    "addr:housenumber": "5",
                    "addr:street": "Broadway",
                    "addr:postcode": "10003",
                    "addr:city": "New York",
                    "contact:phone": "+12125550000;+12125550001",
                    "opening_hours": "Mo-Fr 09:00-18:00",
                },
            },
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[-74.0, 40.7], [-74.0, 40.72], [-73.98, 40.72], [-74.0, 40.7]]
                    ],
                },
                "properties": {"@id": "way/202", "amenity": "pharmacy", "brand": "CVS"},
            },
            {
                "type": "Feature",
                "id": "node/303",
                "geometry": None,
                "properties": {"amenity": "pharmacy", "name": "Nowhere"},
            },
            {
                "type": "Feature",
                "id": "node/404",
                "geometry": {"type": "Point", "coordinates": [-73.9, 40.8]},
                "properties": {"amenity": "cafe", "name": "Not a pharmacy"},
            },
        ],
    }
    path = tmp_path / "pharmacies.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def overpass(tmp_path: Path, phone: str = "+441234") -> Path:
    doc = {
        "version": 0.6,
        "elements": [
            {
                "type": "node",
                "id": 1,
                "lat": 51.5,
                "lon": -0.12,
                "tags": {"amenity": "pharmacy", "name": "Boots", "phone": phone},
            },
            {
                "type": "way",
                "id": 2,
                "center": {"lat": 51.51, "lon": -0.13},
                "tags": {"amenity": "pharmacy", "name": "Superdrug", "addr:country": "gb"},
            },
            {"type": "node", "id": 3, "lat": 51.0, "lon": 0.0},  # a way's node: ignored
            {"type": "way", "id": 4, "tags": {"amenity": "pharmacy", "name": "No centre"}},
            {"type": "node", "id": 5, "lat": "x", "lon": 0.0, "tags": {"amenity": "pharmacy"}},
        ],
    }
    path = tmp_path / "overpass.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def csv_file(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "pharmacies.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(ph.CSV_COLUMNS)
        writer.writerows(rows)
    return path


CSV_ROWS = [
    ["c1", "Alpha", "1 A St", "10001", "New York", "US", "+1", "24/7", "40.75", "-73.99"],
    ["c2", "Beta", "2 B St", "10002", "New York", "US", "", "", "", "-73.98"],  # line 3
    ["c3", "Gamma", "3 C St", "10003", "New York", "us", "", "Mo-Fr 09:00-17:00", "40.7", "-74"],
    ["c4", "Delta", "4 D St", "", "", "", "", "", "north", "-74"],  # line 5
    ["c1", "Alpha again", "", "", "", "", "", "", "40.0", "-74"],  # line 6: duplicate
    ["", "No ref", "", "", "", "", "", "", "40.0", "-74"],  # line 7
]


def test_csv_import_reports_bad_rows_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    path = csv_file(tmp_path, CSV_ROWS)
    first = ph.import_file(db, path)
    assert (first.format, first.inserted, first.updated, first.skipped) == ("csv", 2, 0, 4)
    assert [str(p) for p in first.problems] == [
        "line 3: no latitude",
        "line 5: latitude 'north' is not a number from -90 to 90",
        "line 6: duplicate ref 'c1' (first at 2)",
        "line 7: no ref",
    ]
    before = rows_of(db)
    second = ph.import_file(db, path)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    assert rows_of(db) == before
    assert [r[1] for r in before] == ["c1", "c3"]
    assert before[1][6] == "US"  # country upper-cased


def test_csv_reimport_updates(db: Database, tmp_path: Path) -> None:
    ph.import_file(db, csv_file(tmp_path, CSV_ROWS[:1]))
    changed = [[*CSV_ROWS[0][:6], "+2", "Mo-Sa 08:00-20:00", "40.76", "-73.99"]]
    report = ph.import_file(db, csv_file(tmp_path, changed))
    assert (report.inserted, report.updated) == (0, 1)
    (row,) = rows_of(db)
    assert row[7:10] == ("+2", "Mo-Sa 08:00-20:00", 40.76)
    assert row[11] == ph.cell_of(40.76, -73.99)


def test_csv_quoted_multiline_field_keeps_line_numbers(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        'name,ref,latitude,longitude,address\nOne,m1,40.1,-74.1,"two\nlines"\nTwo,m2,,-74.1,x\n',
        encoding="utf-8",
    )
    report = ph.import_file(db, path)
    assert report.inserted == 1
    assert [str(p) for p in report.problems] == ["line 4: no latitude"]


def test_geojson_import_twice(db: Database, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    first = ph.import_file(db, geojson(tmp_path), progress=lambda d, t: progress.append((d, t)))
    assert (first.format, first.inserted, first.skipped, first.ignored) == ("geojson", 2, 1, 1)
    assert [str(p) for p in first.problems] == ["feature 3: no geometry"]
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    rows = rows_of(db)
    corner = next(r for r in rows if r[1] == "node/101")
    assert corner[0] == "osm"
    assert corner[2:8] == (
        "Corner Pharmacy",
        "5 Broadway",
        "10003",
        "New York",
        None,
        "+12125550000",
    )
    cvs = next(r for r in rows if r[1] == "way/202")
    assert cvs[2] == "CVS" and abs(cvs[9] - 40.7133) < 0.001  # type: ignore[operator]
    again = ph.import_file(db, geojson(tmp_path))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert rows_of(db) == rows
    renamed = ph.import_file(db, geojson(tmp_path, name="Corner Drugs"))
    assert (renamed.inserted, renamed.updated, renamed.unchanged) == (0, 1, 1)
    assert len(rows_of(db)) == 2


def test_overpass_import_twice(db: Database, tmp_path: Path) -> None:
    first = ph.import_file(db, overpass(tmp_path))
    assert (first.format, first.inserted, first.ignored) == ("overpass", 2, 1)
    assert [str(p) for p in first.problems] == [
        "element 4: way without a center (query with `out center`)",
        "element 5: latitude 'x' is not a number from -90 to 90",
    ]
    rows = rows_of(db)
    assert [r[1] for r in rows] == ["node/1", "way/2"]
    assert rows[1][6] == "GB"
    assert ph.import_file(db, overpass(tmp_path)).unchanged == 2
    assert rows_of(db) == rows
    assert ph.import_file(db, overpass(tmp_path, phone="+449999")).updated == 1
    assert rows_of(db)[0][7] == "+449999"


def test_large_import_spans_batches(db: Database, tmp_path: Path) -> None:
    rows = generated(random.Random(3), 2500)
    path = csv_file(
        tmp_path,
        [
            [
                str(r["ref"]),
                str(r["name"]),
                "",
                "",
                "",
                "",
                "",
                "",
                str(r["latitude"]),
                str(r["longitude"]),
            ]
            for r in rows
        ],
    )
    assert ph.import_file(db, path, batch_size=1000).inserted == 2500
    again = ph.import_file(db, path, batch_size=700)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2500)
    with db.transaction() as session:
        assert ph.count(session) == 2500


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("[section]\nkey = 1\n", "x.ini", "not a recognised format"),
        ('{"type": "Feature"}', "x.json", "neither a GeoJSON FeatureCollection nor Overpass"),
        ("{broken", "x.json", "not valid JSON"),
        ("", "x.csv", "empty"),
    ],
)
def test_unrecognised_files(
    db: Database, tmp_path: Path, content: str, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ph.ImportFormatError, match=message):
        ph.import_file(db, path)
    with pytest.raises(ph.ImportFormatError, match="no such file"):
        ph.import_file(db, tmp_path / "missing.csv")


def test_demo_seeds_pharmacies_once(db: Database) -> None:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
        assert ph.count(session) == 8
        seed_demo(session, "America/New_York")
        assert ph.count(session) == 8
        hours = {f.name: f.opening_hours for f in ph.nearest(session, 40.7075, -74.0021, limit=8)}
    assert hours["Riverside Pharmacy"] == "24/7"
    assert hours["Night Owl Pharmacy"] == "Mo-Su 18:00-02:00"
    assert hours["Chambers Street Chemist"] == "Mo-Fr 08:00-20:00; PH off"
    assert "Su off" in hours["Harbor Drugs"]
