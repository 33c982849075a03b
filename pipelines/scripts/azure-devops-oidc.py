#!/usr/bin/env python3
"""Google Cloud credentials for an Azure Pipelines job, by workload identity federation (no key).

Azure DevOps has no "Google Cloud" service connection, but it issues OpenID Connect ID tokens for
a service connection that uses workload identity federation (an *Azure Resource Manager*
connection, "Workload Identity federation (manual)"). Google's Security Token Service exchanges
such a token for a Google access token when a workload identity pool provider trusts its issuer.
This script is the glue, with two commands:

  azure-devops-oidc.py config OUT_FILE
      Write the Google *external account* credential configuration to OUT_FILE (the file
      GOOGLE_APPLICATION_CREDENTIALS points at) and fetch one token now, so that a wrong service
      connection id or a missing permission fails this step with a clear message instead of the
      first Google call. Reads from the environment: GCP_WORKLOAD_IDENTITY_PROVIDER
      (projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER),
      GCP_SERVICE_ACCOUNT (the deployer's e-mail), GCP_WIF_SERVICE_CONNECTION_ID (the service
      connection's id), SYSTEM_ACCESSTOKEN, and the agent's SYSTEM_COLLECTIONURI,
      SYSTEM_TEAMPROJECTID, SYSTEM_PLANID, SYSTEM_JOBID.

  azure-devops-oidc.py token --url URL
      What the Google client libraries run (an *executable-sourced* credential) each time they
      need a fresh Google token: ask Azure DevOps for a new ID token and print it in Google's
      executable response format. Because a new Azure DevOps token is requested at every
      refresh, a job that waits for Dataproc for hours keeps working after the first token
      expired (a token written once to a file would not).

Formats, as documented by their owners:
- Azure DevOps "Oidctoken - Create": POST
  {collectionUri}{project}/_apis/distributedtask/hubs/{hub}/plans/{planId}/jobs/{jobId}/oidctoken
  ?serviceConnectionId={id}&api-version=7.1-preview.1, authorized with the job's access token;
  the response is {"oidcToken": "..."}.
  https://learn.microsoft.com/rest/api/azure/devops/distributedtask/oidctoken/create
- Google external account configuration ("type": "external_account", audience
  //iam.googleapis.com/<provider>, subject_token_type urn:ietf:params:oauth:token-type:jwt,
  token_url https://sts.googleapis.com/v1/token, service_account_impersonation_url, and a
  credential_source), as `gcloud iam workload-identity-pools create-cred-config
  --executable-command=...` writes it:
  https://cloud.google.com/sdk/gcloud/reference/iam/workload-identity-pools/create-cred-config
- Executable-sourced credentials: the command prints {"version": 1, "success": true,
  "token_type": "urn:ietf:params:oauth:token-type:id_token", "id_token": ..., "expiration_time":
  ...} (or {"version": 1, "success": false, "code": ..., "message": ...}); the libraries run it
  only when GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1.
  https://googleapis.dev/nodejs/google-auth-library/latest/PluggableAuthClient.html

The job's access token is never written to a file or printed: it stays in the environment of the
step (mapped explicitly as SYSTEM_ACCESSTOKEN) and is sent only to the Azure DevOps endpoint.
Only the standard library is used, so it runs before anything is installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

API_VERSION = "7.1-preview.1"
STS_URL = "https://sts.googleapis.com/v1/token"
IMPERSONATION_URL = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{}:generateAccessToken"
PROVIDER = re.compile(r"projects/\d+/locations/global/workloadIdentityPools/[^/\s]+/providers/[^/\s]+")


class Problem(Exception):
    """A setup mistake, explained: printed as one line, the step fails with exit code 2."""


def _env(name: str, hint: str) -> str:
    value = os.environ.get(name, "").strip()
    # A variable the variable group does not define reaches a script as the literal "$(NAME)".
    if not value or value.startswith("$("):
        raise Problem(f"{name} is not set: {hint}")
    return value


def token_url() -> str:
    """The oidctoken endpoint of this job, for the service connection named by the variable group."""
    collection = _env("SYSTEM_COLLECTIONURI", "run this inside an Azure Pipelines job")
    project = _env("SYSTEM_TEAMPROJECTID", "run this inside an Azure Pipelines job")
    plan = _env("SYSTEM_PLANID", "run this inside an Azure Pipelines job")
    job = _env("SYSTEM_JOBID", "run this inside an Azure Pipelines job")
    connection = _env("GCP_WIF_SERVICE_CONNECTION_ID",
                      "add the id of the workload-identity service connection to the variable group "
                      "(docs/pipelines.md, 'Workload identity federation')")
    query = urllib.parse.urlencode({"serviceConnectionId": connection, "api-version": API_VERSION})
    return (f"{collection.rstrip('/')}/{project}/_apis/distributedtask/hubs/build/plans/{plan}"
            f"/jobs/{job}/oidctoken?{query}")


def fetch_token(url: str) -> str:
    """POST to the oidctoken endpoint with the job's access token; the ID token it returns."""
    access = _env("SYSTEM_ACCESSTOKEN", "map it into the step: env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)")
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={
        "Authorization": f"Bearer {access}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise Problem(f"Azure DevOps refused the ID token request (HTTP {exc.code}): {detail}. Check that "
                      "GCP_WIF_SERVICE_CONNECTION_ID is the id of a workload-identity service connection "
                      "and that this pipeline may use it (service connection > Security > Pipeline "
                      "permissions)") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise Problem(f"cannot reach Azure DevOps for an ID token: {exc}") from None
    try:
        token = json.loads(body)["oidcToken"]
    except (ValueError, KeyError, TypeError):
        raise Problem(f"unexpected answer from the oidctoken endpoint (no oidcToken): {body[:200]}") from None
    if not isinstance(token, str) or token.count(".") != 2:
        raise Problem("the oidctoken endpoint returned something that is not a JWT")
    return token


