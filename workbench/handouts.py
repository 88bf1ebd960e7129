# ruff: noqa: RUF001 (the Japanese handout's fullwidth parentheses are Japanese typography)
"""Handouts for a workshop room (issue 21): for each participant one file per language
(NAME.en.md, NAME.ja.md) with their access key as an AWS profile, how to install the `workbench`
command and connect, where Langfuse, LiteLLM and VS Code open, when access ends, and what to do
after an idle stop.

A file per language rather than one with both: each participant gets one self-contained page in
the language they read, half as long. Send each participant their own file with the `workbench`
wheel (ai_coding_workbench-*.whl), which the handout tells them to install.

Each file holds a live access key, so the directory is the organiser's alone (0700), each file is
0600 from its first byte, and nothing here prints a secret: the caller gets file paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from pathlib import Path

from workbench import connect
from workbench.aws import WorkbenchError
from workbench.room import ROOM_TAG, Roster
from workbench.settings import stack_name_for

# Tags each participant's IAM user and access-key secret with their name. Defined here, where the
# installed `workbench` command (the wheel, which has no CDK) can read it; stacks/room_stack.py
# tags the secrets with it.
PARTICIPANT_TAG = "ai-workshop-participant"
LANGUAGES = ("en", "ja")
# The --port-offset a handout suggests for busy local ports, as the Workshop Studio guide does.
PORT_OFFSET_EXAMPLE = 10000
# Printable ASCII without spaces, as IAM issues both parts of a key: anything else (a line break)
# would break or add lines to the profile files the participant pastes them into.
KEY_PART = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)  # kept out of tracebacks and logs


@dataclass(frozen=True)
class HandoutResult:
    written: tuple[Path, ...]
    missing: dict[str, str]  # participant: why there is no handout for them, and what to run


def profile_name(event: str) -> str:
    return f"workshop-{event}"


def workbench_command(roster: Roster, name: str, region: str, command: str) -> list[str]:
    """A participant's `workbench` command line. --profile and --region are the top-level parser's,
    so they come before the command; --region because `workbench` prefers AWS_REGION, should the
    participant have one set, to the profile's region."""
    return ["workbench", "--profile", profile_name(roster.event), "--region", region, command, name]


def _ends_at(roster: Roster, time_zone: tzinfo | None) -> str:
    in_utc = f"{roster.ends_at:%Y-%m-%d %H:%M} UTC"
    given = roster.ends_at.astimezone(time_zone) if time_zone else None
    if given is None or given.utcoffset() == timedelta(0):
        return in_utc
    return f"{in_utc} ({given:%Y-%m-%d %H:%M} {given.tzname()})"


def render_handout(language: str, roster: Roster, name: str, region: str, key: AccessKey,
                   time_zone: tzinfo | None = None) -> str:
    """One participant's handout in `language` (one of LANGUAGES). time_zone: the one the roster gave
    ends_at in (Roster keeps it in UTC), shown next to UTC."""
    urls = {forward.service: forward.url for forward in connect.plan(0)}
    moved = {forward.service: forward.url for forward in connect.plan(PORT_OFFSET_EXAMPLE)}
    connect_command = workbench_command(roster, name, region, "connect")
    values = {
        "name": name, "event": roster.event, "region": region, "stack": stack_name_for(name),
        "profile": profile_name(roster.event), "key_id": key.access_key_id, "secret": key.secret_access_key,
        "ends_at": _ends_at(roster, time_zone), "idle_stop_minutes": roster.idle_stop_minutes,
        "connect": shlex.join(connect_command),
        "connect_moved": shlex.join([*connect_command, "--port-offset", str(PORT_OFFSET_EXAMPLE)]),
        "credentials": shlex.join(workbench_command(roster, name, region, "credentials")),
        "langfuse_url": urls["Langfuse"], "litellm_url": urls["LiteLLM"], "vscode_url": urls["VS Code"],
        "litellm_moved_url": moved["LiteLLM"], "vscode_moved_url": moved["VS Code"],
    }
    idle_stop = IDLE_STOP[language][roster.idle_stop_minutes > 0]
    return HANDOUTS[language].format(**values, idle_stop=idle_stop.format(**values))


