"""The Dockerfile and compose.yaml, checked statically (no container engine runs here).

What a first `docker compose up` needs: the services and the order they start in, health
checks, every environment variable one the code reads, secrets only from the environment,
each process with the least privileged database role, never the demo, and an image whose
last stage runs as a non-root user without build tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dockerfile
import pytest
import yaml

from app.core.dbadmin import APP_ROLE, OWNER_ROLE
from app.core.settings import Settings, role_passwords

ROOT = Path(__file__).resolve().parents[2]
OUR_SERVICES = ("bootstrap", "migrate", "api")
# ${NAME}, ${NAME:-default}, ${NAME:?error}: compose's interpolation.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<rest>[^}]*)\}")


class Recording(dict[str, str]):
    """An empty environment that remembers every name the code asks it for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def names_the_code_reads() -> set[str]:
    env = Recording()
    Settings.from_env(env)
    role_passwords(env)
    # libpq's own: the administrator's password for `tenantry db bootstrap`.
    return env.asked | {"PGPASSWORD"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def stages() -> list[list[dockerfile.Command]]:
    """The Dockerfile's instructions, split into build stages."""
    result: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(command)
    return result


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def interpolated(value: str) -> tuple[str, dict[str, re.Match[str]]]:
    """`value` as compose would see it, each ${…} replaced by a placeholder (which the
    returned mapping explains), so URLs parse."""
    found: dict[str, re.Match[str]] = {}

    def placeholder(match: re.Match[str]) -> str:
        key = f"var{len(found)}x"
        found[key] = match
        return key

    return INTERPOLATION.sub(placeholder, value), found


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_services_start_in_order_once_each_is_ready(compose: dict[str, Any]) -> None:
    running = services(compose)
    default = {name for name, s in running.items() if not s.get("profiles")}
    assert default == {"postgres", "redis", *OUR_SERVICES}
    conditions = {
        name: {dep: spec["condition"] for dep, spec in s.get("depends_on", {}).items()}
        for name, s in running.items()
    }
    assert conditions["bootstrap"] == {"postgres": "service_healthy"}
    assert conditions["migrate"] == {"bootstrap": "service_completed_successfully"}
    assert conditions["api"] == {
        "migrate": "service_completed_successfully",
        "redis": "service_healthy",
    }
    for name in ("postgres", "redis"):
        assert running[name]["healthcheck"]["test"][0] == "CMD", name
    # The API's health check is the image's own (Dockerfile HEALTHCHECK on /readyz).
    assert "healthcheck" not in running["api"]
    for name in OUR_SERVICES:
        assert running[name]["build"] == "."
        assert running[name]["image"] == running["api"]["image"]


def test_observability_is_an_optional_profile(compose: dict[str, Any]) -> None:
    running = services(compose)
    optional = {name: s["profiles"] for name, s in running.items() if s.get("profiles")}
    assert optional == {"otel-collector": ["observability"], "prometheus": ["observability"]}
    collector = yaml.safe_load((ROOT / "deploy/otel-collector.yaml").read_text(encoding="utf-8"))
    assert set(collector["service"]["pipelines"]) == {"traces", "metrics"}
    assert {"4317:4317", "4318:4318"} <= {
        p.split(":", 1)[1] for p in running["otel-collector"]["ports"]
    }
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text(encoding="utf-8"))
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["api:8000"]}]
    for service in ("otel-collector", "prometheus"):
        for volume in running[service]["volumes"]:
            assert (ROOT / volume.split(":")[0]).is_file(), volume


def test_every_environment_name_is_one_the_code_reads(compose: dict[str, Any]) -> None:
    known = names_the_code_reads()
    for name in OUR_SERVICES:
        unknown = set(environment(services(compose)[name])) - known
        assert not unknown, f"{name}: {sorted(unknown)} are read by nothing"


