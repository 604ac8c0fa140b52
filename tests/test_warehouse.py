"""The embedded warehouse through the real ``lens`` CLI: lifecycle, persistence, override, recovery."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import psycopg
import pytest
from lens_cli import run_lens

from customer_lens.local import warehouse


@pytest.fixture
def state_env(tmp_path: Path) -> dict[str, str]:
    """A private state directory, so each test has its own embedded server."""
    env = {"LENS_STATE_DIR": str(tmp_path / "state")}
    yield env
    run_lens("warehouse", "stop", env=env, check=False)


def _postmasters(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and Path(cmd[0]).name == "postgres" and str(pgdata) in cmd:
            found.append(proc)
    return found


def test_start_status_url_stop_restart_keeps_data(state_env: dict[str, str], tmp_path: Path) -> None:
    started = run_lens("warehouse", "start", env=state_env)
    assert "running" in started.stdout

    url = run_lens("warehouse", "url", env=state_env).stdout.strip()
    # The URL names the private password file, never the password itself.
    passfile = Path(state_env["LENS_STATE_DIR"]) / "warehouse" / "pgpass"
    assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith(f"/lens?passfile={passfile}")
    assert warehouse.read_passfile(passfile)["postgres"] not in url
    # psql itself accepts the URL (the promise to users), not just our driver.
    out = subprocess.run(
        ["psql", url, "-Atc", "create table kept(x int); insert into kept values (42)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode == 127:
        pytest.skip("psql is not installed")
    assert out.returncode == 0, out.stderr

    status = run_lens("warehouse", "status", env=state_env)
    assert status.returncode == 0 and "embedded, running" in status.stdout

    assert "stopped" in run_lens("warehouse", "stop", env=state_env).stdout
    stopped = run_lens("warehouse", "status", env=state_env, check=False)
    assert stopped.returncode == 3 and "stopped" in stopped.stdout
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert "not running" in run_lens("warehouse", "stop", env=state_env).stdout

    run_lens("warehouse", "start", env=state_env)
    # Same port and the same data after a restart: the warehouse is persistent.
    assert run_lens("warehouse", "url", env=state_env).stdout.strip() == url
    with psycopg.connect(url) as conn:
        assert conn.execute("select x from kept").fetchone() == (42,)
    assert run_lens("warehouse", "url", "--database", "sales_src", env=state_env).stdout.strip() == url.replace(
        "/lens", "/sales_src"
    )


def test_start_twice_is_a_no_op(state_env: dict[str, str], tmp_path: Path) -> None:
    run_lens("warehouse", "start", env=state_env)
    pgdata = tmp_path / "state" / "warehouse" / "pgdata"
    first = [p.pid for p in _postmasters(pgdata)]
    run_lens("warehouse", "start", env=state_env)
    assert [p.pid for p in _postmasters(pgdata)] == first and len(first) == 1


def test_concurrent_starts_do_not_corrupt(state_env: dict[str, str], tmp_path: Path) -> None:
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: run_lens("warehouse", "start", env=state_env, check=False), range(3)))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    pgdata = tmp_path / "state" / "warehouse" / "pgdata"
    assert len(_postmasters(pgdata)) == 1
    # One cluster, initialised once: no leftover scratch directories from racing initdb runs.
    assert sorted(p.name for p in pgdata.parent.iterdir() if p.name.startswith("pgdata")) == ["pgdata"]
    url = run_lens("warehouse", "url", env=state_env).stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from pg_database where datname = 'lens'").fetchone() == (1,)


def test_stale_pid_file_after_crash_is_recovered(state_env: dict[str, str], tmp_path: Path) -> None:
    run_lens("warehouse", "start", env=state_env)
    pgdata = tmp_path / "state" / "warehouse" / "pgdata"
    (postmaster,) = _postmasters(pgdata)
    children = postmaster.children(recursive=True)
    postmaster.send_signal(signal.SIGKILL)  # a crash: no shutdown, postmaster.pid stays behind
    psutil.wait_procs([postmaster, *children], timeout=30)
    for child in children:  # orphaned backends would keep the shared memory busy
        if child.is_running():
            child.kill()
    assert (pgdata / "postmaster.pid").exists()

    # After a reboot the old PID may belong to an unrelated live process: the worst case.
    decoy = subprocess.Popen(["sleep", "60"])
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        lines[0] = str(decoy.pid)
        (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
        assert run_lens("warehouse", "status", env=state_env, check=False).returncode == 3

        run_lens("warehouse", "start", env=state_env)
        assert run_lens("warehouse", "status", env=state_env).returncode == 0
        url = run_lens("warehouse", "url", env=state_env).stdout.strip()
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        decoy.kill()


def test_configured_port_is_used(state_env: dict[str, str]) -> None:
    port = warehouse._free_port()
    env = state_env | {"LENS_WAREHOUSE_PORT": str(port)}
    run_lens("warehouse", "start", env=env)
    assert f":{port}/" in run_lens("warehouse", "url", env=env).stdout


def test_url_override_starts_nothing(pg_server_url: str, tmp_path: Path, make_database) -> None:
    external = make_database("override_target")
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": external}
    assert run_lens("warehouse", "url", env=env).stdout.strip() == external
    out = run_lens("warehouse", "start", env=env)
    assert "external, running" in out.stdout
    assert not (tmp_path / "state" / "warehouse").exists()
    assert "not ours to stop" in run_lens("warehouse", "stop", env=env).stdout
    with psycopg.connect(external) as conn:  # still up
        assert conn.execute("select 1").fetchone() == (1,)


def test_unreachable_override_fails_with_one_clear_line(tmp_path: Path) -> None:
    env = {"LENS_STATE_DIR": str(tmp_path / "state"), "LENS_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    result = run_lens("warehouse", "start", env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: LENS_WAREHOUSE_URL does not answer")
    assert "Traceback" not in result.stderr


def _interpreter_for_nobody() -> tuple[list[str], dict[str, str]] | None:
    """A Python that user ``nobody`` can run with this project importable, or None.

    The venv's own python may link into a directory only root can enter (pyenv under /root); the
    system python of the same minor version with the venv's packages on PYTHONPATH does as well.
    """
    import sysconfig

    paths = {
        "PYTHONPATH": os.pathsep.join([sysconfig.get_paths()["purelib"], str(Path(warehouse.__file__).parents[1])])
    }
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate, env in ((sys.executable, {}), (f"/usr/bin/{version}", paths), (f"/usr/local/bin/{version}", paths)):
        try:
            probe = subprocess.run(
                [candidate, "-c", "import customer_lens.local.warehouse"],
                user=65534,
                env={"PATH": os.environ["PATH"], **env},
                capture_output=True,
                check=False,
            )
        except (PermissionError, FileNotFoundError):
            continue
        if probe.returncode == 0:
            return [candidate], env
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the non-root path by dropping from root")
def test_runs_as_a_normal_user_too() -> None:
    """The server also starts for an unprivileged user (no user namespace needed there)."""
    found = _interpreter_for_nobody()
    if found is None:
        pytest.skip("no Python that an unprivileged user can run with this project importable")
    command, paths = found
    # pytest's own temporary directories are private to root; this one is the user's.
    state = Path(tempfile.mkdtemp(prefix="lens-nobody-"))
    try:
        os.chown(state, 65534, 65534)
        env = {"LENS_STATE_DIR": str(state), "PATH": os.environ["PATH"], "HOME": str(state), **paths}
        script = (
            "import os; from customer_lens import warehouse as w; s = w.embedded(); st = s.start(); "
            "print(os.geteuid(), st.running, st.url); s.stop()"
        )
        result = subprocess.run(
            [*command, "-c", script],
            user=65534,
            group=65534,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("65534 True postgresql://postgres@127.0.0.1:")
        assert (state / "warehouse" / "pgdata").stat().st_uid == 65534
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- nobody else gets in -----------------------------------------------------------------------------
_LOGINS = ("postgres", "bi_reader", "lens_loader", "lens_transformer")
_DATABASES = ("lens", "postgres", "sales_src", "template1")

# Run as another OS user: every login to every database without the owner's password file, then with
# the file's path (which that user cannot read), then the file itself. Prints what got through.
_INTRUDER = """
import json, sys, psycopg
port, passfile, logins, databases = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
got_in = []
for user in logins:
    for db in databases:
        for extra in ("", f"?passfile={passfile}"):
            try:
                psycopg.connect(f"postgresql://{user}@127.0.0.1:{port}/{db}{extra}", connect_timeout=5).close()
                got_in.append(f"{user}@{db}{extra}")
            except psycopg.OperationalError as exc:
                if "password" not in str(exc):
                    got_in.append(f"{user}@{db}: unexpected {exc}")