def write_handouts(roster: Roster, session, out_dir: Path, time_zone: tzinfo | None = None) -> HandoutResult:
    """Writes out_dir/NAME.LANG.md for each participant whose access key the room's stack keeps in
    the session's region; the others are in the result's `missing`, with what to run. time_zone: as
    render_handout's."""
    out_dir = Path(out_dir)
    _private_directory(out_dir)
    region = session.region_name
    found = _access_keys(roster, region, session.client("secretsmanager"))
    written, missing = [], {}
    for name in roster.participants:
        key = found[name]
        if isinstance(key, str):
            missing[name] = key
            continue
        for language in LANGUAGES:
            path = out_dir / f"{name}.{language}.md"
            _write_private(path, render_handout(language, roster, name, region, key, time_zone))
            written.append(path)
    return HandoutResult(tuple(written), missing)


def _private_directory(out_dir: Path) -> None:
    """Creates out_dir 0700, or accepts an existing one only if nobody else can enter it."""
    with contextlib.suppress(FileExistsError):  # judged below, whatever it is
        out_dir.mkdir(mode=0o700, parents=True)
    found = out_dir.lstat()
    if not stat.S_ISDIR(found.st_mode):
        raise WorkbenchError(f"{out_dir} is not a directory (a file or a symbolic link); give a new directory "
                             "for the handouts")
    if found.st_uid != os.getuid():
        raise WorkbenchError(f"{out_dir} belongs to user id {found.st_uid}, not to you: handouts hold access "
                             "keys; give a new directory, which is created for you alone (0700)")
    if found.st_mode & 0o077:
        raise WorkbenchError(f"{out_dir} is open to others (mode {stat.S_IMODE(found.st_mode):04o}): handouts "
                             f"hold access keys; run `chmod 700 {out_dir}` or give a new directory")


def _access_keys(roster: Roster, region: str, secretsmanager) -> dict[str, AccessKey | str]:
    """Each participant's access key, from the one secret tagged with both this room's event and
    their name, or why there is none to hand out. Secrets Manager's tag filters match any tag's key
    or value, by prefix, so they only narrow the listing: the tags are compared exactly here, and
    another room's secret for the same name (or one of an event named like this one) never matches."""
    arns: dict[str, list[str]] = {name: [] for name in roster.participants}
    pages = secretsmanager.get_paginator("list_secrets").paginate(Filters=[
        {"Key": "tag-key", "Values": [PARTICIPANT_TAG]}, {"Key": "tag-value", "Values": [roster.event]}])
    for page in pages:
        for secret in page["SecretList"]:
            tags = {tag["Key"]: tag["Value"] for tag in secret.get("Tags", [])}
            if tags.get(ROOM_TAG) == roster.event and tags.get(PARTICIPANT_TAG) in arns:
                arns[tags[PARTICIPANT_TAG]].append(secret["ARN"])
    found: dict[str, AccessKey | str] = {}
    for name, secrets in arns.items():
        if not secrets:
            found[name] = (f"{name}: no access key in Secrets Manager ({region}) tagged {ROOM_TAG}={roster.event} "
                           f"and {PARTICIPANT_TAG}={name}; deploy the room first: "
                           f"`workbench --region {region} workshop up ROSTER`")
        elif len(secrets) > 1:
            found[name] = (f"{name}: {len(secrets)} secrets are tagged as their access key in room {roster.event} "
                           f"({', '.join(sorted(secrets))}); delete the stale ones")
        else:
            # .get: a binary secret is not the room's either.
            key = _access_key(secretsmanager.get_secret_value(SecretId=secrets[0]).get("SecretString", ""))
            found[name] = key or (f"{name}: {secrets[0]} does not hold an access key as the room's stack writes "
                                  f"it; redeploy the room: `workbench --region {region} workshop up ROSTER`")
    return found


def _access_key(secret_string: str) -> AccessKey | None:
    """The key as the room's stack writes it (stacks/room_stack.py), or None for anything else."""
    try:
        value = json.loads(secret_string)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    key_id, secret = value.get("aws_access_key_id"), value.get("aws_secret_access_key")
    if not (isinstance(key_id, str) and isinstance(secret, str) and KEY_PART.fullmatch(key_id)
            and KEY_PART.fullmatch(secret)):
        return None
    return AccessKey(key_id, secret)


