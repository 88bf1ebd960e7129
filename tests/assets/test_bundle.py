"""The rendered bundle: what the instance receives, checked file by file."""

import ast
import ipaddress
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from workbench import bundle, settings
from workbench.secrets import SECRETS

# Names the boot script sets from /etc/workbench/deployment.env.
DEPLOYMENT_NAMES = {"WORKBENCH_NAME", "AWS_REGION", "BLOB_BUCKET", "LANGFUSE_ADMIN_EMAIL"}
BOOT_SCRIPT = Path(__file__).resolve().parents[2] / "userdata" / "boot.sh"
EXACT_TAG = re.compile(r"^[\w.\-/]+:v?\d+\.\d+(\.\d+){0,2}$")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return bundle.render(settings.load(), tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def projects(tree) -> dict[str, dict]:
    return {name: yaml.safe_load((tree / name / "compose.yaml").read_text()) for name in ("langfuse", "litellm")}


def env_file(tree: Path, name: str) -> dict[str, str]:
    lines = (tree / "env" / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def services(projects):
    return [(project, name, service) for project, spec in projects.items() for name, service in spec["services"].items()]


def test_the_boxs_python_scripts_run_on_amazon_linux_2023s_python(tree):
    """Standard library only, and nothing newer than Python 3.9 (AL2023's python3)."""
    scripts = sorted((tree / "boot").glob("*.py"))
    assert {path.name for path in scripts} >= {"idle_rule.py", "seed_cline.py", "litellm_key_request.py",
                                               "workbench_secrets.py"}
    for path in scripts:
        parsed = ast.parse(path.read_text(), feature_version=(3, 9))
        imported = {alias.name.split(".")[0] for node in ast.walk(parsed) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(parsed) if isinstance(node, ast.ImportFrom)}
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, path.name
        assert not [node for node in ast.walk(parsed) if isinstance(node, ast.Match)], path.name


def test_render_writes_the_reviewable_tree(tree):
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert "langfuse/compose.yaml" in files and "litellm/config.yaml" in files
    assert "systemd/workbench-langfuse.service" in files and "code-server/config.yaml" in files


def test_every_image_is_pinned_to_an_exact_version(projects):
    loaded = settings.load()
    images = {name: service["image"] for _, name, service in services(projects)}
    for name, image in images.items():
        assert EXACT_TAG.match(image), f"{name}: {image}"
    assert images["langfuse-web"] == f"docker.io/langfuse/langfuse:{loaded.versions.langfuse}"
    assert images["langfuse-worker"] == f"docker.io/langfuse/langfuse-worker:{loaded.versions.langfuse}"
    assert images["clickhouse"].endswith(":25.12.5") and images["redis"].endswith(":7.4.6")
    assert images["langfuse-postgres"].endswith(":17.6") and images["litellm-postgres"].endswith(":17.6")


def test_litellm_image_is_the_version_the_tests_run(projects):
    requirement = next(line for line in Path("requirements-dev.txt").read_text().splitlines()
                       if line.startswith("litellm[proxy]=="))
    version = requirement.split("==")[1]
    assert projects["litellm"]["services"]["litellm"]["image"] == f"ghcr.io/berriai/litellm-database:v{version}"
    assert settings.load().versions.litellm == version


def test_only_web_worker_and_litellm_publish_ports_and_only_on_loopback(projects):
    published = {name: service.get("ports", []) for _, name, service in services(projects) if service.get("ports")}
    assert published == {
        "langfuse-web": ["127.0.0.1:3000:3000"],
        "langfuse-worker": ["127.0.0.1:3030:3030"],
        "litellm": ["127.0.0.1:4000:4000"],
    }


def test_both_projects_share_one_network_declared_in_the_compose_files(projects):
    langfuse_net = projects["langfuse"]["networks"]["workbench"]
    litellm_net = projects["litellm"]["networks"]["workbench"]
    assert langfuse_net["name"] == "workbench" and "external" not in langfuse_net
    assert litellm_net == {"name": "workbench", "external": True}
    assert "workbench" in projects["langfuse"]["services"]["langfuse-web"]["networks"]
    assert "workbench" in projects["litellm"]["services"]["litellm"]["networks"]


def test_only_the_containers_that_use_aws_have_the_addresses_the_credentials_firewall_lets_through(projects):
    boot = BOOT_SCRIPT.read_text()
    allowed = set(re.search(r"^SERVICE_CREDENTIAL_CLIENTS=\(([^)]*)\)", boot, re.M).group(1).split())
    # The shared network is declared, with its subnet, by the Langfuse project.
    pools = {(project, network): declared["ipam"]["config"][0]
             for project, spec in projects.items() for network, declared in spec["networks"].items() if "ipam" in declared}
    static: dict[str, set[str]] = {}
    for project_name, name, service in services(projects):
        for network, attachment in service.get("networks", {}).items():
            pool = pools.get((project_name, network)) or pools[("langfuse", network)]
            address = ipaddress.ip_address(attachment["ipv4_address"])  # on every network it joins
            # Inside the subnet, outside the range Docker hands out to the other containers.
            assert address in ipaddress.ip_network(pool["subnet"]), (name, network)
            assert address not in ipaddress.ip_network(pool["ip_range"]), (name, network)
            static.setdefault(name, set()).add(str(address))
    assert set(static) == {"langfuse-web", "langfuse-worker", "litellm"}
    assert set().union(*static.values()) == allowed


def test_every_service_has_a_healthcheck_log_rotation_and_memory_limit(projects):
    total = 0
    for _, name, service in services(projects):
        assert service["healthcheck"]["test"], name
        assert service["logging"]["options"] == {"max-size": "10m", "max-file": "3"}, name
        assert service["restart"] == "unless-stopped", name
        limit = service["mem_limit"]
        total += int(limit[:-1]) * (1024 if limit.endswith("g") else 1)
    # 16 GiB box: leave room for the OS, Docker and code-server.
    assert total <= 12 * 1024


def test_dependencies_wait_for_healthy_services(projects):
    langfuse = projects["langfuse"]["services"]
    for app in ("langfuse-web", "langfuse-worker"):
        assert langfuse[app]["depends_on"] == {
            dep: {"condition": "service_healthy"} for dep in ("langfuse-postgres", "clickhouse", "redis")}
    assert projects["litellm"]["services"]["litellm"]["depends_on"] == {
        "litellm-postgres": {"condition": "service_healthy"}}


def test_litellm_runs_one_worker_within_its_memory_limit(projects, tree):
    """One worker, or each enforces a key's daily budget on its own share of the spend
    (tests/assets/test_litellm_budget.py runs the shipped command); benchmarks/gateway.py measured
    it at under 500 MiB resident after 8 concurrent streams of Cline's requests."""
    litellm = projects["litellm"]["services"]["litellm"]
    command = litellm["command"]
    assert command[command.index("--num_workers") + 1] == "1"
    assert litellm["mem_limit"] == "2g"
    assert "LITELLM_LOG=WARNING" in (tree / "env" / "litellm.env").read_text().splitlines()


def test_redis_clickhouse_and_litellm_settings(projects, tree):
    langfuse = projects["langfuse"]["services"]
    redis_command = " ".join(langfuse["redis"]["command"])
    assert "--maxmemory-policy noeviction" in redis_command and "--appendonly yes" in redis_command
    assert "exec docker-entrypoint.sh redis-server" in redis_command  # runs as the redis user, not root
    # Full at half the container's limit: it refuses writes before the kernel kills it
    # (tests/userdata/test_real_programs.py fills a real Redis with this command line).
    maxmemory = re.search(r"--maxmemory (\d+)mb", redis_command).group(1)
    assert int(maxmemory) * 2 <= int(langfuse["redis"]["mem_limit"].rstrip("m"))
    assert langfuse["clickhouse"]["ulimits"]["nofile"] == {"soft": 262144, "hard": 262144}
    system_logs = (tree / "langfuse" / "clickhouse-system-logs.xml").read_text()
    assert "<query_log>" in system_logs and "INTERVAL 3 DAY DELETE" in system_logs
    assert '<trace_log remove="1"/>' in system_logs and '<metric_log remove="1"/>' in system_logs
    assert projects["litellm"]["services"]["litellm"]["stop_signal"] == "SIGINT"


def test_no_healthcheck_or_command_carries_a_password(projects):
    # Arguments are visible to every local user (ps, /proc); passwords come from the environment.
    for _, name, service in services(projects):
        for field in ("command", "healthcheck"):
            text = json.dumps(service.get(field, ""))
            assert not re.search(r"(-a|--pass\w*|--requirepass|-p)\b\s*\\?\"?\$", text), (name, text)


def test_placeholders_are_only_secrets_and_deployment_names(tree):
    allowed = {spec.env_name for spec in SECRETS} | DEPLOYMENT_NAMES
    used = set()
    for path in [*list((tree / "env").iterdir()), tree / "code-server" / "config.yaml"]:
        used |= set(re.findall(r"\{\{([A-Z0-9_]+)\}\}", path.read_text()))
    assert used <= allowed
    # every generated secret is used somewhere: in a file, or (the LiteLLM keys) by the boot itself,
    # in this script or in the phases it sources from the bundle
    boot = BOOT_SCRIPT.read_text() + "".join(path.read_text() for path in sorted((tree / "boot").glob("*.sh")))
    boot_uses = {spec.env_name for spec in SECRETS if re.search(rf"\b{spec.env_name}\b", boot)}
    assert {spec.env_name for spec in SECRETS} <= used | boot_uses


def test_each_service_gets_what_it_needs_and_paired_values_agree(tree, projects):
    common, web = env_file(tree, "langfuse-common.env"), env_file(tree, "langfuse-web.env")
    postgres, clickhouse = env_file(tree, "langfuse-postgres.env"), env_file(tree, "clickhouse.env")
    redis, litellm = env_file(tree, "redis.env"), env_file(tree, "litellm.env")
    litellm_postgres = env_file(tree, "litellm-postgres.env")

    # database URLs carry the same secret as the databases they point at
    assert common["DATABASE_URL"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@langfuse-postgres:5432/"
        f"{postgres['POSTGRES_DB']}")
    assert litellm["DATABASE_URL"] == (
        f"postgresql://{litellm_postgres['POSTGRES_USER']}:{litellm_postgres['POSTGRES_PASSWORD']}"
        f"@litellm-postgres:5432/{litellm_postgres['POSTGRES_DB']}")
    assert postgres["POSTGRES_PASSWORD"] != litellm_postgres["POSTGRES_PASSWORD"]
    assert (common["CLICKHOUSE_USER"], common["CLICKHOUSE_PASSWORD"]) == (
        clickhouse["CLICKHOUSE_USER"], clickhouse["CLICKHOUSE_PASSWORD"])
    assert common["REDIS_AUTH"] == redis["REDISCLI_AUTH"]
    assert common["ENCRYPTION_KEY"] == "{{LANGFUSE_ENCRYPTION_KEY}}" and common["SALT"] == "{{LANGFUSE_SALT}}"

    # web and worker read the same common file, so they share SALT and ENCRYPTION_KEY
    langfuse = projects["langfuse"]["services"]
    assert langfuse["langfuse-worker"]["env_file"] == ["/etc/workbench/env/langfuse-common.env"]
    assert langfuse["langfuse-web"]["env_file"][0] == "/etc/workbench/env/langfuse-common.env"

    # Both Langfuse containers listen on HOSTNAME (worker/src/env.ts, worker/src/index.ts), which
    # Docker otherwise sets to the container id: their healthchecks knock on 127.0.0.1. The
    # worker builds its notification links from NEXTAUTH_URL.
    for service in ("langfuse-web", "langfuse-worker"):
        merged = {}
        for path in langfuse[service]["env_file"]:
            merged.update(env_file(tree, Path(path).name))
        assert merged["HOSTNAME"] == "0.0.0.0", service
        assert merged["NEXTAUTH_URL"] == "http://localhost:3000", service
        assert "127.0.0.1:" in " ".join(langfuse[service]["healthcheck"]["test"])
    assert web["AUTH_DISABLE_SIGNUP"] == "true"
    for key in ("ORG_ID", "PROJECT_ID", "PROJECT_PUBLIC_KEY", "PROJECT_SECRET_KEY", "USER_EMAIL", "USER_PASSWORD"):
        assert web[f"LANGFUSE_INIT_{key}"], key
    # LiteLLM logs with the very key pair Langfuse is initialised with, over the shared network
    assert litellm["LANGFUSE_PUBLIC_KEY"] == web["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"]
    assert litellm["LANGFUSE_SECRET_KEY"] == web["LANGFUSE_INIT_PROJECT_SECRET_KEY"]
    assert litellm["LANGFUSE_OTEL_HOST"] == litellm["LANGFUSE_HOST"] == "http://langfuse-web:3000"
    assert not any(key.startswith("AWS_ACCESS_KEY") or key.startswith("AWS_SECRET") for key in litellm)
    # Blob storage through the instance role: no access keys, no MinIO
    assert not [key for key in common if key.endswith("ACCESS_KEY_ID") or key.endswith("SECRET_ACCESS_KEY")]
    assert common["LANGFUSE_S3_EVENT_UPLOAD_BUCKET"] == "{{BLOB_BUCKET}}"
    assert not [name for name in projects["langfuse"]["services"] if "minio" in name]


def test_litellm_config_lists_the_configured_models_and_langfuse_callback(tree):
    config = yaml.safe_load((tree / "litellm" / "config.yaml").read_text())
    models = settings.load().models
    assert [(m["model_name"], m["litellm_params"]["model"], m["litellm_params"]["aws_region_name"])
            for m in config["model_list"]] == [(m.name, f"bedrock/{m.model_id}", m.region) for m in models]
    for entry, model in zip(config["model_list"], models, strict=True):
        prices = model.info.usd_per_million_tokens
        assert entry["litellm_params"]["input_cost_per_token"] * 1e6 == pytest.approx(prices["input"])
        assert entry["litellm_params"]["cache_read_input_token_cost"] * 1e6 == pytest.approx(prices["cache_read"])
        assert entry["model_info"]["max_input_tokens"] == model.info.context_window
        assert entry["model_info"]["supports_prompt_caching"] is model.info.prompt_caching
    assert config["litellm_settings"]["callbacks"] == ["langfuse_otel"]
    assert config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert config["general_settings"]["missing_session_id"] == "omit"  # Cline's task id becomes the session


def test_systemd_units_bring_the_projects_back_after_reboot(tree):
    langfuse = (tree / "systemd" / "workbench-langfuse.service").read_text()
    litellm = (tree / "systemd" / "workbench-litellm.service").read_text()
    for unit, project in ((langfuse, "langfuse"), (litellm, "litellm")):
        assert "WantedBy=multi-user.target" in unit
        assert f"WorkingDirectory=/opt/workbench/{project}" in unit
        assert "ExecStart=/usr/bin/docker compose up --detach" in unit
        assert "ExecReload=/usr/bin/docker compose up --detach" in unit  # applies a redeploy's changes
    assert "After=docker.service workbench-langfuse.service" in litellm


def test_code_server_listens_on_loopback_with_password(tree):
    config = yaml.safe_load((tree / "code-server" / "config.yaml").read_text())
    assert config["bind-addr"] == "127.0.0.1:8080"
    assert config["auth"] == "password" and config["password"] == "{{CODE_SERVER_PASSWORD}}"
