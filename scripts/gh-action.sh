#!/usr/bin/env bash
# The steps of the GitHub Action in action.yml; tests/test_action.py runs them as a workflow would.
#   gh-action.sh install   qatdoctor into its own venv ($RUNNER_TEMP/qatdoctor), from the action's checkout
#   gh-action.sh check     `qatdoctor check` with the action's inputs; the report goes to the job summary and the
#                          job fails with qatdoctor's exit code
# Inputs arrive as INPUT_PYTHON, INPUT_MODEL, INPUT_STRICT, INPUT_EXPECT_CUDA, INPUT_TARGET_DRIVER,
# INPUT_INPUT_SHAPE, INPUT_ARGS (extra arguments, split on spaces).
set -euo pipefail
step=${1:?usage: gh-action.sh install|check}
source_dir=${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}
work=${RUNNER_TEMP:-${TMPDIR:-/tmp}}/qatdoctor
qatdoctor=$work/venv/bin/qatdoctor

case "$step" in
install)
  python3 -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$source_dir"
  "$qatdoctor" --version
  ;;
check)
  args=(check --format json)
  [ -n "${INPUT_PYTHON:-}" ] && args+=(--python "$INPUT_PYTHON")
  [ -n "${INPUT_MODEL:-}" ] && args+=(--model "$INPUT_MODEL")
  [ -n "${INPUT_INPUT_SHAPE:-}" ] && args+=(--input-shape "$INPUT_INPUT_SHAPE")
  [ "${INPUT_STRICT:-false}" = true ] && args+=(--strict)
  [ -n "${INPUT_EXPECT_CUDA:-}" ] && args+=(--expect-cuda "$INPUT_EXPECT_CUDA")
  [ -n "${INPUT_TARGET_DRIVER:-}" ] && args+=(--target-driver "$INPUT_TARGET_DRIVER")
  # shellcheck disable=SC2206  # extra arguments are split on spaces, as documented
  [ -n "${INPUT_ARGS:-}" ] && args+=(${INPUT_ARGS})
  report=$work/report.json
  rc=0
  "$qatdoctor" "${args[@]}" > "$report" || rc=$?
  if [ -s "$report" ]; then
    # The doctor view in the log and the markdown report in the summary, both rendered from the saved report
    # (re-evaluated against the same matrix: the probe does not run twice).
    "$qatdoctor" report --from-report "$report" --format text >&2 || true
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
      "$qatdoctor" report --from-report "$report" --format markdown >> "$GITHUB_STEP_SUMMARY" || true
    fi
    verdict=$("$work/venv/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["verdict"])' "$report")
  else
    verdict=error
  fi
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    { echo "verdict=$verdict"; echo "exit-code=$rc"; echo "report=$report"; } >> "$GITHUB_OUTPUT"
  fi
  echo "qatdoctor: verdict $verdict, exit code $rc" >&2
  exit "$rc"
  ;;
*)
  echo "gh-action.sh: unknown step $step (install|check)" >&2
  exit 2
  ;;
esac
