"""Code shared by the CDK app and the operator tools: settings, naming, secrets, the bundle."""
