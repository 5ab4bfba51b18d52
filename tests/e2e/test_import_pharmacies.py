"""`telemed import-pharmacies FILE`, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_cli import Cli, one_line_failure

HEADER = "ref,name,address,postcode,city,country,phone,opening_hours,latitude,longitude\n"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    assert cli("db", "upgrade").returncode == 0
    return cli


def test_imports_csv_twice_and_reports_bad_lines(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "pharmacies.csv"
    path.write_text(
        HEADER
        + "p1,One,1 Main St,10001,New York,US,+1555,24/7,40.75,-73.99\n"
        + "p2,Two,2 Main St,10001,New York,US,,,,-73.98\n"
        + "p3,Three,3 Main St,10001,New York,US,,,40.7,-74.0\n",
        encoding="utf-8",
    )
    first = cli("import-pharmacies", str(path))
    assert first.returncode == 0, first.stderr
    assert "2 new, 0 updated, 0 unchanged; skipped 1" in first.stdout
    assert "line 3: no latitude" in first.stdout
    second = cli("import-pharmacies", str(path))
    assert second.returncode == 0, second.stderr
    assert "0 new, 0 updated, 2 unchanged; skipped 1" in second.stdout


def test_imports_geojson(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "export.geojson"
    feature = {
        "type": "Feature",
        "id": "node/1",
        "geometry": {"type": "Point", "coordinates": [2.35, 48.85]},
        "properties": {"amenity": "pharmacy", "name": "Pharmacie", "opening_hours": "24/7"},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    result = cli("import-pharmacies", str(path))
    assert result.returncode == 0, result.stderr
    assert "geojson, imported 1 pharmacies: 1 new" in result.stdout


def test_missing_file_and_unknown_format_fail_in_one_line(cli: Cli, tmp_path: Path) -> None:
    assert "no such file" in one_line_failure(cli("import-pharmacies", str(tmp_path / "no.csv")))
    odd = tmp_path / "notes.txt"
    odd.write_text("hello,world\n1,2\n")
    assert "not a recognised format" in one_line_failure(cli("import-pharmacies", str(odd)))


def test_all_rows_bad_fails(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "p1,One,,,,,,,north,south\n")
    result = cli("import-pharmacies", str(path))
    assert one_line_failure(result) == ("telemed: no pharmacy imported: all 1 rows were malformed")
    assert "line 2: latitude 'north'" in result.stdout


def test_bad_usage_exits_2(cli: Cli) -> None:
    assert cli("import-pharmacies").returncode == 2