def test_secrets_come_from_the_environment_and_are_required(compose: dict[str, Any]) -> None:
    secret_names = set()
    for name, service in services(compose).items():
        for key, raw in environment(service).items():
            value, variables = interpolated(raw)
            secret = urlsplit(value).password if "://" in value else None
            if "PASSWORD" in key:
                secret = value
            if secret is None:
                continue
            assert secret in variables, f"{name}.{key}: a literal secret"
            # `:?`: compose refuses to start without it, never falls back to a known value.
            assert variables[secret]["op"] == ":?", f"{name}.{key}"
            secret_names.add(variables[secret]["name"])
    assert secret_names == {"POSTGRES_PASSWORD", "TENANTRY_OWNER_PASSWORD", "TENANTRY_APP_PASSWORD"}


def test_each_process_gets_the_least_privileged_role(compose: dict[str, Any]) -> None:
    running = services(compose)
    bootstrap, migrate, api = (environment(running[n]) for n in OUR_SERVICES)
    assert set(bootstrap) == {"PGPASSWORD", "TENANTRY_OWNER_PASSWORD", "TENANTRY_APP_PASSWORD"}
    assert urlsplit(interpolated(migrate["MIGRATION_DATABASE_URL"])[0]).username == OWNER_ROLE
    assert urlsplit(interpolated(api["DATABASE_URL"])[0]).username == APP_ROLE
    # The API never holds the owner's or the administrator's password.
    assert not {"MIGRATION_DATABASE_URL", "PGPASSWORD", "TENANTRY_OWNER_PASSWORD"} & set(api)
    assert "${POSTGRES_PASSWORD" not in " ".join(strings(running["api"]))
    assert running["migrate"]["command"] == ["migrate"]
    assert running["api"]["command"] == ["serve"]
    assert "tenantry db bootstrap --admin-url" in " ".join(running["bootstrap"]["entrypoint"])


def test_never_the_demo_or_development_mode(
    compose: dict[str, Any], stages: list[list[dockerfile.Command]]
) -> None:
    text = " ".join(strings(compose))
    assert "--demo" not in text
    for name in OUR_SERVICES:
        assert (
            environment(services(compose)[name]).get("TENANTRY_ENV", "production") == "production"
        )
    assert env_of(stages[-1])["TENANTRY_ENV"] == "production"
    # The API's key files are mounted; production would refuse to generate them.
    api = environment(services(compose)["api"])
    assert api["TENANTRY_SIGNING_KEYS_FILE"].startswith("/run/")
    assert api["TENANTRY_MFA_KEYS_FILE"].startswith("/run/")


def env_of(stage: list[dockerfile.Command]) -> dict[str, str]:
    env: dict[str, str] = {}
    for command in stage:
        if command.cmd == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    return env


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user(
    stages: list[list[dockerfile.Command]],
) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(uid) != 0
    # Only the built environment comes into the final stage, never the source tree.
    copies = [c for c in final if c.cmd in ("COPY", "ADD")]
    assert copies
    assert all(any(f.startswith("--from=") for f in c.flags) for c in copies)
    build_tools = re.compile(
        r"\b(apt-get install|apk add|gcc|g\+\+|make|build-essential|pip install)\b"
    )
    for command in final:
        if command.cmd == "RUN":
            assert not build_tools.search(" ".join(command.value)), command.original
    assert [c.value for c in final if c.cmd == "ENTRYPOINT"] == [("tenantry",)]
    assert [c.value for c in final if c.cmd == "EXPOSE"] == [("8000",)]


def test_the_image_checks_readiness(stages: list[list[dockerfile.Command]]) -> None:
    (check,) = [c for c in stages[-1] if c.cmd == "HEALTHCHECK"]
    assert check.value[0] == "CMD"
    assert "/readyz" in " ".join(check.value)
    assert "TENANTRY_PORT" in " ".join(check.value)


def test_the_image_environment_is_read_by_the_code(stages: list[list[dockerfile.Command]]) -> None:
    ours = {name for name in env_of(stages[-1]) if name.startswith("TENANTRY_")}
    assert ours
    assert ours <= names_the_code_reads()


def test_the_build_context_leaves_out_the_local_environment() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)
