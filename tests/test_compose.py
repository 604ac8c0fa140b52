"""docker-compose.yml: valid for docker-compose, and shaped the way docs/operations.md describes it.

There is no Docker engine here; Debian's ``docker-compose`` (1.29) still parses, interpolates and
validates a compose file (``config``). In CI (``CI=true``) a missing ``docker-compose`` is a failure,
elsewhere the validation tests are skipped. The structure tests read the YAML themselves and always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
ONE_SHOT = ("airflow-init", "metabase-init")
PROJECT_MOUNTS = {
    "./dags": "/opt/lens/dags",
    "./plugins": "/opt/lens/plugins",
    "./dbt_project": "/opt/lens/dbt_project",
}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}; $$ escapes a dollar for the container.
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:?[-?][^}]*)?\}")


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found:
        return found
    message = "docker-compose is not installed (Debian: apt-get install -y docker-compose)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}; CI must validate docker-compose.yml")
    pytest.skip(message)


# The secrets .env.example leaves empty, as a user fills them in (the test's own values).
SECRETS = (
    "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
    "WAREHOUSE_SUPERUSER_PASSWORD",
    "LENS_WAREHOUSE_PASSWORD",
    "LENS_BI_READER_PASSWORD",
    "MB_ADMIN_PASSWORD",
)


def _compose_env() -> dict[str, str]:
    # Only the variables the env file sets: a developer's own AIRFLOW_*/LENS_* must not leak in.
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_", "LENS_", "MB_", "WAREHOUSE_"))
    }


def filled_env_file(directory: Path, **overrides: str) -> Path:
    """.env.example with every empty secret filled in (``overrides`` replace values)."""
    values = {name: f"test-{name.lower().replace('_', '-')}" for name in SECRETS} | overrides
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and name in values:
            line = f"{name}={values[name]}"
        lines.append(line)
    path = directory / "filled.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_compose(*args: str, env_file: Path | None = None) -> subprocess.CompletedProcess:
    if env_file is None:
        env_file = filled_env_file(Path(tempfile.mkdtemp(prefix="lens-compose-")))
    command = [docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, check=False, timeout=120, env=_compose_env()
    )


@pytest.fixture(scope="module")
def spec() -> dict:
    """The compose file as written (anchors and merge keys resolved by the YAML loader)."""
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


# -- docker-compose's own validation ---------------------------------------------------------------------
def test_docker_compose_validates_the_file() -> None:
    done = run_compose("config", "-q")
    assert done.returncode == 0, done.stderr


def test_docker_compose_lists_every_service_with_the_bi_profile() -> None:
    done = run_compose("--profile", "bi", "config", "--services")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"metadata-db", "warehouse", *ONE_SHOT, *AIRFLOW_SERVICES, "metabase"}


def test_interpolated_connections_point_at_the_right_databases() -> None:
    done = run_compose("config")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    env = env_example() | {name: f"test-{name.lower().replace('_', '-')}" for name in SECRETS}
    scheduler = services["airflow-scheduler"]["environment"]
    assert scheduler["LENS_WAREHOUSE_URL"] == (
        f"postgresql://{env['LENS_WAREHOUSE_USER']}:{env['LENS_WAREHOUSE_PASSWORD']}@warehouse:5432/"
        f"{env['LENS_WAREHOUSE_DB']}?sslmode=prefer"
    )
    assert services["metabase-init"]["environment"]["LENS_BI_HOST"] == "warehouse"
    assert scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@metadata-db:5432/airflow")
    # Role passwords reach only the init service, never the long-running ones.
    assert services["airflow-init"]["environment"]["LENS_BI_READER_PASSWORD"] == env["LENS_BI_READER_PASSWORD"]
    for name in AIRFLOW_SERVICES:
        assert not {"LENS_BI_READER_PASSWORD", "LENS_LOADER_PASSWORD"} & set(services[name]["environment"]), name


def test_a_missing_env_file_fails_with_the_variable_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    done = subprocess.run(
        [docker_compose(), "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW_", "LENS_", "MB_"))},
    )
    assert done.returncode != 0
    assert "in .env" in done.stderr


@pytest.mark.parametrize("missing", ["AIRFLOW_FERNET_KEY", "LENS_WAREHOUSE_PASSWORD", "AIRFLOW_JWT_SECRET"])
def test_an_empty_secret_fails_at_start_with_its_name(tmp_path: Path, missing: str) -> None:
    done = run_compose("config", "-q", env_file=filled_env_file(tmp_path, **{missing: ""}))
    assert done.returncode != 0
    assert f"set {missing} in .env" in done.stderr


def test_the_shipped_example_does_not_start_until_its_secrets_are_set() -> None:
    done = run_compose("config", "-q", env_file=ENV_EXAMPLE)
    assert done.returncode != 0 and "in .env" in done.stderr


def test_init_refuses_placeholder_values(tmp_path: Path) -> None:
    """An .env from an older example still holds change-me values: airflow-init names them and stops."""
    env = {
        "PATH": os.environ["PATH"],
        "LENS_BI_READER_PASSWORD": "change-me-bi-reader",
        "LENS_WAREHOUSE_URL": "postgresql://lens:change-me-warehouse-lens@warehouse:5432/lens",
        "AIRFLOW_JWT_SECRET": "a-real-secret",
    }
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "airflow-init.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "LENS_BI_READER_PASSWORD LENS_WAREHOUSE_URL" in done.stderr
    assert "AIRFLOW_JWT_SECRET" not in done.stderr


# -- structure ---------------------------------------------------------------------------------------------
def test_services_and_airflow_common_anchor(spec: dict) -> None:
    services = spec["services"]
    assert {"metadata-db", "warehouse", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    assert "x-airflow-common" in spec
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        service = services[name]
        assert service["build"]["dockerfile"] == "docker/Dockerfile", name
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/lens/dags", name


def test_every_long_running_service_has_a_healthcheck(spec: dict) -> None:
    for name, service in spec["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check["test"], f"{name} has no healthcheck"
        assert check.get("interval") and check.get("retries"), name


def test_startup_order(spec: dict) -> None:
    services = spec["services"]
    init = services["airflow-init"]["depends_on"]
    assert init["metadata-db"]["condition"] == "service_healthy"
    assert init["warehouse"]["condition"] == "service_healthy"
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["metadata-db"]["condition"] == "service_healthy", name
        assert depends["warehouse"]["condition"] == "service_healthy", name


def test_project_folders_are_mounted(spec: dict) -> None:
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        mounts = dict(volume.split(":")[:2] for volume in spec["services"][name]["volumes"])
        for source, target in PROJECT_MOUNTS.items():
            assert mounts.get(source) == target, f"{name}: {source}"
            assert (REPO / source).is_dir()


def test_metadata_and_warehouse_are_separate_servers(spec: dict) -> None:
    services = spec["services"]
    metadata, warehouse = services["metadata-db"], services["warehouse"]
    assert metadata["volumes"][0].split(":")[0] != warehouse["volumes"][0].split(":")[0]
    assert "./docker/warehouse-init:/docker-entrypoint-initdb.d:ro" in warehouse["volumes"]
    assert (REPO / "docker" / "warehouse-init" / "10-lens-databases.sh").stat().st_mode & 0o111
    env = services["airflow-scheduler"]["environment"]
    assert "@${WAREHOUSE_HOST:-warehouse}:${WAREHOUSE_PORT:-5432}/" in env["LENS_WAREHOUSE_URL"]
    assert "@metadata-db:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def test_bi_service_reads_analytics_as_bi_reader(spec: dict) -> None:
    services = spec["services"]
    for name in ("metabase", "metabase-init"):
        assert services[name]["profiles"] == ["bi"], name
    setup = services["metabase-init"]
    assert setup["environment"]["LENS_BI_USER"] == "bi_reader"
    assert setup["environment"]["LENS_BI_SCHEMAS"] == "analytics"
    assert setup["environment"]["LENS_BI_HOST"] == "${WAREHOUSE_HOST:-warehouse}"
    assert "LENS_BI_READER_PASSWORD" in setup["environment"]["LENS_BI_READER_PASSWORD"]
    assert "/opt/lens/docker/metabase_setup.py" in " ".join(setup["command"])
    assert setup["depends_on"]["metabase"]["condition"] == "service_healthy"
    # The roles (bi_reader included) exist before Metabase connects.
    assert setup["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_env_example_documents_every_variable(spec: dict) -> None:
    text = COMPOSE.read_text()
    used = {match.group(1) for match in _VARIABLE.finditer(text)}
    required = {match.group(1) for match in _VARIABLE.finditer(text) if not match.group(2)}
    required |= {match.group(1) for match in _VARIABLE.finditer(text) if (match.group(2) or "").startswith(":?")}
    documented = env_example()
    assert required <= set(documented), f"missing in .env.example: {sorted(required - set(documented))}"
    assert set(documented) <= used, f"unused in docker-compose.yml: {sorted(set(documented) - used)}"
    # No secret ships with a value: each is filled in by the user (or generated, for the Airflow admin).
    for name, value in documented.items():
        if name.endswith(("_PASSWORD", "_SECRET", "_KEY")):
            assert value == "", name
    assert set(SECRETS) <= required


def test_dockerfile_installs_the_lock_and_the_package() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:slim-\$\{AIRFLOW_VERSION\}", dockerfile, re.MULTILINE)
    assert "-r /opt/lens/requirements.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps -e /opt/lens" in dockerfile
    # The image's Airflow is the one the lock pins.
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert f"ARG AIRFLOW_VERSION={pinned}" in dockerfile
