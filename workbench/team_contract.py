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
# The ports the load balancer listens on, which `workbench team connect` forwards to localhost.
SERVICE_PORTS = {"Langfuse": 3000, "LiteLLM": 4000}


def clickhouse_data_name(team_name: str) -> str:
    """ClickHouse's data volume's tag value (and so its snapshots'), apart from any workbench's name."""
    return f"team-{team_name}-clickhouse"
