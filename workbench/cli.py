"""`workbench`: connect to, inspect and read the credentials of a deployed workbench.

Exit codes: 0 ok; 1 an error (one line on stderr saying what and what to do); 2 bad usage;
3 (status only) the workbench is not fully healthy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench import bedrock_access, bundle, contract, handouts, local, room, settings, team_users, workshop
from workbench import connect as connecting
from workbench.aws import WorkbenchAws, WorkbenchError, credential_errors_explained
from workbench.contract import BOOT_SCRIPT_ON_BOX, SERVICE_PORTS
from workbench.deploy import ROOT, DeployError
from workbench.secrets import BY_KEY, derive
from workbench.terminal import printable, say
from workbench.workshop import DEFAULT_PARALLEL, WorkshopError

NOT_HEALTHY = workshop.NOT_HEALTHY  # the same for one box and for a room
NO_GO = 4  # workbench workshop plan: the account cannot hold the room yet
# What `workbench local logs` can show: the services of the laptop's compose files.
LOCAL_SERVICES = ("langfuse-web", "langfuse-worker", "langfuse-postgres", "clickhouse", "redis", "blob",
                  "litellm", "litellm-postgres")
# Where Cline reaches LiteLLM on the box (userdata/boot.sh's CLINE_LITELLM_URL): Cline runs in
# code-server's extension host there, so this is no browser's URL and no tunnel's port.
BOX_LITELLM_URL = f"http://localhost:{SERVICE_PORTS['LiteLLM']}"
# What `workbench logs` can show; boot.sh's service_logs knows how to read each.
LOG_SOURCES = ("boot", "langfuse-web", "langfuse-worker", "langfuse-postgres", "clickhouse", "redis",
               "litellm", "litellm-postgres", "code-server")


def cmd_connect(aws: WorkbenchAws, args) -> int:
    connecting.connect(aws, aws.deployment(args.name), args.port_offset, say)
    return 0


def cmd_credentials(aws: WorkbenchAws, args) -> int:
    deployment = aws.deployment(args.name)
    urls = {forward.service: forward.url for forward in connecting.plan(args.port_offset)}
    seed = aws.secret_seed(deployment.secret_arn)

    def secret(key: str) -> str:
        return derive(seed, BY_KEY[key])

    models = deployment.outputs.get(contract.LITELLM_MODELS, "").split(",")
    if deployment.team_gateway is not None:  # a light workbench: VS Code here, Langfuse and LiteLLM the team's
        say(f"VS Code       {urls['VS Code']}")
        say(f"  password    {secret('code-server-password')}")
        say(f"Cline (set up on the box at boot with {deployment.name}'s own key on the team gateway "
            f"{deployment.team_gateway})")
        say("  API Provider  LiteLLM")
        say(f"  Base URL      {deployment.outputs.get(contract.GATEWAY_URL, '(see the stack outputs)')}")
        say(f"  API Key       in {deployment.outputs.get(contract.USER_SECRET_NAME, 'its user secret')}")
        say(f"  Model         {models[0]}")
        say("Langfuse and the team's LiteLLM: `workbench team connect`, `workbench team credentials` (the operator)")
        return 0
    say(f"Langfuse      {urls['Langfuse']}")
    say(f"  login       {deployment.outputs.get(contract.LANGFUSE_ADMIN_EMAIL, '(see workbench.yaml)')}")
    say(f"  password    {secret('langfuse-admin-password')}")
    say(f"  public key  {secret('langfuse-public-key')}")
    say(f"  secret key  {secret('langfuse-secret-key')}")
    say(f"LiteLLM       {urls['LiteLLM']}")
    say(f"  master key  {secret('litellm-master-key')}   (operator only: admin API and UI)")
    say(f"VS Code       {urls['VS Code']}")
    say(f"  password    {secret('code-server-password')}")
    say("Cline (set up on the box at boot; VS Code -> Cline -> settings shows the same)")
    say("  API Provider  LiteLLM")
    # Cline runs in VS Code Server's extension host on the box, where LiteLLM is always on
    # port 4000, whatever local port the tunnel uses.
    say(f"  Base URL      {BOX_LITELLM_URL}   (on the box, where Cline runs)")
    say(f"  API Key       {secret('litellm-cline-key')}   (Cline's own: these models, a daily budget)")
    say(f"  Model         {models[0]}" + (f"   (also: {', '.join(models[1:])})" if len(models) > 1 else ""))
    return 0


def cmd_status(aws: WorkbenchAws, args) -> int:
    deployment = aws.deployment(args.name)
    state = aws.instance_state(deployment.instance_id)
    report: dict[str, Any] = {"workbench": deployment.name, "region": deployment.region,
                              "instance_id": deployment.instance_id, "instance_state": state,
                              "ssm": None, "services": {}}
    if state == "running":
        report["ssm"] = aws.ssm_ping(deployment.instance_id)
    if report["ssm"] == "Online":
        health = aws.box_health(deployment.instance_id)
        report["services"], report["idle_stop"] = health.services, health.idle_stop
        report["cline_spend"] = health.cline_spend
    models = deployment.bedrock_models
    access = bedrock_access.check_all(aws.session, models) if models else []
    report["bedrock"] = {result.model.name: result.detail for result in access}
    healthy = (bool(report["services"]) and all(v == "healthy" for v in report["services"].values())
               and not any(result.ready is False for result in access))
    report["healthy"] = healthy
    if args.json:
        # json.dumps writes every control character as a \u escape: the answer stays whole and printable.
        print(json.dumps(report, indent=2))
    else:
        say(f"workbench  {deployment.name} ({deployment.region})")
        say(f"instance   {deployment.instance_id}  {state}")
        say(f"ssm        {report['ssm'] or 'not checked (instance not running)'}")
        if report["services"]:
            for service, health in report["services"].items():
                say(f"  {service:<27} {health}")
        elif report["ssm"] == "Online":
            say("services   no answer from the box's health check")
        else:
            say("services   not checked (SSM cannot reach the instance)")
        if report.get("idle_stop"):
            say(f"idle stop  {report['idle_stop']}")
        if report.get("cline_spend"):
            say(f"cline      {report['cline_spend']}")
        for name, detail in report["bedrock"].items():
            say(f"bedrock    {name}: {detail}")
    return 0 if healthy else NOT_HEALTHY


def cmd_logs(aws: WorkbenchAws, args) -> int:
    deployment = aws.deployment(args.name)
    if aws.instance_state(deployment.instance_id) != "running":
        raise WorkbenchError(f"instance {deployment.instance_id} is not running; `workbench connect` starts it")
    sys.stdout.write(printable(aws.run_shell(deployment.instance_id,
                                             f"{BOOT_SCRIPT_ON_BOX} --logs {args.service} {args.lines}")))
    return 0


def cmd_list(aws: WorkbenchAws, args) -> int:
    found = aws.deployments()
    if not found:
        say(f"no workbench deployed in {aws.region}")
    for name, status in found:
        say(f"{name:<26} {status}")
    deployed = {name for name, _ in found}
    kept = [snapshot for snapshot in aws.data_snapshots() if snapshot.workbench not in deployed]
    if kept:
        say("")
        say("Data snapshots of destroyed workbenches (restore: make deploy CDK_ARGS='-c name=NAME "
            "-c data_snapshot_id=SNAPSHOT'):")
        for snapshot in kept:
            say(snapshot.line())
    return 0


def cmd_local(args) -> int:
    """`workbench local ...`: no deployed stack, the user's own Docker and AWS profile (workbench/local.py)."""
    if not bundle.ASSETS.is_dir():  # the wheel (Workshop Studio's) carries the command, not the compose files
        raise WorkbenchError("`workbench local` runs from a checkout of the repository, which has the compose files "
                             f"it renders ({bundle.ASSETS} is missing): clone it and run `make install`, then "
                             "`.venv/bin/workbench local up`")
    loaded = settings.load()
    directory = local.home(loaded.name)
    if args.local_command == "render":
        say(str(local.render(loaded, directory)))
    elif args.local_command == "up":
        local.up(loaded, directory, args.profile, say)
        say("Langfuse on http://localhost:3000, LiteLLM on http://localhost:4000; `workbench local credentials`")
    elif args.local_command == "down":
        if args.volumes and not args.yes and input(
                "Delete Langfuse's and LiteLLM's data on this machine? Type yes: ").strip() != "yes":
            raise WorkbenchError("nothing deleted")
        local.down(directory, args.volumes)
    elif args.local_command == "status":
        services = local.status(directory)
        for service, health in services.items():
            say(f"{service:<20} {health}")
        if not services or any(health not in ("healthy", "running") for health in services.values()):
            return NOT_HEALTHY
    elif args.local_command == "logs":
        project = "litellm" if args.service.startswith("litellm") else "langfuse"
        return local.compose(directory, project, "logs", "--tail", str(args.lines), args.service).returncode
    else:
        values = local.env_values(loaded, local.seed(directory))
        if args.local_command == "credentials":
            local.print_credentials(loaded, values, say)
        elif args.apply:
            local.apply_cline(loaded, values, say)
        else:
            for path, wanted in local.cline_settings(loaded, values):
                say(f"{path}:")
                say(json.dumps(wanted, indent=2))
    return 0


