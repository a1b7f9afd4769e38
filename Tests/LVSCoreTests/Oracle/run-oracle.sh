#!/usr/bin/env bash
# Regenerates the golden files from the real kernel: prelude + each scenario, run in ipvs-oracle.
#   Tests/LVSCoreTests/Oracle/run-oracle.sh [scenario ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oracle=${IPVS_ORACLE:-$here/../../../../shared/tools/ipvs-oracle/run}
cd "$here"
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=($(cd scenarios && ls *.sh | sed 's/\.sh$//'))
for name in "${names[@]}"; do
  script=$(mktemp)
  cat prelude.sh "scenarios/$name.sh" > "$script"
  echo "== $name"
  "$oracle" "$script" > "golden/$name.txt"
  rm -f "$script"
  grep -c '^conn:' "golden/$name.txt" | sed 's/^/   connections: /'
done
