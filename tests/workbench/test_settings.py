"""Settings validation: every bad input stops synth with the key, the value and what is allowed."""

import json

import pytest
import yaml

from tests.helpers import HOSTILE_VALUES
from workbench import settings
from workbench.settings import SettingsError


def load_with(**overrides):
    return settings.load(overrides=overrides)


INFO = {"context_window": 200000, "max_output_tokens": 64000, "prompt_caching": True,
        "usd_per_million_tokens": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.3}}


def models_json(*entries: dict) -> str:
    """A models override with each entry's model info filled in unless it sets its own."""
    return json.dumps([{**INFO, **entry} for entry in entries])


def with_info(**changes) -> dict:
    """One model override whose info differs from INFO by `changes` (None removes a key)."""
    entry = {"name": "claude-sonnet-4-5", "model_id": "anthropic.claude-3-haiku-20240307-v1:0", **INFO, **changes}
    return {"models": json.dumps([{k: v for k, v in entry.items() if v is not None}])}


def test_defaults_are_valid_and_meet_the_langfuse_minimum():
    loaded = settings.load()
    assert loaded.name == "default"
    assert loaded.stack_name == "ai-workbench-default"
    assert loaded.shape.vcpus >= 4 and loaded.shape.memory_gib >= 16
    assert loaded.root_volume_gib == 20 and loaded.data_volume_gib == 60
    assert loaded.data_snapshot_id is None and loaded.snapshot_retention_days == 7
    assert loaded.versions.amazon_linux == "2023.12.20260930"
    assert loaded.uses_new_vpc
    assert loaded.cline_budget_usd_per_day == 20.0
    assert loaded.idle_stop_minutes == 60
    assert load_with(idle_stop_minutes="0").idle_stop_minutes == 0