def cmd_workshop(aws: WorkbenchAws, args) -> int:
    """`workbench workshop plan|up|down ROSTER`: a room of participants in this account (workbench/room.py,
    workbench/workshop.py)."""
    roster_file = Path(args.roster)
    if args.workshop_command == "plan":
        loaded = settings.load()
        now = datetime.now(UTC)
        roster = room.load_roster(roster_file, loaded, now)
        with credential_errors_explained():
            room_plan = room.plan(roster, loaded, aws.session, starts_at=now)
        say(room.format_plan(room_plan))
        return 0 if room_plan.go else NO_GO
    if args.workshop_command == "status":
        with credential_errors_explained():
            return workshop.status(roster_file, aws.region, args.profile, args.parallel, say)
    if args.workshop_command == "handouts":
        roster = room.load_roster(roster_file, settings.load(), now=None)
        with credential_errors_explained():
            result = handouts.write_handouts(roster, aws.session, Path(args.out))
        for path in result.written:
            say(str(path))
        for name, why in result.missing.items():
            say(f"{name}: no handout: {why}")
        if (ROOT / "app.py").is_file():  # a checkout, which builds the wheel the handouts tell people to install
            from workbench.workshop_studio import build_wheel  # imports the CDK app, which the wheel lacks

            say(str(build_wheel(Path(args.out))))
        say("Send each participant their own two files (they hold that participant's access key) and the "
            "`workbench` wheel (ai_coding_workbench-*.whl)")
        return 1 if result.missing else 0
    # Deploying and destroying need the CDK app, which the installed command (the wheel) does not carry.
    if not (ROOT / "app.py").is_file():
        raise WorkbenchError(f"`workbench workshop {args.workshop_command}` runs from a checkout of the repository, "
                             "which has the CDK app it deploys: clone it, `make install`, then `make workshop-"
                             f"{args.workshop_command} ROSTER={args.roster}`")
    # The CDK CLI takes its region from the environment; the same one for boto3 (deploy.resolve_region).
    os.environ["AWS_REGION"] = aws.region
    with credential_errors_explained():
        if args.workshop_command == "up":
            return workshop.up(roster_file, args.profile, args.parallel, args.despite_quotas, args.reshare, say)
        return workshop.down(roster_file, args.profile, args.parallel, args.keep_data, say)