def expiry(token: str) -> int:
    """The token's `exp` claim (seconds since the epoch); an hour from now when it cannot be read."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["exp"])
    except (ValueError, KeyError, IndexError, TypeError):
        return int(time.time()) + 3600


def credential_config(provider: str, service_account: str, command: str) -> dict:
    """Google's external-account configuration with an executable credential source."""
    if not PROVIDER.fullmatch(provider):
        raise Problem(f"GCP_WORKLOAD_IDENTITY_PROVIDER {provider!r} is not "
                      "projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER")
    if "@" not in service_account:
        raise Problem(f"GCP_SERVICE_ACCOUNT {service_account!r} is not a service account e-mail")
    return {
        "type": "external_account",
        "audience": f"//iam.googleapis.com/{provider}",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": STS_URL,
        "service_account_impersonation_url": IMPERSONATION_URL.format(service_account),
        "credential_source": {"executable": {"command": command, "timeout_millis": 30000}},
    }


def cmd_config(out: Path) -> None:
    provider = _env("GCP_WORKLOAD_IDENTITY_PROVIDER", "add it to the variable group (docs/pipelines.md)")
    account = _env("GCP_SERVICE_ACCOUNT", "add it to the variable group (docs/pipelines.md)")
    url = token_url()
    # Split on whitespace by the client libraries: the interpreter and this script by absolute path.
    command = f"{sys.executable} {Path(__file__).resolve()} token --url {url}"
    if any(" " in part for part in (sys.executable, str(Path(__file__).resolve()), url)):
        raise Problem("a path or the token URL contains a space; the credential command cannot hold it")
    config = credential_config(provider, account, command)
    fetch_token(url)  # fail here, with the reason, rather than at the first Google call
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    out.chmod(0o600)
    print(f"Wrote the workload identity federation credentials for {account} to {out} "
          "(no key; a fresh Azure DevOps ID token is fetched at each refresh).", file=sys.stderr)


def cmd_token(url: str) -> int:
    try:
        token = fetch_token(url)
    except Problem as exc:
        # Exit 0 with Google's error response: the client libraries then raise with this message.
        print(json.dumps({"version": 1, "success": False, "code": "401", "message": str(exc)}))
        return 0
    print(json.dumps({"version": 1, "success": True, "token_type": "urn:ietf:params:oauth:token-type:id_token",
                      "id_token": token, "expiration_time": expiry(token)}))
    return 0


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "config":
            cmd_config(Path(argv[1]))
            return 0
        if len(argv) == 3 and argv[0] == "token" and argv[1] == "--url":
            return cmd_token(argv[2])
    except Problem as exc:
        print(f"##vso[task.logissue type=error]Workload identity federation: {exc}")
        return 2
    print("usage: azure-devops-oidc.py config OUT_FILE | token --url URL", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
