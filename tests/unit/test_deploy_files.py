"""The deployment files: docker-compose.yml, .env.example, Dockerfile, .dockerignore.

No Docker engine is needed: docker-compose.yml is checked against the
compose-spec JSON schema shipped in check-jsonschema (the CI check), and its
shape against what the service needs. ``docker compose config`` runs too when
a working engine is there.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bots.cli import RoleName
from core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("web", "worker", "scheduler")
SETTING_NAMES = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
# A setting's assignment in .env.example, live or commented out.
_ASSIGNMENT = re.compile(r"^(#\s*)?(TELEMED_[A-Z0-9_]+)=(.*)$")


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _load(COMPOSE)
    return loaded


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_matches_the_compose_spec() -> None:
    result = _schema_check(COMPOSE)
    if "No module named check_jsonschema" in result.stderr:
        pytest.fail("check-jsonschema is missing: pip install -e '.[dev]'")
    assert result.returncode == 0, result.stdout + result.stderr


def _break_replicas(doc: dict[str, Any]) -> None:
    doc["services"]["web"]["deploy"] = {"replicas": [2]}


def _break_condition(doc: dict[str, Any]) -> None:
    doc["services"]["web"]["depends_on"]["migrate"]["condition"] = "service_done"


def _break_key(doc: dict[str, Any]) -> None:
    doc["services"]["worker"]["comand"] = doc["services"]["worker"].pop("command")


def _break_healthcheck(doc: dict[str, Any]) -> None:
    doc["services"]["web"]["healthcheck"]["interval"] = 10


@pytest.mark.parametrize(
    ("breakage", "valid"),
    [
        (None, True),
        (_break_replicas, False),
        (_break_condition, False),
        (_break_key, False),
        (_break_healthcheck, False),
    ],
    ids=["unchanged", "replicas-list", "bad-condition", "misspelt-key", "interval-number"],
)
def test_schema_check_rejects_a_broken_compose_file(
    tmp_path: Path, breakage: Any, valid: bool
) -> None:
    """The schema check is not vacuous: the same file, re-written with one
    mistake, fails it (and re-written unchanged, passes)."""
    doc = _load(COMPOSE)
    if breakage is not None:
        breakage(doc)
    out = io.StringIO()
    YAML(typ="safe").dump(doc, out)
    path = tmp_path / "docker-compose.yml"
    path.write_text(out.getvalue())
    result = _schema_check(path)
    assert (result.returncode == 0) is valid, result.stdout + result.stderr


def test_every_role_has_its_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "migrate", *APP_SERVICES} <= set(services)
    for name, service in services.items():
        command = service.get("command") or []
        if "serve" not in command:
            continue
        role = command[command.index("--role") + 1]
        assert role in {r.value for r in RoleName}, (name, role)
        # Migrations are the one-shot service's job, never a replica's.
        assert "--no-migrate" in command, name
    for role in APP_SERVICES:
        command = services[role]["command"]
        assert command[:2] == ["telemed", "serve"]
        assert command[command.index("--role") + 1] == role
        assert command[command.index("--host") + 1] == "0.0.0.0"


def test_web_has_two_replicas_behind_the_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = services["web"]
    # The schema allows a string here (for ${...}); a literal count is expected.
    replicas = web["deploy"]["replicas"]
    assert isinstance(replicas, int) and replicas == 2
    assert "ports" not in web, "two replicas cannot publish one host port"
    proxies = [s for s in services.values() if "ports" in s]
    assert len(proxies) == 1
    assert all(str(p).startswith("127.0.0.1:") for p in proxies[0]["ports"])
    # Forwarded headers are trusted from the proxy's fixed address only.
    address = proxies[0]["networks"]["default"]["ipv4_address"]
    assert web["environment"]["FORWARDED_ALLOW_IPS"] == address
    # Caddy re-resolves `web` (every replica) instead of pinning one address.
    caddyfile = compose["configs"]["caddyfile"]["content"]
    assert re.search(r"dynamic a \{\s*name web\s*port 8000\b", caddyfile), caddyfile


def test_migrate_runs_once_and_the_roles_wait_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["telemed", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    for role in APP_SERVICES:
        wait = services[role]["depends_on"]["migrate"]["condition"]
        assert wait == "service_completed_successfully", role
        assert "healthcheck" in services[role], role


def test_roles_share_one_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("migrate", *APP_SERVICES):
        service = services[name]
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        assert "@postgres:5432/" in service["environment"]["TELEMED_DATABASE_URL"], name
    for role in ("worker", "scheduler"):
        assert services[role]["environment"]["TELEMED_METRICS_PORT"] == "9100"


def test_telemed_names_are_real_settings() -> None:
    for path in (COMPOSE, ENV_EXAMPLE):
        named = set(re.findall(r"\bTELEMED_[A-Z0-9_]+\b", path.read_text()))
        assert named, path
        assert named <= SETTING_NAMES, (path.name, sorted(named - SETTING_NAMES))


def _env_example() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) for every setting assigned in .env.example."""
    found = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            found.append((match.group(2), match.group(3), match.group(1) is not None))
    return found


