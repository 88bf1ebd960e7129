"""What the team gateway's stack promises `workbench team` and light workbenches: its output names."""

# `-c target=team-gateway`: the app synthesizes the team gateway instead of a workbench (app.py).
TARGET_CONTEXT = "target"
TEAM_GATEWAY_TARGET = "team-gateway"

ACCESS_INSTANCE_ID = "AccessInstanceId"
GATEWAY_HOST = "GatewayHost"
REGION = "Region"
SEED_SECRET_ARN = "SeedSecretArn"
DERIVED_SECRET_ARN = "DerivedSecretArn"
LANGFUSE_ADMIN_EMAIL = "LangfuseAdminEmail"
LITELLM_MODELS = "LiteLLMModels"
DATABASE_CLUSTER = "DatabaseCluster"
CLICKHOUSE_VOLUME_ID = "ClickHouseVolumeId"
CLICKHOUSE_BOOT_REPORT = "ClickHouseBootReport"
BLOB_BUCKET = "BlobBucket"
# Exports a light workbench (`gateway: team`) imports: it joins the team's VPC in its first public
# subnet and calls LiteLLM at the load balancer. Each export's name is the stack's name, a dash, the key.
EXPORT_VPC_ID = "VpcId"
EXPORT_SUBNET_ID = "WorkbenchSubnetId"
EXPORT_SUBNET_AZ = "WorkbenchSubnetAz"
EXPORT_GATEWAY_HOST = "GatewayHost"
# The VPC's range: where a light workbench's security group lets Cline reach the load balancer, and
# whose connections on LiteLLM's port its idle stop counts as use.
EXPORT_VPC_CIDR = "VpcCidr"


def export_name(team_name: str, key: str) -> str:
    return f"ai-workbench-team-{team_name}-{key}"


# The ports the load balancer listens on, which `workbench team connect` forwards to localhost.
SERVICE_PORTS = {"Langfuse": 3000, "LiteLLM": 4000}


def clickhouse_data_name(team_name: str) -> str:
    """ClickHouse's data volume's tag value (and so its snapshots'), apart from any workbench's name."""
    return f"team-{team_name}-clickhouse"


# A person's LiteLLM key on the gateway: its alias (unique in LiteLLM), and the Secrets Manager secret
# `workbench team add-user` keeps it in, {"key": ..., "base_url": ...}, which that person's light
# workbench (`gateway: team`) reads at boot.
USER_KEY_ALIAS_PREFIX = "cline-"


def user_key_alias(user: str) -> str:
    return f"{USER_KEY_ALIAS_PREFIX}{user}"


def user_secret_name(team_name: str, user: str) -> str:
    return f"ai-workbench-team-{team_name}/users/{user}"


# The user secret's JSON fields.
USER_SECRET_KEY = "key"
USER_SECRET_BASE_URL = "base_url"


def gateway_url(host: str) -> str:
    """Where a workbench in the team's VPC reaches LiteLLM: the internal load balancer, by its name."""
    return f"http://{host}:{SERVICE_PORTS['LiteLLM']}"
