#!/usr/bin/env bash
# lvsd -t and Debian's keepalived -t (2.2.7) agree on which configurations are valid: every file in
# Tests/KeepalivedConfigTests/Corpus (and in KEEPALIVED_SAMPLES, a directory of more, if given).
# Needs the keepalived package (.ci/run installs it); prints each file's two exit codes.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v keepalived >/dev/null; then
    echo "keepalived-agreement: SKIPPED (keepalived is not installed: apt-get install keepalived)"
    exit 0
fi
bin=$(swift build --show-bin-path)
files=(Tests/KeepalivedConfigTests/Corpus/*.conf)
[[ -n ${KEEPALIVED_SAMPLES:-} ]] && files+=("$KEEPALIVED_SAMPLES"/*)
agree=0
disagree=0
for f in "${files[@]}"; do
    set +e
    keepalived -t -f "$f" >/dev/null 2>&1; k=$?
    "$bin/lvsd" -t -f "$f" >/dev/null 2>&1; l=$?
    set -e
    # Both say valid (0) or both say invalid (non-zero).
    if { [[ $k == 0 ]] && [[ $l == 0 ]]; } || { [[ $k != 0 ]] && [[ $l != 0 ]]; }; then
        agree=$((agree + 1)); verdict=""
    else
        disagree=$((disagree + 1)); verdict="  DISAGREE"
    fi
    printf '%-60s keepalived %d  lvsd %d%s\n' "$f" "$k" "$l" "$verdict"
done
echo "keepalived-agreement: $agree agree, $disagree disagree"
[[ $disagree == 0 ]]