def test_env_example_lists_every_setting_once() -> None:
    names = [name for name, _, _ in _env_example()]
    assert sorted(set(names)) == sorted(SETTING_NAMES), sorted(SETTING_NAMES ^ set(names))
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]


def test_env_example_values_load_and_comments_show_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every value in the file is one the service accepts, and a commented-out
    line of a setting with a default shows that default."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    entries = _env_example()
    values: dict[str, Any] = {
        name.removeprefix(ENV_PREFIX).lower(): value for name, value, _ in entries
    }
    Settings(**values)
    for name, value, commented in entries:
        field = name.removeprefix(ENV_PREFIX).lower()
        default = Settings.model_fields[field].default
        if commented and default is not None:
            one: dict[str, Any] = {field: value}
            shown = getattr(Settings(**one), field)
            assert shown == default, (name, value, default)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_slim_multi_stage_and_non_root() -> None:
    instructions = _dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "build and runtime stages"
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG")
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1].split(":")[0] == "10001"
    checks = [rest for keyword, rest in instructions if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0] and "urllib" in checks[0]
    assert ("EXPOSE", "8000") in instructions
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert "--no-migrate" in cmd and "0.0.0.0" in cmd
    assert any("pip install ." in rest for keyword, rest in instructions if keyword == "RUN")


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    for keyword, rest in _dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _target = rest.split()
        for source in sources:
            assert source in allowed, source
            assert (ROOT / source).exists(), source
    ignored = DOCKERIGNORE.read_text()
    for secret_or_bulk in (".env", ".venv", "var", ".git", "__pycache__"):
        assert secret_or_bulk in ignored


def _docker_engine() -> str | None:
    """Why ``docker compose`` cannot run here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker binary"
    for probe in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            result = subprocess.run(probe, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(probe)}` failed: {exc}"
        if result.returncode != 0:
            return f"`{' '.join(probe)}` failed (no engine or no compose plugin)"
    return None


def test_docker_compose_accepts_the_file() -> None:
    reason = _docker_engine()
    if reason is not None:
        pytest.skip(f"{reason}; the compose-spec schema check covers the file")
    # The two values docker-compose.yml requires (${...:?}), in case there is no .env.
    env = {**os.environ, "POSTGRES_PASSWORD": "check", "TELEMED_SECRET_KEY": "check"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_built_package_ships_every_data_file(tmp_path: Path) -> None:
    """The image installs the project as a package (not editable): every template,
    static file, catalog and migration must be in it, or a role fails at start-up."""
    import zipfile

    # Built from a copy: setuptools leaves build/ beside the sources it builds,
    # and a stale build/lib in the checkout would ship files that are gone.
    source = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("core", "flows", "channels", "web", "bots"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("telemed-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = [
        path.relative_to(ROOT).as_posix()
        for folder in ("web/static", "web/templates", "core/i18n", "core/migrations")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert len(wanted) > 30
    assert sorted(set(wanted) - shipped) == []
