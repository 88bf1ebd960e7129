"""What the stack promises the operator tools: one source for both sides and the tests.

The stack writes these outputs and the boot script's path; `workbench` (cli, connect, aws)
reads them. A name changed here changes on both sides at once.
"""

# The three services a person uses and the port each listens on (127.0.0.1 on the box, and on
# their own machine through the SSM tunnel).
SERVICE_PORTS = {"Langfuse": 3000, "LiteLLM": 4000, "VS Code": 8080}

# The host name each service is opened on in the operator's browser. Cookies are not separated
# by port (RFC 6265 section 8.5), and VS Code's origin is the coding user's: code-server runs as
# that user and serves /proxy/<port>/ from its processes. So VS Code gets a host of its own:
# 127.0.0.1 and localhost are different hosts and different sites, so no cookie of Langfuse
# (its NEXTAUTH_URL is http://localhost:3000) or LiteLLM's UI (its admin `token` cookie is
# readable by scripts) reaches a page the coding user serves. The tunnel listens on 127.0.0.1:
# session-manager-plugin binds "localhost:<port>", and Go listens on its first IPv4 address.
SERVICE_HOSTS = {"Langfuse": "localhost", "LiteLLM": "localhost", "VS Code": "127.0.0.1"}

# Where the user data installs the boot script; `workbench status` and `logs` run it through SSM.
BOOT_SCRIPT_ON_BOX = "/usr/local/sbin/workbench-boot"
# Copies Langfuse's media and exports from the blob bucket onto the data volume (`make destroy`
# runs it through SSM before it stops the box); from the bundle, assets/boot/blob-mirror.sh.
SAVE_BLOBS_ON_BOX = "bash /opt/workbench/boot/blob-mirror.sh save"

# Stack output names.
INSTANCE_ID = "InstanceId"
REGION = "Region"
LANGFUSE_ADMIN_EMAIL = "LangfuseAdminEmail"
LITELLM_MODELS = "LiteLLMModels"
BEDROCK_MODELS = "BedrockModels"
SECRET_ARN = "SecretArn"
DATA_VOLUME_ID = "DataVolumeId"
BOOT_REPORT = "BootReport"
# A light workbench's (gateway: team) outputs besides those above.
TEAM_GATEWAY = "TeamGateway"
GATEWAY_URL = "GatewayUrl"
USER_SECRET_NAME = "UserSecretName"


def output_prefix(service: str) -> str:
    """How the stack's outputs name a service: LangfuseUrl, VSCodePortForwardCommand, ..."""
    return service.replace(" ", "")


def service_url(service: str, local_port: int) -> str:
    """Where the operator opens a service through its tunnel on local_port (stack outputs,
    `workbench connect`, `workbench credentials`)."""
    return f"http://{SERVICE_HOSTS[service]}:{local_port}"


def url_output(service: str) -> str:
    return f"{output_prefix(service)}Url"


def port_forward_output(service: str) -> str:
    return f"{output_prefix(service)}PortForwardCommand"


def port_forward_argv(instance_id: str, remote_port: int, local_port: int, region: str,
                      remote_host: str | None = None) -> list[str]:
    """The AWS CLI command that opens one tunnel (Session Manager's port-forwarding document): to the
    instance's own port, or through it to `remote_host` (a team gateway's load balancer, reached
    through its access host; AWS-StartPortForwardingSessionToRemoteHost)."""
    if remote_host is None:
        document, host = "AWS-StartPortForwardingSession", ""
    else:
        document, host = "AWS-StartPortForwardingSessionToRemoteHost", f'"host":["{remote_host}"],'
    return [
        "aws", "ssm", "start-session", "--target", instance_id,
        "--document-name", document,
        "--parameters", f'{{{host}"portNumber":["{remote_port}"],"localPortNumber":["{local_port}"]}}',
        "--region", region,
    ]


def port_forward_command(instance_id: str, port: int, region: str) -> str:
    """The same command as one line to paste into a shell (the stack's *PortForwardCommand outputs)."""
    argv = port_forward_argv(instance_id, port, port, region)
    return " ".join(f"'{arg}'" if arg.startswith("{") else arg for arg in argv)
