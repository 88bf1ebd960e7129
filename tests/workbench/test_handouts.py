"""Handouts (workbench/handouts.py) against moto's Secrets Manager: each participant gets their own
key, from the secret tagged with this room's event and their name, in files nobody else can read;
and what a handout tells them is checked against what runs it: `workbench`'s own parser, the URLs
`workbench connect` opens, and boto3 reading the profile as pasted."""

import dataclasses
import json
import os
import re
import shlex
import stat
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from workbench import cli, connect, handouts, room, settings
from workbench.aws import WorkbenchError
from workbench.handouts import LANGUAGES, PARTICIPANT_TAG, AccessKey
from workbench.snapshots import WORKBENCH_TAG

REGION = "eu-west-1"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WORKBENCH = dataclasses.replace(settings.load(), idle_stop_minutes=60)
# Shaped like IAM's keys, with the '/' and '+' a real secret part may hold.
ROOM_KEYS = {"alice": AccessKey("AKIAALICEJUNE0000001", "alice/june+Secret000000000000000000000001"),
             "bob": AccessKey("AKIABOBJUNE000000002", "bob/june+Secret00000000000000000000000002")}
# The same names in other rooms: "june-2" starts like "june", and Secrets Manager's tag filters match prefixes.
DECOYS = {("bob", "june-2"): AccessKey("AKIABOBJUNE200000003", "bob/june-2+Secret0000000000000000000003"),
          ("carol", "march"): AccessKey("AKIACAROLMARCH000004", "carol/march+Secret00000000000000000004")}
ALL_KEYS = [*ROOM_KEYS.values(), *DECOYS.values()]


def roster(**raw) -> room.Roster:
    return room.parse_roster({"event": "june", "participants": ["alice", "bob", "carol"],
                              "ends_at": "2026-12-01T23:00:00+09:00", **raw}, WORKBENCH, NOW)


