"""docker-compose.yml, checked statically: there is no Docker engine to run it here."""

import importlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

import agent
from interfaces.cli import main
from interfaces.codec import parse_keys
from interfaces.secret import parse_secret
from interfaces.stack import REPORTED_PROBLEMS
from ops import compose_env
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    *ROOT.glob("*.py"),
    *ROOT.glob("goalkeeper/**/*.py"),
    *ROOT.glob("interfaces/**/*.py"),
    *ROOT.glob("activities/*.py"),
]
LOGINS = {
    "schema": ("goalkeeper", "GOALKEEPER_OWNER_DB_PASSWORD"),
    "worker": ("worker", "GOALKEEPER_WORKER_DB_PASSWORD"),
    "api": ("api", "GOALKEEPER_API_DB_PASSWORD"),
    "agent-setup": ("api", "GOALKEEPER_API_DB_PASSWORD"),
    "codec-server": ("api", "GOALKEEPER_API_DB_PASSWORD"),
}
"""Each Goalkeeper service's PostgreSQL login, and the .env variable of its password."""
ROLES_SCRIPT = ROOT / "ops" / "postgres" / "roles.sh"
"""What PostgreSQL's first start runs as its superuser: the other roles."""
LIBRARY_VARIABLES = {"OTEL_EXPORTER_OTLP_ENDPOINT": "opentelemetry.sdk.environment_variables"}
"""Variables the compose file sets for libraries Goalkeeper configures, and where they live."""
OLDEST_TEMPORAL = (1, 30)
"""The first Temporal server that sets `TemporalReportedProblems`, which the watch lists."""
(PROBLEMS_KEY,) = REPORTED_PROBLEMS
"""The dynamic config key that makes the server mark wedged workflows."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def variables_read_by_the_code() -> set[str]:
    # env.get("X"), environ["X"], and settings' helpers: _seconds(env, "X", ...)
    pattern = re.compile(r"""(?:env|environ)(?:\.get\(|\[|,)\s*["']([A-Z][A-Z0-9_]+)["']""")
    return {name for path in SOURCES for name in pattern.findall(path.read_text())}


def test_only_workers_hold_the_workers_secret(compose: dict[str, Any]) -> None:
    """The secret that seals the messages between workflows reaches workers alone."""
    services = compose["services"]
    holders = {
        name
        for name, service in services.items()
        if "GOALKEEPER_WORKER_SECRET" in (service.get("environment") or {})
    }
    assert holders == {"worker"}, holders
    secret = services["worker"]["environment"]["GOALKEEPER_WORKER_SECRET"]
    assert re.fullmatch(r"\$\{GOALKEEPER_WORKER_SECRET:\?[^}]+\}", secret), secret


def test_goalkeeper_services_set_only_variables_the_code_reads(compose: dict[str, Any]) -> None:
    for name, module in LIBRARY_VARIABLES.items():
        assert getattr(importlib.import_module(module), name) == name
    known = variables_read_by_the_code() | set(LIBRARY_VARIABLES)
    # Variables a service's command names for the code to read (--password-env NAME).
    for service in compose["services"].values():
        command = service.get("command") or []
        known |= {command[i + 1] for i, arg in enumerate(command) if arg == "--password-env"}
    assert {"TEMPORAL_ADDRESS", "DATABASE_URL", "GOALKEEPER_TASK_QUEUE"} <= known
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        env = set(service.get("environment", {}))
        assert env <= known, f"{name} sets variables nothing reads: {env - known}"
        if name in LOGINS:
            assert "DATABASE_URL" in env, name


def test_addresses_point_at_services_and_ports_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        env = service.get("environment", {})
        if "TEMPORAL_ADDRESS" in env:
            host, port = env["TEMPORAL_ADDRESS"].split(":")
            assert host in services and port == "7233", name
        if "DATABASE_URL" in env:
            assert _login(env["DATABASE_URL"]) == LOGINS[name], name
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            url = urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
            assert url.hostname in services, name
            assert f"{url.port}:{url.port}" in services[url.hostname]["ports"], name
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_workers_and_agents_can_be_scaled(compose: dict[str, Any]) -> None:
    for name in ("worker", "agents"):
        service = compose["services"][name]
        assert "container_name" not in service and "ports" not in service, name


def test_the_agents_command_is_one_agent_py_accepts(compose: dict[str, Any]) -> None:
    command = compose["services"]["agents"]["command"]
    assert command[:2] == ["python", "agent.py"]
    agent.parser().parse_args(command[2:])  # exits on an unknown flag


def test_the_search_attributes_registered_are_the_ones_the_code_uses(
    compose: dict[str, Any],
) -> None:
    command = " ".join(compose["services"]["temporal-setup"]["command"])
    registered = dict(re.findall(r"(\w+)=(Keyword|Double|Int|Bool|Text|Datetime)", command))
    assert registered == search_attributes.ALL


def test_the_image_copies_every_package(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("goalkeeper", "workflows", "activities", "interfaces", "worker.py", "agent.py"):
        assert package in dockerfile


def test_every_goalkeeper_service_gets_the_same_codec_keys_from_outside_the_file(
    compose: dict[str, Any],
) -> None:
    keys = {
        name: service["environment"]["GOALKEEPER_CODEC_KEYS"]
        for name, service in compose["services"].items()
        if "GOALKEEPER_CODEC_KEYS" in service.get("environment", {})
    }
    # Those that talk to Temporal; the schema's owner and the agents need none.
    assert set(keys) == {"worker", "api", "codec-server"}
    assert len(set(keys.values())) == 1, keys
    # Required from the environment (.env), so no key is ever written in the file.
    assert re.fullmatch(r"\$\{GOALKEEPER_CODEC_KEYS:\?[^}]+\}", keys["worker"]), keys["worker"]


def test_the_ui_decodes_through_the_codec_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ui, server = services["temporal-ui"], services["codec-server"]
    endpoint = urlparse(ui["environment"]["TEMPORAL_CODEC_ENDPOINT"])
    # The browser calls the endpoint, so it is a published port on the host, not a service name.
    assert endpoint.hostname == "localhost", endpoint
    published = dict(port.split(":") for port in server["ports"])
    assert str(endpoint.port) in published
    # The UI itself is published only when its commented lines are uncommented.
    ui_port = _commented_ports(compose, "temporal-ui")[0].split(":")[1]
    command = server["command"]
    assert command[:3] == ["python", "starter.py", "codec-server"]
    args = main.parser().parse_args(command[2:])
    assert str(args.port) == published[str(endpoint.port)]
    assert args.host == "0.0.0.0"
    assert f"http://localhost:{ui_port}" in args.cors_origin
    # The sign-in cookie goes with the UI's requests; the UI has no token of its own to pass.
    assert ui["environment"]["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    assert ui["environment"]["TEMPORAL_CODEC_PASS_ACCESS_TOKEN"] == "false"


def test_signatures_are_required_and_agents_keep_their_keys_and_credentials(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["worker"]["environment"]["GOALKEEPER_REQUIRE_SIGNATURES"] == "on"
    agents, setup = services["agents"], services["agent-setup"]
    args = agent.parser().parse_args(agents["command"][2:])
    key_dir = agents["environment"]["GOALKEEPER_KEY_DIR"]
    mounts = _mounts(agents)
    assert mounts[key_dir] in compose["volumes"]  # named: kept across restarts
    # agent-setup writes a credential per agent into the volume the agents read.
    (written,) = re.findall(r"credential new \S+\s+--into (\S+);", _script(setup))
    assert _mounts(setup)[written] == mounts[str(args.credentials)] in compose["volumes"]
    assert f"{mounts[str(args.credentials)]}:{args.credentials}:ro" in agents["volumes"]
    assert agents["depends_on"]["agent-setup"]["condition"] == "service_completed_successfully"
    assert setup["depends_on"]["schema"]["condition"] == "service_completed_successfully"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in (key_dir, str(args.credentials)):  # a new volume takes them owner-only
        assert re.search(rf"install -d -o goalkeeper -g goalkeeper -m 700 [^&]*{path}", dockerfile)


def test_agents_hold_no_login_no_keys_of_goalkeeper_and_reach_only_the_api(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    agents = services["agents"]
    assert set(agents["environment"]) == {"GOALKEEPER_KEY_DIR"}
    assert not REFERENCE.findall(json.dumps(agents))  # no password, no codec key
    assert "agent-login" not in services and "AGENTS_DB" not in json.dumps(compose)
    # Their network holds the API and them, nothing else: no Temporal, no PostgreSQL.
    assert agents["networks"] == ["agents"]
    on_it = {name for name, service in services.items() if "agents" in service.get("networks", [])}
    assert on_it == {"agents", "api"}, on_it
    api = services["api"]
    assert "default" in api["networks"]  # it reaches Temporal and PostgreSQL
    url = urlparse(agent.parser().parse_args(agents["command"][2:]).api)
    served = main.parser().parse_args(api["command"][2:])
    assert (url.hostname, url.port, served.host) == ("api", served.port, "0.0.0.0")
    allowed = api["environment"]["GOALKEEPER_API_ALLOWED_HOSTS"].split(",")
    assert url.hostname in allowed and "localhost" in allowed
    assert api["ports"] == [f"127.0.0.1:{served.port}:{served.port}"]  # this host's loopback


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's mounts, target to source (`./x` paths resolved in the repository)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        if source.startswith("./"):  # the repository's files, which the service only reads
            assert options == ["ro"], f"{volume} is not read-only"
            source = str(ROOT / source)
        mounts[target] = source
    return mounts


def test_prometheus_scrapes_every_worker_and_loads_the_alert_rules(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounts = _mounts(prometheus)
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    config_path = Path(mounts[flags["config.file"]])
    assert config_path.is_file() and config_path.parent == ROOT / "ops" / "prometheus"
    assert mounts[flags["storage.tsdb.path"]] in compose["volumes"]  # kept across restarts
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        assert Path(mounts[rule_file]).is_file(), rule_file

    # Every worker container, however many: the service's name resolves to all of them.
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    worker = services["worker"]
    metrics_port = worker["environment"]["GOALKEEPER_METRICS_ADDRESS"].rpartition(":")[2]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert str(discovery["port"]) == metrics_port and metrics_port in worker["expose"]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    assert "prometheus" in grafana["depends_on"]
    mounts = _mounts(grafana)
    provisioning = "/etc/grafana/provisioning"
    assert {f"{provisioning}/datasources", f"{provisioning}/dashboards"} <= set(mounts)
    for target, source in mounts.items():
        if target.startswith("/etc/"):
            assert Path(source).is_dir() and any(Path(source).iterdir()), f"{source} is empty"
        else:
            assert source in compose["volumes"], target

    (datasource,) = yaml.safe_load(
        (Path(mounts[f"{provisioning}/datasources"]) / "prometheus.yml").read_text()
    )["datasources"]
    url = urlparse(datasource["url"])
    assert (
        url.hostname == "prometheus" and f"{url.port}:{url.port}" in services["prometheus"]["ports"]
    )

    (provider,) = yaml.safe_load(
        (Path(mounts[f"{provisioning}/dashboards"]) / "goalkeeper.yml").read_text()
    )["providers"]
    dashboards = Path(mounts[provider["options"]["path"]])
    assert (dashboards / "goalkeeper.json").is_file()
    env = grafana["environment"]
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (Path(mounts[str(home.parent)]) / home.name).is_file()
    # Everyone signs in; the admin's password comes from .env, required, with no default.
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])


def test_the_uis_are_published_on_their_own_ports(compose: dict[str, Any]) -> None:
    published: dict[str, str] = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            host = port.rpartition(":")[0]
            assert host not in published, f"{name} and {published.get(host)} both publish {host}"
            published[host] = name
    assert published["9090"] == "prometheus" and published["3000"] == "grafana"


def _image(service: dict[str, Any]) -> tuple[str, tuple[int, int, int]]:
    """A service's image name and its exact version, which the tag must pin."""
    name, _, tag = service["image"].partition(":")
    version = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", tag)
    assert version, f"{service['image']} is not pinned to an exact version"
    major, minor, patch = (int(part) for part in version.groups())
    return name, (major, minor, patch)


def _script(service: dict[str, Any]) -> str:
    """The shell script a one-shot admin-tools service runs (`sh -c SCRIPT`)."""
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    (script,) = service["command"]
    assert isinstance(script, str)
    return script


def test_temporal_is_a_server_new_enough_to_report_problems_with_tools_of_its_version(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    name, version = _image(services["temporal"])
    assert name == "temporalio/server" and version[:2] >= OLDEST_TEMPORAL, version
    tools = {
        service_name: _image(service)
        for service_name, service in services.items()
        if service.get("image", "").startswith("temporalio/admin-tools:")
    }
    # The schema tool and its schemas belong to a server version; so does the CLI's API.
    assert {"temporal-schema", "temporal-setup"} <= set(tools)
    assert set(tools.values()) == {("temporalio/admin-tools", version)}, tools
    assert not any("auto-setup" in service.get("image", "") for service in services.values())
    assert _image(services["temporal-ui"])[0] == "temporalio/ui"


def test_temporal_schema_migrates_both_databases_before_the_server_starts(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    server, schema = services["temporal"], services["temporal-schema"]
    assert schema["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"

    # The tool's connection (its SQL_* variables) is the server's, to the postgres service,
    # as Temporal's own login, which may create databases and nothing more.
    db, tool = server["environment"], schema["environment"]
    assert tool["SQL_PLUGIN"] == db["DB"] == "postgres12"
    assert tool["SQL_HOST"] == db["POSTGRES_SEEDS"] == "postgres"
    assert tool["SQL_PORT"] == db["DB_PORT"] == "5432"
    assert tool["SQL_USER"] == db["POSTGRES_USER"] == "temporal"
    assert tool["SQL_PASSWORD"] == db["POSTGRES_PWD"]
    made = _roles_made()["temporal"]
    assert (
        made["password"] == _variable(db["POSTGRES_PWD"])
        and _variable(postgres[made["password"]]) == made["password"]
    )
    assert {"LOGIN", "CREATEDB", "NOSUPERUSER", "NOCREATEROLE"} <= made["attributes"]

    # Each database is created if missing, versioned, then brought up to the image's schema;
    # every step skips what is done, so the service runs on every `docker compose up`.
    script = _script(schema)
    assert script.startswith("set -e;"), "a failed step must stop the server from starting"
    variables = dict(re.findall(r"(\w+)=(\S+);", script))
    script = re.sub(r'"?\$\$(\w+)', lambda m: variables[m.group(1)], script).replace('"', "")
    steps: dict[str, list[str]] = {}
    for database, step in re.findall(r"temporal-sql-tool --db (\w+) ([^;]+)", script):
        steps.setdefault(database, []).append(step.strip())
    schemas = "/etc/temporal/schema/postgresql/v12"
    assert steps == {
        db[variable]: [
            "create-database",
            "setup-schema -v 0.0",
            f"update-schema -d {schemas}/{kind}/versioned",
        ]
        for variable, kind in (("DBNAME", "temporal"), ("VISIBILITY_DBNAME", "visibility"))
    }


def test_the_server_reads_a_dynamic_config_that_reports_wedged_workflows(
    compose: dict[str, Any],
) -> None:
    server = compose["services"]["temporal"]
    mounts = _mounts(server)
    path = server["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert path.startswith("/") and path in mounts, path
    source = Path(mounts[path])
    assert source.is_file() and source.parent == ROOT / "ops" / "temporal"
    config = yaml.safe_load(source.read_text())
    # The server's format: each key holds a list of values, each with optional constraints.
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in value for value in values), key
    (setting,) = [value for value in config[PROBLEMS_KEY] if not value.get("constraints")]
    threshold = setting["value"]
    assert type(threshold) is int and threshold > 0, threshold
    # The same as on the embedded dev server, so an alert comes after as many failures.
    assert threshold == int(REPORTED_PROBLEMS[PROBLEMS_KEY])


def test_temporal_setup_creates_the_namespace_goalkeeper_uses_before_its_search_attributes(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    namespace = compose["x-goalkeeper-env"]["TEMPORAL_NAMESPACE"]
    script = _script(services["temporal-setup"])
    created = re.search(r"temporal operator namespace create --namespace (\S+)", script)
    registered = re.findall(r"search-attribute create --namespace (\S+)", script)
    assert created and created.group(1) == namespace
    assert registered == [namespace] and created.start() < script.index("search-attribute")
    # Only once the server answers, and again until the namespace can be described.
    assert script.index("cluster health") < script.index("namespace describe") < created.start()
    assert services["worker"]["depends_on"]["temporal-setup"]["condition"] == (
        "service_completed_successfully"
    )


# The deployment's hardening: no password in the file, every service on its own login, no
# superuser but PostgreSQL's own, nothing of Temporal's published, no root.

SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|_KEYS$")
REFERENCE = re.compile(r"(?<!\$)\$\{(\w+)(?::?[?-][^}]*)?\}")


def _variable(value: str) -> str | None:
    """The .env variable `value` is made of alone (`${NAME:?why}`), required; else None."""
    match = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", value)
    return match.group(1) if match else None


def _login(url: str) -> tuple[str, str]:
    """A DATABASE_URL's login and the .env variable its password comes from, required; the
    URL must point at the postgres service's goalkeeper database."""
    match = re.fullmatch(r"postgresql://(\w+):\$\{(\w+):\?[^}]+\}@postgres:5432/goalkeeper", url)
    assert match, f"{url} is not a login with a password from .env to the goalkeeper database"
    assert match.group(2) in compose_env.PASSWORDS, url
    return match.group(1), match.group(2)


def _environments(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every service's environment, and the extension blocks services merge."""
    blocks = {name: service.get("environment", {}) for name, service in compose["services"].items()}
    blocks |= {name: value for name, value in compose.items() if name.startswith("x-")}
    return {name: block for name, block in blocks.items() if isinstance(block, dict)}


def _roles_made() -> dict[str, dict[str, Any]]:
    """The roles ops/postgres/roles.sh creates: their attributes and password variable."""
    script = ROLES_SCRIPT.read_text()
    read_from = dict(re.findall(r"\\getenv (\w+) (\w+)", script))
    roles = {}
    for name, attributes, password in re.findall(
        r"CREATE ROLE (\w+)((?:\s+(?!PASSWORD\b)[A-Z]+)*)(?:\s+PASSWORD :'(\w+)')?", script
    ):
        roles[name] = {"attributes": set(attributes.split()), "password": read_from.get(password)}
    return roles


def _commented_ports(compose: dict[str, Any], name: str) -> list[str]:
    """The ports a service's comments show how to publish (`#   - "HOST:PORT:PORT"`)."""
    text = (ROOT / "docker-compose.yml").read_text()
    block = text[text.index(f"\n  {name}:\n") + 1 :]
    following = re.search(r"\n  [a-z-]+:\n", block)
    block = block[: following.start()] if following else block
    return re.findall(r'#\s+- "([\d.]+:\d+:\d+)"', block)


def test_no_password_is_written_in_the_file_each_comes_from_env(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    referenced = set(REFERENCE.findall(text))
    assert referenced == set(compose_env.VARIABLES), referenced ^ set(compose_env.VARIABLES)
    # Required, never a default: compose refuses to start without .env.
    for match in re.finditer(r"(?<!\$)\$\{(\w+)([^}]*)\}", text):  # $${...}: the shell's
        assert match.group(2).startswith(":?"), f"{match.group(0)} is not required"
    for block_name, env in _environments(compose).items():
        for name, value in env.items():
            if SECRET_NAME.search(name):
                assert _variable(str(value)) in compose_env.VARIABLES, (block_name, name)
            if name == "DATABASE_URL":
                _login(str(value))
    assert "goalkeeper:goalkeeper@" not in text and "PASSWORD: goalkeeper" not in text


def test_env_is_made_with_a_random_value_for_each_secret_and_kept(tmp_path: Path) -> None:
    example = compose_env.read(ROOT / ".env.example")
    assert example == dict.fromkeys(compose_env.VARIABLES, "")  # names only, no value
    path = tmp_path / ".env"
    path.write_text("# mine\nGRAFANA_ADMIN_PASSWORD=kept-as-it-is\nPOSTGRES_PASSWORD=\n")
    added = compose_env.complete(path)
    assert set(added) == set(compose_env.VARIABLES) - {"GRAFANA_ADMIN_PASSWORD"}
    values = compose_env.read(path)
    assert values["GRAFANA_ADMIN_PASSWORD"] == "kept-as-it-is" and "# mine" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    keys = {compose_env.CODEC_KEYS, compose_env.WORKER_SECRET}
    for name in set(added) - keys:  # fit in a DATABASE_URL as they are
        assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", values[name]), name
    assert len(parse_keys(values[compose_env.CODEC_KEYS], ".env").keys) == 1
    assert len(parse_secret(values[compose_env.WORKER_SECRET], ".env").keys) == 1
    assert compose_env.complete(path) == [] and compose_env.read(path) == values
    other = tmp_path / "other.env"
    compose_env.complete(other)
    assert set(compose_env.read(other).values()).isdisjoint(values.values())
    assert ".env" in (ROOT / ".dockerignore").read_text().split()  # never in an image


def test_each_service_holds_only_its_own_login_and_the_owner_is_no_superuser(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    assert "POSTGRES_USER" not in postgres["environment"]  # the superuser is `postgres`
    assert _variable(postgres["environment"]["POSTGRES_PASSWORD"]) == "POSTGRES_PASSWORD"
    mounts = _mounts(postgres)
    assert Path(mounts["/docker-entrypoint-initdb.d/10-roles.sh"]) == ROLES_SCRIPT
    roles = _roles_made()
    for attributes in (made["attributes"] for made in roles.values()):
        assert not {"SUPERUSER", "BYPASSRLS", "REPLICATION"} & attributes, attributes
    owner = roles["goalkeeper"]["attributes"]
    assert {"LOGIN", "NOSUPERUSER", "NOCREATEDB", "CREATEROLE"} <= owner
    script = ROLES_SCRIPT.read_text()
    assert "CREATE DATABASE goalkeeper OWNER goalkeeper;" in script
    assert "REVOKE ALL ON DATABASE goalkeeper FROM PUBLIC;" in script
    for login in ("worker", "api"):
        assert re.search(rf"CREATE ROLE {login} [^;]*IN ROLE goalkeeper_worker;", script), login
    # Every password the script reads is the postgres service's, from .env.
    for made in roles.values():
        if made["password"]:
            assert _variable(postgres["environment"][made["password"]]) == made["password"]

    # The owner's password goes to the service that applies the schema, and no other.
    holders = {
        name
        for name, env in _environments(compose).items()
        if "GOALKEEPER_OWNER_DB_PASSWORD" in json.dumps(env)
    }
    assert holders == {"postgres", "schema"}, holders
    assert services["schema"]["command"][-2:] == ["schema", "apply"]
    assert services["worker"]["depends_on"]["schema"]["condition"] == (
        "service_completed_successfully"
    )


def test_temporal_is_not_published_and_its_ui_only_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("temporal", "temporal-ui"):
        assert "ports" not in services[name], f"{name} is published"
        # A commented way to publish it, on this host's loopback only.
        (commented,) = _commented_ports(compose, name)
        assert commented.startswith("127.0.0.1:"), commented
    assert _commented_ports(compose, "temporal")[0].endswith(":7233")
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"


def test_every_service_runs_as_a_user_other_than_root(compose: dict[str, Any]) -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), users
    for name, service in compose["services"].items():
        user = str(service.get("user", ""))
        if "build" in service:
            assert not user, f"{name} overrides the image's user"  # the Dockerfile's USER
        else:
            assert user and user.split(":")[0] not in ("root", "0"), f"{name} runs as {user!r}"
