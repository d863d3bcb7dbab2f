"""docker-compose.yml, checked statically: there is no Docker engine to run it here."""

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from goalkeeper import search_attributes

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*ROOT.glob("*.py"), *ROOT.glob("goalkeeper/*.py"), *ROOT.glob("activities/*.py")]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def variables_read_by_the_code() -> set[str]:
    pattern = re.compile(r"""(?:env|environ)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")
    return {name for path in SOURCES for name in pattern.findall(path.read_text())}


def test_goalkeeper_services_set_only_variables_the_code_reads(compose: dict[str, Any]) -> None:
    known = variables_read_by_the_code()
    assert {"TEMPORAL_ADDRESS", "DATABASE_URL", "GOALKEEPER_TASK_QUEUE"} <= known
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        env = set(service.get("environment", {}))
        assert env <= known, f"{name} sets variables nothing reads: {env - known}"
        assert {"TEMPORAL_ADDRESS", "DATABASE_URL"} <= env, name


def test_addresses_point_at_services_and_ports_that_exist(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    for name, service in services.items():
        env = service.get("environment", {})
        if "TEMPORAL_ADDRESS" in env:
            host, port = env["TEMPORAL_ADDRESS"].split(":")
            assert host in services and port == "7233", name
        if "DATABASE_URL" in env:
            url = urlparse(env["DATABASE_URL"])
            assert url.hostname in services and url.port == 5432, name
            assert (url.username, url.password, url.path.lstrip("/")) == (
                postgres["POSTGRES_USER"],
                postgres["POSTGRES_PASSWORD"],
                postgres["POSTGRES_DB"],
            ), name
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"


def test_workers_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_the_search_attributes_registered_are_the_ones_the_code_uses(
    compose: dict[str, Any],
) -> None:
    command = " ".join(compose["services"]["temporal-setup"]["command"])
    registered = dict(re.findall(r"(\w+)=(Keyword|Double|Int|Bool|Text|Datetime)", command))
    assert registered == search_attributes.ALL


def test_the_image_copies_every_package(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("goalkeeper", "workflows", "activities", "worker.py"):
        assert package in dockerfile