def put_secret(session, secret_name: str, value: str, tags: dict[str, str]) -> str:
    return session.client("secretsmanager").create_secret(
        Name=secret_name, SecretString=value, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["ARN"]


def key_json(key: AccessKey) -> str:
    return json.dumps({"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key})


@pytest.fixture
def session(monkeypatch):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def room_session(session):
    """The room june as its stack leaves Secrets Manager (names as CloudFormation makes them up),
    with another room's secrets for bob and carol, and alice's workbench seed, which carries the
    room's tag too."""
    for (name, event), key in DECOYS.items():
        put_secret(session, f"Participant{name}AccessKeySecret-{event}", key_json(key),
                   {room.ROOM_TAG: event, PARTICIPANT_TAG: name})
    for name, key in ROOM_KEYS.items():
        put_secret(session, f"Participant{name}AccessKeySecret-june", key_json(key),
                   {room.ROOM_TAG: "june", PARTICIPANT_TAG: name})
    put_secret(session, "WorkbenchSeed-alice", json.dumps({"seed": "x" * 64}),
               {room.ROOM_TAG: "june", WORKBENCH_TAG: "alice"})
    return session


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def rendered(language: str, name: str = "alice", **raw) -> str:
    return handouts.render_handout(language, roster(**raw), name, REGION, ROOM_KEYS["alice"])


def test_each_participant_with_a_key_gets_a_private_handout_per_language_with_only_their_key(room_session, tmp_path,
                                                                                           capsys):
    out = tmp_path / "handouts"
    result = handouts.write_handouts(roster(), room_session, out)
    assert result.written == tuple(out / f"{name}.{language}.md" for name in ("alice", "bob") for language in LANGUAGES)
    assert sorted(os.listdir(out)) == sorted(path.name for path in result.written)  # no scratch file left
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in result.written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = path.read_text()
        own = ROOM_KEYS[path.name.split(".")[0]]
        assert f"aws_access_key_id = {own.access_key_id}\naws_secret_access_key = {own.secret_access_key}\n" in text
        for other in ALL_KEYS:
            if other != own:
                assert other.access_key_id not in text and other.secret_access_key not in text, (path, other)
    assert capsys.readouterr() == ("", "")  # no secret, nor anything else, on the terminal


def test_a_participant_without_a_key_in_this_room_is_reported_with_what_to_run(room_session, tmp_path):
    result = handouts.write_handouts(roster(), room_session, tmp_path / "handouts")
    # carol's only key is another room's.
    assert result.missing == {"carol": "carol: no access key in Secrets Manager (eu-west-1) tagged ai-workshop=june "
                                       "and ai-workshop-participant=carol; deploy the room first: "
                                       "`workbench --region eu-west-1 workshop up ROSTER`"}
    assert not list((tmp_path / "handouts").glob("carol.*"))


@pytest.mark.parametrize("stored", [
    "not json", '["AKIAALICEJUNE0000001", "secret"]', '{"aws_access_key_id": "AKIAALICEJUNE0000001"}',
    '{"aws_access_key_id": "AKIAALICEJUNE0000001", "aws_secret_access_key": "two\\nlines"}',
])
def test_a_secret_that_holds_no_access_key_is_reported_without_its_value(session, tmp_path, stored):
    arn = put_secret(session, "alice-key", stored, {room.ROOM_TAG: "june", PARTICIPANT_TAG: "alice"})
    result = handouts.write_handouts(roster(participants=["alice"]), session, tmp_path / "handouts")
    assert (result.written, result.missing) == ((), {"alice": (
        f"alice: {arn} does not hold an access key as the room's stack writes it; redeploy the room: "
        "`workbench --region eu-west-1 workshop up ROSTER`")})


def test_two_keys_for_one_participant_in_the_room_are_reported_not_chosen_from(session, tmp_path):
    tags = {room.ROOM_TAG: "june", PARTICIPANT_TAG: "alice"}
    arns = sorted(put_secret(session, f"alice-key-{n}", key_json(ROOM_KEYS["alice"]), tags) for n in (1, 2))
    result = handouts.write_handouts(roster(participants=["alice"]), session, tmp_path / "handouts")
    assert (result.written, result.missing) == ((), {"alice": (
        f"alice: 2 secrets are tagged as their access key in room june ({arns[0]}, {arns[1]}); delete the stale ones")})


def test_a_rerun_replaces_the_handouts_in_the_directory_it_made(room_session, tmp_path):
    out = tmp_path / "handouts"
    handouts.write_handouts(roster(), room_session, out)
    renewed = AccessKey("AKIAALICEJUNE0000009", "alice/june+Renewed00000000000000000000009")
    secrets = room_session.client("secretsmanager")
    (secret,) = [s for s in secrets.list_secrets()["SecretList"] if s["Name"] == "ParticipantaliceAccessKeySecret-june"]
    secrets.put_secret_value(SecretId=secret["ARN"], SecretString=key_json(renewed))
    handouts.write_handouts(roster(), room_session, out)
    text = (out / "alice.en.md").read_text()
    assert renewed.secret_access_key in text and ROOM_KEYS["alice"].secret_access_key not in text


def test_no_handout_is_ever_readable_by_others_whatever_the_umask(room_session, tmp_path, monkeypatch):
    """Each file is written in full to a 0600 scratch file in the same directory, then renamed."""
    renamed = []
    real_replace = os.replace

    def replace(source, destination):
        renamed.append((os.path.dirname(source), stat.S_IMODE(os.stat(source).st_mode), os.path.getsize(source)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "handouts"
    previous = os.umask(0)
    try:
        result = handouts.write_handouts(roster(), room_session, out)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert renamed == [(str(out), 0o600, path.stat().st_size) for path in result.written]


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777])
def test_an_existing_directory_others_can_enter_is_refused_before_any_aws_call(tmp_path, mode):
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(mode)
    with pytest.raises(WorkbenchError) as refused:
        handouts.write_handouts(roster(), object(), out)  # a session that would fail if used
    assert str(refused.value) == (f"{out} is open to others (mode 0{mode:o}): handouts hold access keys; "
                                  f"run `chmod 700 {out}` or give a new directory")
    assert os.listdir(out) == []


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a directory to another user")
def test_an_existing_directory_of_another_user_is_refused(tmp_path):
    out = tmp_path / "theirs"
    out.mkdir(mode=0o700)
    os.chown(out, 65534, 65534)
    with pytest.raises(WorkbenchError) as refused:
        handouts.write_handouts(roster(), object(), out)
    assert str(refused.value) == (f"{out} belongs to user id 65534, not to you: handouts hold access keys; give a "
                                  "new directory, which is created for you alone (0700)")


def test_a_file_or_a_symbolic_link_in_the_directorys_place_is_refused(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(private)
    for given in (tmp_path / "file", tmp_path / "link"):
        with pytest.raises(WorkbenchError) as refused:
            handouts.write_handouts(roster(), object(), given)
        assert str(refused.value) == (f"{given} is not a directory (a file or a symbolic link); give a new directory "
                                      "for the handouts")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_profile_as_pasted_gives_boto3_the_participants_key_and_the_rooms_region(language, tmp_path, monkeypatch):
    (credentials, config) = [body for kind, body in code_blocks(rendered(language)) if kind == "ini"]
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    profile = boto3.session.Session(profile_name="workshop-june")
    found = profile.get_credentials()
    assert (found.access_key, found.secret_key, profile.region_name) == (
        ROOM_KEYS["alice"].access_key_id, ROOM_KEYS["alice"].secret_access_key, REGION)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_workbench_command_in_the_handout_is_one_workbench_accepts_for_this_participant(language):
    lines = [line for _, body in code_blocks(rendered(language)) for line in body.splitlines()
             if line.startswith("workbench ")]
    parsed = [cli.parser().parse_args(shlex.split(line)[1:]) for line in lines]
    assert {(args.profile, args.region, args.name) for args in parsed} == {("workshop-june", REGION, "alice")}
    assert sorted((args.command, args.port_offset) for args in parsed) == [
        ("connect", 0), ("connect", 0), ("connect", handouts.PORT_OFFSET_EXAMPLE), ("credentials", 0)]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_services_are_where_workbench_connect_opens_them(language):
    text = rendered(language)
    for offset in (0, handouts.PORT_OFFSET_EXAMPLE):
        for forward in connect.plan(offset):
            assert forward.url in text, (offset, forward.service)


def test_the_japanese_handout_is_in_japanese_with_the_same_commands_and_profile():
    english, japanese = rendered("en"), rendered("ja")
    assert "## 3. 接続する" in japanese and "アクセスキー" in japanese
    assert re.search(r"[\u3040-\u30ff]", english) is None
    assert code_blocks(japanese) == code_blocks(english)


def test_the_end_of_access_is_shown_in_utc_and_in_the_rosters_time_zone():
    key = ROOM_KEYS["bob"]
    tokyo = timezone(timedelta(hours=9))
    assert "**2026-12-01 14:00 UTC (2026-12-01 23:00 UTC+09:00)**" in handouts.render_handout(
        "ja", roster(), "bob", REGION, key, tokyo)
    assert "**2026-12-01 14:00 UTC**" in handouts.render_handout("en", roster(), "bob", REGION, key)
    assert "**2026-12-01 14:00 UTC**" in handouts.render_handout("en", roster(), "bob", REGION, key, UTC)


def test_the_idle_stop_section_says_when_the_box_stops_itself_or_that_it_does_not():
    assert "After 45 minutes without use your workbench stops itself" in rendered("en", idle_stop_minutes=45)
    assert "使われないまま 45 分たつと" in rendered("ja", idle_stop_minutes=45)
    never = rendered("en", idle_stop_minutes=0)
    assert "does not stop itself when unused" in never and "minutes without use" not in never
    assert "自分では停止しません" in rendered("ja", idle_stop_minutes=0)
