"""User data: this deployment's coordinates plus the boot script from userdata/boot.sh.

Only names, ARNs and S3 locations go in here — never a secret value; the boot script fetches
those itself with the instance role.
"""

import base64
import gzip
from pathlib import Path

from aws_cdk import aws_ec2 as ec2

BOOT_SCRIPT = Path(__file__).resolve().parent.parent / "userdata" / "boot.sh"
DEPLOYMENT_ENV = "/etc/workbench/deployment.env"
INSTALLED_BOOT_SCRIPT = "/usr/local/sbin/workbench-boot"
# EC2 refuses user data over 16 KiB.
USER_DATA_LIMIT_BYTES = 16 * 1024


# cloud-init runs user-data scripts once per instance by default; this makes it run the boot on
# every start, so a redeploy that changes the settings (and with them this user data, which
# EC2 applies with a stop and start) reaches the box. The boot is safe to repeat.
EVERY_BOOT = """#cloud-config
cloud_final_modules:
- [scripts-user, always]
"""


def boot_user_data(deployment: dict[str, str]) -> ec2.UserData:
    """Writes the deployment settings and the boot script to disk, then runs it.

    Keeping both on disk lets an operator re-run the boot (`sudo workbench-boot`) with the
    same inputs; the script is safe to run again.
    """
    user_data = ec2.UserData.for_linux()
    # Single-quoted: values are names, ARNs and URLs (the wait handle's has '&'), never quotes.
    settings_lines = [f"{key}='{value}'" for key, value in deployment.items()]
    user_data.add_commands(
        "set -euo pipefail",
        "install -d -m 0755 /etc/workbench",
        f"cat > {DEPLOYMENT_ENV} <<'DEPLOYMENT_ENV'",
        *settings_lines,
        "DEPLOYMENT_ENV",
        # Compressed: EC2 caps user data at 16 KiB and the script alone is close to that.
        f"base64 -d <<'BOOT_SCRIPT' | gunzip > {INSTALLED_BOOT_SCRIPT}",
        compressed_boot_script(),
        "BOOT_SCRIPT",
        f"chmod 0755 {INSTALLED_BOOT_SCRIPT}",
        f"exec {INSTALLED_BOOT_SCRIPT}",
    )
    multipart = ec2.MultipartUserData()
    multipart.add_part(ec2.MultipartBody.from_raw_body(content_type='text/cloud-config; charset="utf-8"',
                                                       body=EVERY_BOOT))
    # As plain text: a base64 part would cost a third more of EC2's 16 KiB.
    multipart.add_part(ec2.MultipartBody.from_raw_body(content_type=ec2.MultipartBody.SHELL_SCRIPT,
                                                       body=user_data.render()))
    return multipart


def compressed_boot_script() -> str:
    """userdata/boot.sh, gzipped (with a fixed timestamp, so synth is repeatable) and base64-encoded."""
    packed = gzip.compress(BOOT_SCRIPT.read_bytes(), mtime=0)
    encoded = base64.b64encode(packed).decode()
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
