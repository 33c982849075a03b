#!/usr/bin/env bash
# Run one funnelops command from a CI step and turn its exit code into a clear message.
#
#   bash pipelines/scripts/run-funnelops.sh OUTPUT_FILE funnelops [GLOBAL OPTIONS] COMMAND ...
#
# - stdout of the command (its --json document) is shown in the log and saved to OUTPUT_FILE,
#   which the pipeline then publishes as an artifact; stderr (progress, human messages) streams
#   to the log as it comes.
# - the exit code is kept, and the codes that mean "refused" get a message that says why:
#     3  a run of that workflow is in progress (nothing was started)
#     4  an earlier lifecycle stage must run first
#     2  bad usage or invalid project definition
#     1  with {"error": "stale_plan"}: `apply plan.json` found that the project or the platform
#        moved since the plan was reviewed; nothing was applied
# - the message is written as an Azure Pipelines logging command (##vso[task.logissue]) under
#   Azure (TF_BUILD=True), as a workflow command (::error) under GitHub Actions
#   (GITHUB_ACTIONS=true), and as plain text elsewhere.
# - with FUNNELOPS_TEXT_FILE set, the command's stderr (the human-readable text: with --json, a
#   plan's text goes there) is also saved to that file, e.g. plan.txt beside plan.json; its folder
#   is created, so `plan -out` can write the saved plan beside it.
# Credentials are never read or printed here: the command finds them through
# GOOGLE_APPLICATION_CREDENTIALS, set by the step that runs this script.
set -uo pipefail
set +x

if [ "$#" -lt 2 ]; then
  echo "usage: $0 OUTPUT_FILE funnelops [ARGS...]" >&2
  exit 2
fi

output_file=$1
shift
mkdir -p "$(dirname "$output_file")"
text_file=${FUNNELOPS_TEXT_FILE:-}
[ -n "$text_file" ] && mkdir -p "$(dirname "$text_file")"

report_error() {
  local title=$1 message=$2
  if [ "${TF_BUILD:-}" = "True" ]; then
    echo "##vso[task.logissue type=error]${title}: ${message}"
  elif [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::error title=${title}::${message}"
  else
    echo "ERROR: ${title}: ${message}" >&2
  fi
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    printf '### %s\n\n%s\n' "$title" "$message" >>"$GITHUB_STEP_SUMMARY"
  fi
}

# The "error" kind of the --json document ("stale_plan", ...); empty when there is none.
error_kind() {
  python3 - "$output_file" <<'PY' 2>/dev/null || true
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        doc = json.load(fh)
except Exception:
    sys.exit(0)
kind = doc.get("error") if isinstance(doc, dict) else None
print(kind if isinstance(kind, str) else "")
PY
}

# The refusal's own explanation (which run, since when, started by whom), when the --json
# document carries one; empty otherwise. Never fails the step by itself.
detail_from_output() {
  python3 - "$output_file" <<'PY' 2>/dev/null || true
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        doc = json.load(fh)
except Exception:
    sys.exit(0)
def find(d):
    if isinstance(d, dict):
        for key in ("message", "detail", "reason", "hint"):
            if isinstance(d.get(key), str) and d[key].strip():
                return d[key].strip()
        for key in ("error", "refusal", "result"):
            found = find(d.get(key))
            if found:
                return found
    return ""
print(" ".join(find(doc).split())[:500])
PY
}

echo "Running: $*" >&2
if [ -n "$text_file" ]; then
  "$@" 2> >(tee "$text_file" >&2) | tee "$output_file"
  rc=${PIPESTATUS[0]}
  wait  # the stderr copy is complete before anyone reads it
else
  "$@" | tee "$output_file"
  rc=${PIPESTATUS[0]}
fi

detail=""
kind=""
if [ "$rc" -ne 0 ]; then
  detail=$(detail_from_output)
  [ -n "$detail" ] && detail=" (${detail})"
  kind=$(error_kind)
fi

case "$rc" in
  0)
    echo "funnelops finished successfully; output saved to $output_file" >&2
    ;;
  3)
    report_error "Refused" "a run of that workflow is in progress, so nothing was started${detail}. Wait for it to finish (funnelops status) and run this pipeline again."
    ;;
  4)
    report_error "Refused" "an earlier lifecycle stage must run first${detail}. Run Datos_GCP_Funnel with dataStage=IaC, then with dataStage=Initial data, before this step."
    ;;
  2)
    report_error "Invalid usage or project" "funnelops rejected the arguments or the project definition (exit code 2)${detail}. See the messages above."
    ;;
  1)
    if [ "$kind" = "stale_plan" ]; then
      report_error "Refused: the reviewed plan is stale" "the project or the platform changed since the plan was reviewed, so nothing was applied${detail}. Run the pipeline again: it plans anew, and the new plan is reviewed and approved before it is applied."
    else
      report_error "funnelops failed" "exit code ${rc}${detail}. See the messages above and the published output."
    fi
    ;;
  *)
    report_error "funnelops failed" "exit code ${rc}${detail}. See the messages above and the published output."
    ;;
esac
exit "$rc"