def _write_private(path: Path, text: str) -> None:
    """Writes path so that no one else can read it at any moment: a 0600 file of mkstemp's (O_EXCL) in
    the same directory, renamed over path when complete."""
    descriptor, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
        raise


HANDOUTS = {"en": """\
# AI Coding Workbench `{name}`: your access for workshop {event}

This file is for {name} alone: it holds your personal AWS access key. Do not share it, and delete it once
the key is in your AWS configuration.

Your workbench `{name}` runs in AWS region `{region}`: VS Code in the browser with the Cline coding agent
already set up in it, LiteLLM (Cline's gateway to Amazon Bedrock) and Langfuse (a record of every model call).
Nothing on it is open to the internet: you reach it through AWS Systems Manager port forwarding.

The key works only for your own workbench (the stack `{stack}`), and only until the end of the event:

**{ends_at}**

After that every command answers `AWS refused the call`.

## 1. Add the AWS profile `{profile}`

Add these lines to `~/.aws/credentials` (create the file if you have none; if it has a `[{profile}]`
section already, replace it):

```ini
[{profile}]
aws_access_key_id = {key_id}
aws_secret_access_key = {secret}
```

and these to `~/.aws/config`:

```ini
[profile {profile}]
region = {region}
```

## 2. Install the tools

You need macOS or Linux (on Windows, WSL) with Python 3.11 or newer, and:

- AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html
- the Session Manager plugin for the AWS CLI:
  https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html
- the `workbench` command, from the file `ai_coding_workbench-….whl` that came with this handout. In the
  folder that holds it:

```bash
python3 -m venv ~/.workbench
~/.workbench/bin/pip install ./ai_coding_workbench-*.whl
export PATH="$HOME/.workbench/bin:$PATH"
```

Check them:

```bash
aws --version                      # aws-cli/2.x
session-manager-plugin --version
aws sts get-caller-identity --profile {profile}
```

## 3. Connect

```bash
{connect}
```

Leave it running in a terminal of its own: it holds three port forwards open, and Ctrl-C closes them all.
While it runs, open:

- **VS Code**: **{vscode_url}**, by exactly this address. Cline is already set up in it: open Cline
  in the side bar and give it a task.
- **Langfuse**: {langfuse_url}, where every model call of Cline's shows up, one session per task.
- **LiteLLM**: {litellm_url}, the OpenAI-compatible gateway to Bedrock (its UI is at /ui).

In a second terminal,

```bash
{credentials}
```

prints your logins: the VS Code password, the Langfuse login and password, and Cline's settings. Keep them
to yourself.

If a local port is busy, connect with

```bash
{connect_moved}
```

LiteLLM then opens on {litellm_moved_url} and VS Code on {vscode_moved_url}; Langfuse always stays on
{langfuse_url}.

{idle_stop}""", "ja": """\
# AI Coding Workbench `{name}`: ワークショップ {event} のアクセス情報

このファイルは {name} さん専用です。あなた個人の AWS アクセスキーが書かれています。他の人には渡さず、
キーを AWS の設定に入れたらこのファイルは削除してください。

あなたのワークベンチ `{name}` は AWS リージョン `{region}` で動いています。ブラウザで使う VS Code
（コーディングエージェント Cline は設定済み）、LiteLLM（Cline が Amazon Bedrock を呼び出すゲートウェイ）、
Langfuse（モデル呼び出しをすべて記録）が入っています。インターネットには何も公開されていません。
AWS Systems Manager のポートフォワーディングで接続します。

このキーで操作できるのはあなた自身のワークベンチ（スタック `{stack}`）だけで、期限はイベント終了の
次の時刻です。

**{ends_at}**

それ以降はどのコマンドも `AWS refused the call` と答えます。

## 1. AWS プロファイル `{profile}` を追加する

次の行を `~/.aws/credentials` に追加します（ファイルがなければ作成します。`[{profile}]` の
セクションがすでにあれば置き換えます）。

```ini
[{profile}]
aws_access_key_id = {key_id}
aws_secret_access_key = {secret}
```

次の行を `~/.aws/config` に追加します。

```ini
[profile {profile}]
region = {region}
```

## 2. ツールをインストールする

macOS または Linux（Windows では WSL）と Python 3.11 以上が必要です。そのうえで:

- AWS CLI v2: https://docs.aws.amazon.com/ja_jp/cli/latest/userguide/getting-started-install.html
- AWS CLI 用の Session Manager プラグイン:
  https://docs.aws.amazon.com/ja_jp/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html
- `workbench` コマンド: このファイルと一緒に受け取った `ai_coding_workbench-….whl` から入れます。
  そのファイルがあるフォルダーで:

```bash
python3 -m venv ~/.workbench
~/.workbench/bin/pip install ./ai_coding_workbench-*.whl
export PATH="$HOME/.workbench/bin:$PATH"
```

確認します。

```bash
aws --version                      # aws-cli/2.x
session-manager-plugin --version
aws sts get-caller-identity --profile {profile}
```

## 3. 接続する

```bash
{connect}
```

専用のターミナルで動かしたままにしてください。3 つのポートフォワードを開いたまま保ち、Ctrl-C で
3 つとも閉じます。動いている間に次を開きます。

- **VS Code**: **{vscode_url}**。必ずこのアドレスで開いてください。Cline は設定済みです。
  サイドバーで Cline を開き、タスクを渡します。
- **Langfuse**: {langfuse_url}。Cline のモデル呼び出しがすべて、タスクごとに 1 つのセッションとして
  表示されます。
- **LiteLLM**: {litellm_url}。Bedrock への OpenAI 互換ゲートウェイです（UI は /ui）。

2 つ目のターミナルで

```bash
{credentials}
```

を実行すると、ログイン情報（VS Code のパスワード、Langfuse のログインとパスワード、Cline の設定）が
表示されます。他の人には見せないでください。

ローカルのポートが使用中なら、次のコマンドで接続します。

```bash
{connect_moved}
```

LiteLLM は {litellm_moved_url}、VS Code は {vscode_moved_url} で開きます。Langfuse は常に
{langfuse_url} のままです。

{idle_stop}"""}