def cmd_team(aws: WorkbenchAws, args) -> int:
    """`workbench team connect|credentials|add-user|list-users|remove-user`: the settings' team gateway."""
    if not settings.DEFAULT_SETTINGS_FILE.exists() or not team_users.KEY_REQUEST.exists():
        # The wheel (Workshop Studio's) carries the command, not the settings or the box's key request.
        raise WorkbenchError("`workbench team` runs from a checkout of the repository, whose workbench.yaml names "
                             "the team gateway: clone it, `make install`, then `.venv/bin/workbench team ...`")
    loaded = settings.load()
    if loaded.team is None:
        raise WorkbenchError("workbench.yaml has no team section: see its team: settings and `make deploy-team`")
    with credential_errors_explained():
        gateway = team_users.gateway(aws, loaded.team)
        if args.team_command == "connect":
            connecting.connect_team(aws, gateway.access_instance_id, gateway.host, args.port_offset, say)
            return 0
        master = team_users.master_key(aws, gateway)
        if args.team_command == "credentials":
            values = json.loads(aws.session.client("secretsmanager").get_secret_value(
                SecretId=gateway.derived_secret_arn)["SecretString"])
            say("Langfuse      http://localhost:3000   (workbench team connect)")
            say(f"  login       {loaded.langfuse_admin_email}")
            say(f"  password    {values['LANGFUSE_ADMIN_PASSWORD']}")
            say("LiteLLM       http://localhost:4000   (workbench team connect)")
            say(f"  master key  {master}   (operator only: admin API and UI)")
            return 0
        with team_users.litellm_tunnel(aws, gateway, say) as base_url:
            admin = team_users.LiteLLMAdmin(base_url, master)
            if args.team_command == "add-user":
                added = team_users.add_user(aws, gateway, loaded, admin, args.user, args.budget,
                                            args.models.split(",") if args.models else None)
                say(f"{added.user} can use {', '.join(added.models)} for USD {added.budget_usd_per_day:g} a day.")
                say(f"Their light workbench (gateway: team, name: {added.user}) reads this key at boot. For Cline "
                    "elsewhere: API Provider LiteLLM,")
                say(f"  Base URL  {gateway.litellm_url}   (in the team's VPC; on a laptop http://localhost:4000 "
                    "with `workbench team connect`)")
                say(f"  API Key   {added.key}")
                say(f"  Model     {added.models[0]}")
            elif args.team_command == "list-users":
                rows = admin.user_keys()
                say(f"{'user':<26} {'spend USD':>10} {'budget/day':>10}  models")
                for row in sorted(rows, key=lambda r: str(r.get("user_id"))):
                    say(f"{row.get('user_id')!s:<26} {float(row.get('spend') or 0):>10.2f} "
                        f"{float(row.get('max_budget') or 0):>10.2f}  {','.join(row.get('models') or [])}")
                if not rows:
                    say("no users yet: `workbench team add-user NAME`")
            else:
                say(f"{args.user}: {', '.join(team_users.remove_user(aws, gateway, admin, args.user))}")
    return 0