@pytest.mark.parametrize("budget, expected", [("7.5", 7.5), ("0.01", 0.01), ("10000", 10000.0)])
def test_cline_budget_takes_dollars_and_cents(budget, expected):
    assert load_with(cline_budget_usd_per_day=budget).cline_budget_usd_per_day == expected


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"instance_typo": "m7g.xlarge"}, "unknown setting 'instance_typo'; allowed: name, instance_type"),
        ({"name": "Workshop_1"}, "name: 'Workshop_1' is not allowed; use 1-24 lowercase letters"),
        ({"name": "a" * 25}, "name: 'aaaaaaaaaaaaaaaaaaaaaaaaa' is not allowed"),
        ({"instance_type": "t3.large"}, "instance_type: 't3.large' has 2 vCPU and 8 GiB; Langfuse needs at least 4 vCPU and 16 GiB"),
        ({"instance_type": "c7g.xlarge"}, "instance_type: 'c7g.xlarge' has 4 vCPU and 8 GiB; Langfuse needs at least 4 vCPU"),
        ({"instance_type": "p5.48xlarge"}, "instance_type: 'p5.48xlarge': unknown instance family 'p5'; known families:"),
        ({"instance_type": "m7g.huge"}, "instance_type: 'm7g.huge': unknown instance size 'huge'; known sizes: medium"),
        ({"root_volume_gib": "8"}, "root_volume_gib: 8 is out of range; allowed 12-1024 (the OS and its packages"),
        ({"data_volume_gib": "20"}, "data_volume_gib: 20 is out of range; allowed 30-16384 (container images and"),
        ({"data_volume_gib": "60.5"}, "data_volume_gib: 60.5 is not a whole number of GiB"),
        ({"data_snapshot_id": "vol-0123456789abcdef0"},
         "data_snapshot_id: 'vol-0123456789abcdef0' is not an EBS snapshot id; use snap- and 8 or 17 hex digits"),
        ({"data_snapshot_id": "snap-0123"}, "data_snapshot_id: 'snap-0123' is not an EBS snapshot id"),
        ({"data_snapshot_id": "snap-0123456789ABCDEF0"}, "data_snapshot_id: 'snap-0123456789ABCDEF0' is not"),
        ({"snapshot_retention_days": "366"}, "snapshot_retention_days: 366 is not allowed; use 0 (no scheduled "
                                             "snapshots) or a whole number of days from 1 to 365"),
        ({"snapshot_retention_days": "-1"}, "snapshot_retention_days: -1 is not allowed"),
        ({"snapshot_retention_days": "week"}, "snapshot_retention_days: 'week' is not allowed"),
        ({"versions.amazon_linux": "latest"},
         "versions.amazon_linux: 'latest' is not allowed; use an exact Amazon Linux 2023 release version"),
        ({"versions.amazon_linux": "2023"}, "versions.amazon_linux: '2023' is not allowed"),
        ({"versions.amazon_linux": "2.0.20260825"}, "versions.amazon_linux: '2.0.20260825' is not allowed"),
        ({"root_volume_gib": "lots"}, "root_volume_gib: 'lots' is not a whole number of GiB"),
        ({"vpc": "default"}, "vpc: 'default' is not allowed; use \"new\" or an existing VPC id"),
        ({"bedrock_region": "us-east"}, "bedrock_region: 'us-east' is not an AWS region name"),
        ({"langfuse_admin_email": "admin"}, "langfuse_admin_email: 'admin' is not allowed; use a plain address"),
        ({"models": "[]"}, "models: [] must be a non-empty list"),
        ({"models": '[{"name": "x", "model_id": "gpt-4o"}]'}, "models[0].model_id: 'gpt-4o' is not a Bedrock model id"),
        ({"models": '[{"name": "x"}]'}, "models[0].model_id: missing"),
        ({"models": '[{"name": "x", "model_id": "anthropic.claude-3-haiku-20240307-v1:0", "temperature": 1}]'},
         "unknown key in models[0]: 'temperature'"),
        ({"models": models_json({"name": "a", "model_id": "anthropic.m-v1:0"}, {"name": "a", "model_id": "amazon.n-v1:0"}),
          "cline_model": "a"}, "models: name 'a' is used twice"),
        (with_info(context_window="lots"), "models[0].context_window: 'lots' is not allowed; use a whole number of tokens from 1024"),
        (with_info(context_window=None), "models[0].context_window: missing"),
        (with_info(max_output_tokens=300000), "models[0].max_output_tokens: 300000 is not allowed; use a whole number of tokens from 1 to 200000"),
        (with_info(prompt_caching="yes"), "models[0].prompt_caching: 'yes' is not allowed; use true or false"),
        (with_info(usd_per_million_tokens={"input": -1, "output": 1, "cache_write": 1, "cache_read": 1}),
         "models[0].usd_per_million_tokens.input: -1 is not allowed; use a price in US dollars per million tokens"),
        (with_info(usd_per_million_tokens={"input": 1, "output": 1, "cache_write": 1}),
         "models[0].usd_per_million_tokens.cache_read: missing"),
        (with_info(usd_per_million_tokens={"input": 1, "output": 1, "cache_write": 1, "cache_read": 1, "batch": 1}),
         "unknown key in models[0].usd_per_million_tokens: 'batch'"),
        ({"cline_model": "gpt-4o"}, "cline_model: 'gpt-4o' is not one of the models' names; use one of claude-sonnet-4-5, claude-haiku-4-5"),
        ({"versions.cline": "3.51.0"}, "versions.cline: '3.51.0' is not allowed; use an exact Cline 3 release from 3.66.0 on"),
        ({"versions.cline": "4.0.2"}, "versions.cline: '4.0.2' is not allowed"),
        ({"versions.langfuse": "latest"}, "versions.langfuse: 'latest' is not allowed; use an exact Langfuse v4 release"),
        ({"versions.langfuse": "3.120.0"}, "versions.langfuse: '3.120.0' is not allowed"),
        ({"versions.postgres": "17"}, "versions.postgres: '17' is not allowed; use an exact PostgreSQL 17 release"),
        ({"versions.compose": "2.41.0"}, "versions.compose: '2.41.0' has no known checksum; known: 2.40.3"),
        ({"versions.kubernetes": "1.30.0"}, "unknown key in versions: 'kubernetes'"),
        ({"cline_budget_usd_per_day": "0"}, "cline_budget_usd_per_day: 0 is out of range; use a number of US dollars above 0"),
        ({"cline_budget_usd_per_day": "-5"}, "cline_budget_usd_per_day: -5 is out of range"),
        ({"cline_budget_usd_per_day": "20000"}, "cline_budget_usd_per_day: 20000 is out of range; use a number of US dollars above 0 and at most 10000"),
        ({"cline_budget_usd_per_day": ".nan"}, "cline_budget_usd_per_day: nan is out of range"),
        ({"cline_budget_usd_per_day": ".inf"}, "cline_budget_usd_per_day: inf is out of range"),
        ({"cline_budget_usd_per_day": "true"}, "cline_budget_usd_per_day: True is not a number"),
        ({"cline_budget_usd_per_day": "twenty"}, "cline_budget_usd_per_day: 'twenty' is not a number"),
        ({"idle_stop_minutes": "10"}, "idle_stop_minutes: 10 is out of range; use 0 (never stop) or a whole number of minutes from 15 to 1440"),
        ({"idle_stop_minutes": "2000"}, "idle_stop_minutes: 2000 is out of range"),
        ({"idle_stop_minutes": "1.5"}, "idle_stop_minutes: 1.5 is not allowed; use 0 (never stop)"),
        ({"idle_stop_minutes": "-1"}, "idle_stop_minutes: -1 is out of range"),
        ({"name.first": "x"}, "override 'name.first': 'name' is not a group of settings"),
        ({"cline_limits_per_minute": "80000"}, "cline_limits_per_minute: 80000 is not allowed; use a mapping of model names"),
        ({"cline_limits_per_minute": "{gpt-4o: {tokens: 1}}"},
         "cline_limits_per_minute.gpt-4o: 'gpt-4o' is not one of the models' names; use one of claude-sonnet-4-5"),
        ({"cline_limits_per_minute": "{claude-sonnet-4-5: 80000}"},
         "cline_limits_per_minute.claude-sonnet-4-5: 80000 is not allowed; use a mapping"),
        ({"cline_limits_per_minute": "{claude-sonnet-4-5: {requests: 5}}"},
         "cline_limits_per_minute.claude-sonnet-4-5.tokens: missing"),
        ({"cline_limits_per_minute": "{claude-sonnet-4-5: {tokens: 0}}"},
         "cline_limits_per_minute.claude-sonnet-4-5.tokens: 0 is not allowed; use a whole number per minute from 1"),
        ({"cline_limits_per_minute": "{claude-sonnet-4-5: {tokens: 9, requests: 1.5}}"},
         "cline_limits_per_minute.claude-sonnet-4-5.requests: 1.5 is not allowed"),
        ({"cline_limits_per_minute": "{claude-sonnet-4-5: {tokens: 9, burst: 2}}"},
         "unknown setting in cline_limits_per_minute.claude-sonnet-4-5 'burst'; allowed: tokens, requests"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_key_value_and_rule(overrides, expected):
    with pytest.raises(SettingsError) as error:
        load_with(**overrides)
    assert expected in str(error.value)


def test_a_restore_names_its_snapshot_and_an_empty_one_means_a_blank_volume():
    assert load_with(data_snapshot_id="snap-0123456789abcdef0").data_snapshot_id == "snap-0123456789abcdef0"
    assert load_with(data_snapshot_id="snap-01234567").data_snapshot_id == "snap-01234567"
    assert load_with(data_snapshot_id="").data_snapshot_id is None
    assert load_with(snapshot_retention_days="0").snapshot_retention_days == 0


def test_overrides_keep_their_types_and_reach_nested_keys():
    loaded = load_with(root_volume_gib="200", **{"versions.langfuse": "4.53.0", "instance_type": "m7i.xlarge"})
    assert loaded.root_volume_gib == 200
    assert loaded.versions.langfuse == "4.53.0"
    assert loaded.architecture == "x86_64"


def test_models_override_as_json_and_region_defaults_to_bedrock_region():
    loaded = load_with(
        bedrock_region="eu-west-1",
        models=models_json({"name": "sonnet", "model_id": "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
                           {"name": "titan", "model_id": "amazon.titan-text-express-v1", "region": "us-west-2",
                            "prompt_caching": False}),
        cline_model="titan",
    )
    assert [(m.name, m.region, m.inference_profile_geo) for m in loaded.models] == [
        ("sonnet", "eu-west-1", "eu"),
        ("titan", "us-west-2", None),
    ]
    assert loaded.models[0].foundation_model_id == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert loaded.cline_model == "titan"
    assert loaded.models[1].info.prompt_caching is False and loaded.models[0].info.context_window == 200000


def test_default_models_carry_litellms_own_numbers_for_their_ids():
    """workbench.yaml's model info equals LiteLLM 1.108.7's model map for the same Bedrock ids."""
    import litellm

    for model in settings.load().models:
        known = litellm.model_cost[model.model_id]
        assert model.info.context_window == known["max_input_tokens"]
        assert model.info.max_output_tokens == known["max_output_tokens"]
        assert model.info.prompt_caching == known["supports_prompt_caching"]
        prices = {"input": "input_cost_per_token", "output": "output_cost_per_token",
                  "cache_write": "cache_creation_input_token_cost", "cache_read": "cache_read_input_token_cost"}
        for key, litellm_key in prices.items():
            assert model.info.usd_per_million_tokens[key] == pytest.approx(known[litellm_key] * 1e6), (model.name, key)


def test_settings_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "workbench.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="expected a mapping of settings, got list"):
        settings.load(path)


def test_missing_key_is_named(tmp_path):
    raw = yaml.safe_load(settings.DEFAULT_SETTINGS_FILE.read_text())
    del raw["langfuse_admin_email"]
    path = tmp_path / "workbench.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SettingsError, match="langfuse_admin_email: missing"):
        settings.load(path)


def test_only_our_keys_are_taken_from_cdk_context():
    context = {
        "@aws-cdk/aws-iam:minimizePolicies": True,
        "aws:cdk:enable-path-metadata": True,
        "availability-zones:account=1:region=us-east-1": ["a"],
        "acknowledged-issue-numbers": [1],
        "name": "alice",
        "instnce_type": "m7g.xlarge",
    }
    assert settings.context_overrides(context) == {"name": "alice", "instnce_type": "m7g.xlarge"}


def every_setting_path(raw: dict) -> list[tuple[str, ...]]:
    paths = []
    for key, value in raw.items():
        if key == "versions":
            paths += [("versions", version) for version in value]
        elif key == "models":
            paths += [("models", 0, field) for field in settings.MODEL_KEYS]
        else:
            paths.append((key,))
    return paths


DEFAULT_RAW = yaml.safe_load(settings.DEFAULT_SETTINGS_FILE.read_text())


@pytest.mark.parametrize("path", every_setting_path(DEFAULT_RAW), ids=lambda path: "/".join(map(str, path)))
@pytest.mark.parametrize("hostile", HOSTILE_VALUES, ids=repr)
def test_every_setting_refuses_values_that_could_run_or_inject_anything(path, hostile):
    raw = yaml.safe_load(settings.DEFAULT_SETTINGS_FILE.read_text())
    target = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = hostile
    with pytest.raises(SettingsError) as error:
        settings.parse(raw)
    assert repr(hostile) in str(error.value)  # the message names the bad value


def test_the_setting_paths_cover_every_key():
    assert {path[0] for path in every_setting_path(DEFAULT_RAW)} == set(settings.TOP_LEVEL_KEYS)
    assert len(every_setting_path(DEFAULT_RAW)) == (len(settings.TOP_LEVEL_KEYS) - 2 + len(settings.MODEL_KEYS)
                                                    + len(settings.VERSION_RULES))


@pytest.mark.parametrize("email", ["admin@workbench.local", "first.last+tag@example.co.uk", "a_b%c-d@x-y.io"])
def test_ordinary_email_addresses_pass(email):
    assert load_with(langfuse_admin_email=email).langfuse_admin_email == email


def test_cline_limits_reach_the_key_request_only_when_set():
    """No limits: the key request's environment is the budget's and models' only, as before limits
    existed; with them, LiteLLM's per-model fields as JSON, requests left out where not given."""
    assert set(settings.load().key_request_environment()) == {"LITELLM_MODEL_NAMES", "CLINE_BUDGET_USD_PER_DAY"}
    limited = load_with(cline_limits_per_minute="{claude-sonnet-4-5: {tokens: 80000, requests: 40}, "
                                                "claude-haiku-4-5: {tokens: 50000}}")
    assert limited.cline_limits_per_minute == (settings.RateLimit("claude-sonnet-4-5", 80000, 40),
                                               settings.RateLimit("claude-haiku-4-5", 50000, None))
    environment = limited.key_request_environment()
    assert json.loads(environment["CLINE_MODEL_TPM_LIMIT"]) == {"claude-sonnet-4-5": 80000, "claude-haiku-4-5": 50000}
    assert json.loads(environment["CLINE_MODEL_RPM_LIMIT"]) == {"claude-sonnet-4-5": 40}


def test_gateway_defaults_to_own_and_team_makes_a_light_workbench_of_the_light_section():
    box = settings.load()
    assert box.gateway == "own" and not box.is_light and box.instance_type == "m7g.xlarge"
    light = load_with(gateway="team", name="alice")
    assert light.is_light and light.team is not None and light.team.name == "default"
    assert (light.instance_type, light.shape.vcpus, light.shape.memory_gib, light.data_volume_gib) == (
        "t4g.large", 2, 8, 20)
    assert load_with(gateway="team", **{"light.instance_type": "t4g.medium", "light.data_volume_gib": 10}).shape == (
        settings.instance_types.describe("t4g.medium"))


@pytest.mark.parametrize("overrides, message", [
    ({"gateway": "shared"}, "gateway: 'shared' is not allowed; use own (Langfuse and LiteLLM on the workbench) or team"),
    ({"gateway": "team", "team": None}, "gateway: 'team' needs the settings file's team: section, whose name names the "
                                        "team gateway"),
    ({"gateway": "team", "light": None}, "light: missing; gateway: 'team' takes its instance_type and data_volume_gib"),
    ({"gateway": "team", "light.instance_type": "t4g.small"},
     "light.instance_type: 't4g.small' has 2 vCPU and 2 GiB; a light workbench needs at least 2 vCPU and 4 GiB"),
    ({"gateway": "team", "light.instance_type": "m7g.medium"},
     "light.instance_type: 'm7g.medium' has 1 vCPU and 4 GiB; a light workbench needs at least 2 vCPU"),
    ({"gateway": "team", "light.instance_type": "m7g.small"}, "light.instance_type: 'm7g.small': unknown instance size"),
    ({"gateway": "team", "light.data_volume_gib": 9}, "light.data_volume_gib: 9 is out of range; allowed 10-16384"),
    ({"gateway": "team", "light.swap": 1}, "unknown setting in light: 'swap'"),
    ({"gateway": "team", "instance_type": "t4g.large"},
     "instance_type: a light workbench (gateway: team) takes light.instance_type"),
    ({"gateway": "team", "data_volume_gib": 20}, "data_volume_gib: a light workbench (gateway: team) takes "
                                                 "light.data_volume_gib"),
    ({"gateway": "team", "vpc": "vpc-0123456789abcdef0"}, "vpc: 'vpc-0123456789abcdef0' is not used by a light "
                                                          "workbench (gateway: team)"),
    # The box keeps Langfuse's floor: a light type is no box.
    ({"instance_type": "t4g.large"}, "instance_type: 't4g.large' has 2 vCPU and 8 GiB; Langfuse needs at least 4 vCPU"),
], ids=["unknown-gateway", "no-team-section", "no-light-section", "light-too-small", "one-vcpu", "no-such-size",
        "volume-too-small", "unknown-light-key", "box-instance-type", "box-data-volume", "own-vpc", "box-floor"])
def test_gateway_refusals_name_the_key_and_what_is_allowed(overrides, message):
    with pytest.raises(SettingsError) as error:
        load_with(**overrides)
    assert str(error.value).startswith(message), str(error.value)


def test_small_exists_only_for_burstable_families():
    assert settings.instance_types.describe("t3.small").memory_gib == 2
    assert settings.instance_types.describe("t4g.small").architecture == "arm64"
    with pytest.raises(ValueError, match="unknown instance size 'small'; known sizes: medium"):
        settings.instance_types.describe("c7g.small")


def test_the_user_secret_name_is_the_team_stacks_name_and_the_persons():
    from workbench.team_contract import user_secret_name

    assert user_secret_name("default", "alice") == "ai-workbench-team-default/users/alice"


@pytest.mark.parametrize("overrides, message", [
    ({"team.litellm_tasks": {"min": 1, "max": 4}},
     "team.litellm_tasks: {'min': 1, 'max': 4} is not allowed; use {min: N, max: N} with 2 <= min <= max <= 50 "
     "(fewer than 2 would stop serving when one task or zone goes)"),
    ({"team.langfuse_web_tasks": {"min": 3, "max": 2}}, "team.langfuse_web_tasks: {'min': 3, 'max': 2} is not allowed"),
    ({"team.langfuse_worker_tasks": {"min": 0, "max": 2}}, "team.langfuse_worker_tasks: {'min': 0, 'max': 2} is not "
                                                           "allowed; use {min: N, max: N} with 1 <= min"),
    ({"team.litellm_tasks": 2}, "team.litellm_tasks: 2 is not allowed"),
    ({"team.database_acu": {"min": 0.25, "max": 8}}, "team.database_acu.min: 0.25 is not allowed; use 0 (pause when "
                                                     "idle), or 0.5 to 256 in steps of 0.5"),
    ({"team.database_acu": {"min": 0, "max": 0.5}}, "team.database_acu.max: 0.5 is below min (0) or 1"),
    ({"team.database_acu": {"min": 4, "max": 2}}, "team.database_acu.max: 2 is below min (4) or 1"),
    ({"team.cache_node_type": "t4g.small"}, "team.cache_node_type: 't4g.small' is not an ElastiCache node type"),
    ({"team.clickhouse_instance_type": "t4g.medium"}, "team.clickhouse_instance_type: 't4g.medium' has 2 vCPU and "
                                                      "4 GiB; ClickHouse for Langfuse needs at least 2 vCPU and 8 GiB"),
    ({"team.clickhouse_volume_gib": 10}, "team.clickhouse_volume_gib: 10 is out of range; allowed 30-16384"),
    ({"team.name": "Team A"}, "team.name: 'Team A' is not allowed"),
    ({"team.replicas": 2}, "unknown setting in team: 'replicas'"),
    ({"team": "big"}, "team: 'big' is not a group of settings"),
    ({"name": "team-alpha"}, "name: 'team-alpha' is not allowed; a name starting with 'team-' would name a team "
                             "gateway's stack"),
], ids=["litellm-one-task", "web-min-above-max", "worker-none", "tasks-not-a-range", "acu-quarter", "acu-max-small",
        "acu-max-below-min", "cache-type", "clickhouse-small", "clickhouse-volume", "team-name", "team-unknown",
        "team-not-a-group", "workbench-named-like-a-team"])
def test_team_refusals_name_the_key_the_value_and_what_is_allowed(overrides, message):
    with pytest.raises(SettingsError) as error:
        load_with(**overrides)
    assert str(error.value).startswith(message), str(error.value)


def test_the_team_section_as_shipped():
    team = settings.load().team
    assert team is not None and team.stack_name == "ai-workbench-team-default"
    assert (team.litellm_tasks.minimum, team.langfuse_web_tasks.minimum, team.database_min_acu) == (2, 2, 0.5)
    assert load_with(**{"team.database_acu": {"min": 0, "max": 4}}).team.database_min_acu == 0
