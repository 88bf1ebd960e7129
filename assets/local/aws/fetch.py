"""botocore's credential_process inside the laptop's LiteLLM container (AWS_CONFIG_FILE=aws/config).

Asks `workbench local up`'s credentials process on the laptop (workbench/local_credentials.py) for
the user's profile's short-lived credentials, with the token it wrote beside this file, and prints
them in credential_process's format. With an Expiration, botocore holds them as
RefreshableCredentials and runs this again before they expire. Through credential_process, not
the container provider: botocore refuses AWS_CONTAINER_CREDENTIALS_FULL_URI over http unless the
host is a loopback or link-local address, and host.docker.internal is neither.
Standard library only: the container's python3. Usage: fetch.py URL
"""

import json
import os
import sys
import urllib.request

TOKEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "token")

with open(TOKEN) as token_file:
    request = urllib.request.Request(sys.argv[1], headers={"Authorization": token_file.read().strip()})
with urllib.request.urlopen(request, timeout=5) as answer:
    session = json.load(answer)
print(json.dumps({"Version": 1, "AccessKeyId": session["AccessKeyId"], "SecretAccessKey": session["SecretAccessKey"],
                  "SessionToken": session["Token"], "Expiration": session["Expiration"]}))