try:
    open(passfile).read()
    got_in.append("read the password file")
except PermissionError:
    pass
print(json.dumps(got_in))
"""


def test_the_warehouse_lets_no_other_local_user_in(tmp_path: Path) -> None:
    """Password logins only, the secrets in a private state directory, no database open to PUBLIC."""
    # An existing state directory as a default umask leaves it (0755): the first lens command closes it.
    state = tmp_path / "state"
    (state / "sources").mkdir(parents=True)
    tmp_path.chmod(0o755)
    state.chmod(0o755)
    env = {"LENS_STATE_DIR": str(state)}
    try:
        run_lens("warehouse", "start", env=env)
        roles_out = run_lens("roles", env=env).stdout
        server = warehouse.EmbeddedServer(state / "warehouse")
        warehouse.ensure_database(server.url("postgres"), "sales_src")
        assert state.stat().st_mode & 0o777 == 0o700
        assert server.passfile.stat().st_mode & 0o777 == 0o600
        assert f"password: in {server.passfile}" in roles_out
        hba = (server.pgdata / "pg_hba.conf").read_text()
        assert "trust" not in hba and "replication" not in hba

        # The owner without the password file: refused like anybody else.
        port = server.port
        for user in _LOGINS:
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(f"postgresql://{user}@127.0.0.1:{port}/lens", connect_timeout=5)

        # bi_reader, with its password, reaches the warehouse database and no other one.
        with psycopg.connect(server.url_for("bi_reader", "lens")) as conn:
            assert conn.execute("select current_user").fetchone() == ("bi_reader",)
        for database in ("postgres", "sales_src", "template1"):
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                psycopg.connect(server.url_for("bi_reader", database), connect_timeout=5)

        if os.geteuid() != 0:
            return  # another OS user needs root to become
        found = _interpreter_for_nobody()
        if found is None:
            pytest.skip("no Python that an unprivileged user can run with this project importable")
        command, paths = found
        intruder = subprocess.run(
            [*command, "-c", _INTRUDER, str(port), str(server.passfile), json.dumps(_LOGINS), json.dumps(_DATABASES)],
            user=65534,
            group=65534,
            env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", **paths},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert intruder.returncode == 0, intruder.stderr
        assert intruder.stdout.strip() == "[]"
    finally:
        run_lens("warehouse", "stop", env=env, check=False)
