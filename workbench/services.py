"""The three services a person uses and the port each listens on (127.0.0.1 on the box, and
on their own machine through the SSM tunnel)."""

SERVICE_PORTS = {"Langfuse": 3000, "LiteLLM": 4000, "VS Code": 8080}


def output_prefix(service: str) -> str:
    """How the stack's outputs name a service: LangfuseUrl, VSCodePortForwardCommand, ..."""
    return service.replace(" ", "")