def budget(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of US dollars") from None
    if not 0 < value <= 10000:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range; use above 0, at most 10000")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="workbench", description=__doc__.split("\n")[0])
    top.add_argument("--region", help="AWS region (default: your AWS configuration)")
    top.add_argument("--profile", help="AWS profile (default: your AWS configuration)")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_text: str, named: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if named:
            # Resolved when the command runs, so a broken workbench.yaml never breaks --help.
            sub.add_argument("name", nargs="?", default=None, help="workbench name (default: `name` in workbench.yaml)")
        sub.set_defaults(handler=handler)
        return sub

    port_offset_help = "add this to the local ports of LiteLLM and VS Code (Langfuse stays on 3000)"
    command("connect", cmd_connect, "open port forwards to Langfuse, LiteLLM and VS Code").add_argument(
        "--port-offset", type=port_offset, default=0, help=port_offset_help)
    command("credentials", cmd_credentials, "print the logins, keys and Cline settings").add_argument(
        "--port-offset", type=port_offset, default=0, help=port_offset_help)
    command("status", cmd_status, "instance state, SSM reachability and each service's health").add_argument(
        "--json", action="store_true", help="machine-readable output")
    logs = command("logs", cmd_logs, "the tail of one service's log on the box")
    logs.add_argument("service", choices=LOG_SOURCES)
    logs.add_argument("--lines", type=line_count, default=100, help="how many lines (default 100)")
    command("list", cmd_list, "the workbenches deployed in the region", named=False)
    local_parser = command("local", cmd_local, "Langfuse and LiteLLM on this machine's Docker", named=False)
    local_commands = local_parser.add_subparsers(dest="local_command", required=True)
    local_commands.add_parser("render", help="write the compose and env files (done by up too)")
    local_commands.add_parser("up", help="check AWS and Bedrock, start everything, wait until healthy")
    local_down = local_commands.add_parser("down", help="stop; the data stays unless --volumes")
    local_down.add_argument("--volumes", action="store_true", help="also delete the data (asks first)")
    local_down.add_argument("--yes", action="store_true", help="with --volumes: do not ask")
    local_commands.add_parser("status", help="each service's health")
    local_logs = local_commands.add_parser("logs", help="the tail of one service's log")
    local_logs.add_argument("service", choices=LOCAL_SERVICES)
    local_logs.add_argument("--lines", type=line_count, default=100, help="how many lines (default 100)")
    local_commands.add_parser("credentials", help="print the logins, keys and Cline settings")
    local_commands.add_parser("cline", help="print Cline's settings; --apply merges them").add_argument(
        "--apply", action="store_true", help="merge into ~/.cline/data (a backup first; keys you set stay)")
    workshop = command("workshop", cmd_workshop, "a room of participants in this account", named=False)
    workshop_commands = workshop.add_subparsers(dest="workshop_command", required=True)
    workshop_commands.add_parser(
        "plan", help="the account's quotas against the room's needs, each participant's Bedrock share, the cost; "
                     f"exit {NO_GO} on a no-go").add_argument("roster", help="the roster file (YAML)")
    def room_command(name: str, help_text: str, parallel_help: str | None = None) -> argparse.ArgumentParser:
        sub = workshop_commands.add_parser(name, help=help_text)
        sub.add_argument("roster", help="the roster file (YAML)")
        if parallel_help:
            sub.add_argument("--parallel", type=whole_number(1, 16), default=DEFAULT_PARALLEL,
                             help=f"{parallel_help} at once (default {DEFAULT_PARALLEL})")
        return sub

    room_command("status", f"each participant's box: state, health, idle stop, Cline's spend; exit {NOT_HEALTHY} "
                           "unless every box is healthy", "boxes asked")
    room_command("handouts", "one file per participant and language (en, ja): their AWS profile, how to connect"
                 ).add_argument("--out", required=True, help="a new directory, or one only you can read")
    workshop_up = room_command(
        "up", "deploy the room's network and access and each participant's workbench; run again to converge",
        "deploys")
    workshop_up.add_argument("--despite-quotas", action="store_true",
                             help="deploy even though the plan says the quotas cannot hold the room")
    workshop_up.add_argument("--reshare", action="store_true",
                             help="give every Cline key this roster's share of Bedrock instead of the first up's "
                                  "(restarts every box)")
    workshop_down = room_command(
        "down", "destroy every participant's workbench, then the room's stack (revoking every access key)", "deploys")
    workshop_down.add_argument("--keep-data", action="store_true",
                               help="keep a snapshot of each participant's data volume (default: delete them)")
    team = command("team", cmd_team, "the team gateway of workbench.yaml's team section", named=False)
    team_commands = team.add_subparsers(dest="team_command", required=True)
    team_commands.add_parser("connect", help="open port forwards to the gateway's Langfuse and LiteLLM").add_argument(
        "--port-offset", type=port_offset, default=0, help="add this to LiteLLM's local port (Langfuse stays on 3000)")
    team_commands.add_parser("credentials", help="the Langfuse admin's login and LiteLLM's master key")
    add_user = team_commands.add_parser("add-user", help="give a person a LiteLLM key (models, daily budget) and "
                                                         "print their Cline settings")
    add_user.add_argument("user", help="their name: LiteLLM's user id, what Langfuse shows, their workbench's name")
    add_user.add_argument("--budget", type=budget, help="US dollars a day (default: cline_budget_usd_per_day)")
    add_user.add_argument("--models", help="comma-separated model names (default: all the gateway serves)")
    team_commands.add_parser("list-users", help="each person's key: spend, daily budget, models")
    team_commands.add_parser("remove-user", help="revoke a person's key and delete its secret").add_argument(
        "user", help="their name")
    return top


def whole_number(low: int, high: int):
    """An argparse type: a whole number from low to high, or argparse's one-line usage error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {low}-{high}")
        return value
    return parse


port_offset = whole_number(0, 65535 - max(SERVICE_PORTS.values()))
line_count = whole_number(1, 100_000)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "local":  # no stack: the user's own profile, resolved by local.up
            return args.handler(args)
        if getattr(args, "name", "") is None:
            if not settings.DEFAULT_SETTINGS_FILE.exists():  # installed from the wheel, outside a checkout
                raise WorkbenchError("no workbench.yaml here to take the workbench's name from: "
                                     "give its NAME (`workbench list` shows them)")
            args.name = settings.load().name
        return args.handler(WorkbenchAws(region=args.region, profile=args.profile), args)
    except (WorkbenchError, settings.SettingsError, room.RosterError, WorkshopError, DeployError) as error:
        print(printable(f"workbench: {error}"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
