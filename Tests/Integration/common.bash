# Shared by the integration scripts (sourced after they cd to the repository root; not a test
# itself: scripts/test runs *.sh only). A scratch directory, lvsd's control socket in it, the
# processes started, stopped by PID on exit, and `fail` that also shows the end of $work/err.
bin=$(swift build --show-bin-path)
work=$(mktemp -d)
export LVSD_SOCKET=$work/lvsd.sock
# lvsd without -f would read the host's /etc/keepalived/keepalived.conf: never in a test.
export LVSD_CONFIG=
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# `... | contains PATTERN`: grep that reads all its input. grep -q stops at the first match, and
# under pipefail the writer's SIGPIPE (ip, ss: they write line by line) then fails the pipeline.
contains() { grep "$@" >/dev/null; }
fail() { echo "FAIL: $*" >&2; [[ -f $work/err ]] && tail -25 "$work/err" >&2; exit 1; }
