#!/bin/sh
# An example jobwire exec job: counts to $1, pausing $2 milliseconds per step.
# Lines starting with "::" update the job; every other line becomes a log line.
set -eu
steps=${1:-10}
pause_ms=${2:-200}
label=${COUNT_LABEL:-item}

echo "::stage counting"
i=1
while [ "$i" -le "$steps" ]; do
	sleep "$(awk "BEGIN { print $pause_ms / 1000 }")"
	echo "counted $label $i"
	echo "::count $i $steps"
	echo "::message $label $i of $steps"
	i=$((i + 1))
done
if [ "${FAIL:-}" = "yes" ]; then
	echo "asked to fail" >&2
	exit 3
fi
# The result: a "::result <json>" line, or JSON written to $JOBWIRE_RESULT_FILE.
printf '{"counted": %s, "label": "%s"}\n' "$steps" "$label" > "$JOBWIRE_RESULT_FILE"