# By language, then by whether the room's workbenches stop themselves (idle_stop_minutes > 0). What
# they say of `workbench connect` is what connect.wait_until_reachable does with a stopped instance.
IDLE_STOP = {"en": {True: """\
## If your workbench has stopped

After {idle_stop_minutes} minutes without use your workbench stops itself; your files and Langfuse's data
stay. An open `workbench connect`, and a Cline task that keeps calling the model, count as use. To go on,
run the same command again:

```bash
{connect}
```

It finds the instance stopped, starts it (if it is still stopping, it waits for that first), waits until
Systems Manager reaches it, and then opens the port forwards. The pages may take a few more minutes while
the services start.
""", False: """\
## If your workbench has stopped

In this event your workbench does not stop itself when unused. Should it be stopped anyway, run the same
command again:

```bash
{connect}
```

It starts a stopped instance, waits until Systems Manager reaches it, and then opens the port forwards.
"""}, "ja": {True: """\
## ワークベンチが停止していたら

使われないまま {idle_stop_minutes} 分たつと、ワークベンチは自分で停止します。ファイルや Langfuse の
データは残ります。`workbench connect` を開いている間と、Cline のタスクがモデルを呼び続けている間は
使用中と数えます。続けるには同じコマンドをもう一度実行します。

```bash
{connect}
```

インスタンスが停止していれば起動し（まだ停止処理中なら、それが終わるのを待ってから起動します）、
Systems Manager から到達できるまで待ってから、ポートフォワードを開きます。サービスが起動するまで、
ページが開くのにさらに数分かかることがあります。
""", False: """\
## ワークベンチが停止していたら

このイベントでは、ワークベンチは使われていなくても自分では停止しません。それでも停止していたら、
同じコマンドをもう一度実行します。

```bash
{connect}
```

停止したインスタンスを起動し、Systems Manager から到達できるまで待ってから、ポートフォワードを開きます。
"""}}
