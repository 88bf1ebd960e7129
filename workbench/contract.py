"""What the stack promises the operator tools: one source for both sides and the tests.

The stack writes these outputs and the boot script's path; `workbench` (cli, connect, aws)
reads them. A name changed here changes on both sides at once.
"""

# The three services a person uses and the port each listens on (127.0.0.1 on the box, and on
# their own machine through the SSM tunnel).
SERVICE_PORTS = {"Langfuse": 3000, "LiteLLM": 4000, "VS Code": 8080}

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


def output_prefix(service: str) -> str:
    """How the stack's outputs name a service: LangfuseUrl, VSCodePortForwardCommand, ..."""
    return service.replace(" ", "")


def url_output(service: str) -> str:
    return f"{output_prefix(service)}Url"


def port_forward_output(service: str) -> str:
    return f"{output_prefix(service)}PortForwardCommand"


def port_forward_argv(instance_id: str, remote_port: int, local_port: int, region: str) -> list[str]:
    """The AWS CLI command that opens one tunnel (Session Manager's port-forwarding document)."""
    return [
        "aws", "ssm", "start-session", "--target", instance_id,
        "--document-name", "AWS-StartPortForwardingSession",
        "--parameters", f'{{"portNumber":["{remote_port}"],"localPortNumber":["{local_port}"]}}',
        "--region", region,
    ]


def port_forward_command(instance_id: str, port: int, region: str) -> str:
    """The same command as one line to paste into a shell (the stack's *PortForwardCommand outputs)."""
    argv = port_forward_argv(instance_id, port, port, region)
    return " ".join(f"'{arg}'" if arg.startswith("{") else arg for arg in argv)
