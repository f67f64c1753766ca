#!/usr/bin/env bash
# README.md's "Getting started", followed word for word in a fresh clone, as a new user
# would: the commands of its first `sh` block run as they are written, one after the
# other in one bash shell, in a clone of this repository's HEAD with a cargo that has
# no CARGO_TARGET_DIR (so `target/release` is where the README says). What each command
# prints is then checked against what the README says it prints: the check line, the
# split before and after the weights change, the prerelease route, /config through jq,
# the metrics, and weir draining on `kill`.
#
#   bash tests/e2e/quickstart.sh
#
# Needs: git, cargo, curl, jq, python3, and the ports the README uses free (15000, 15001,
# 8081-8084, 8091). The build is a full release build (several minutes on 2 cores).
# Everything the block starts runs in its own process group, stopped by its id on exit.
# Prints `quickstart: N passed, N failed` last.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d "${TMPDIR:-/tmp}/weir-quickstart.XXXXXX")
pgid=""
cleanup() {
  if [ -n "$pgid" ]; then kill -- "-$pgid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in git cargo curl jq python3 setsid; do
  command -v "$tool" >/dev/null || { echo "quickstart: $tool is missing" >&2; exit 1; }
done
for port in 15000 15001 8081 8091 8082 8083 8084; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "quickstart: port $port is in use; the README's commands need it free" >&2
    exit 1
  fi
done

echo "quickstart: cloning $(git -C "$ROOT" rev-parse --short HEAD) into $work/weir"
git clone --quiet --no-hardlinks "$ROOT" "$work/weir"
git -C "$work/weir" checkout --quiet "$(git -C "$ROOT" rev-parse HEAD)"

# The block: the first ```sh fence after "## Getting started".
python3 - "$work/weir/README.md" > "$work/block.sh" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
start = lines.index("## Getting started")
fence = next(i for i in range(start, len(lines)) if lines[i] == "```sh")
end = next(i for i in range(fence + 1, len(lines)) if lines[i] == "```")
print("\n".join(lines[fence + 1:end]))
PY
# The script that runs it: before each command, a marker with the command on stdout
# (so what it printed can be told apart); the commands themselves as they are.
{
  echo 'set -e'
  while IFS= read -r line; do
    [ -z "${line// /}" ] && continue
    printf 'printf "\\n@@@ %%s\\n" %q\n' "$line"
    printf '%s\n' "$line"
  done < "$work/block.sh"
  echo 'wait'
  echo 'echo; echo "@@@ (end)"'
} > "$work/run.sh"
echo "quickstart: the block has $(grep -c . "$work/block.sh") commands; running them (the build takes a while)"

cd "$work/weir"
set +e
env -u CARGO_TARGET_DIR setsid bash "$work/run.sh" >"$work/stdout" 2>"$work/stderr" </dev/null &
pid=$!
pgid=$pid
# The whole block: the release build and about 20 s of commands.
for _ in $(seq 1800); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "quickstart: the block did not finish within 30 minutes" >&2
  status=124
else
  wait "$pid"; status=$?
fi
set -e
pgid=""

python3 - "$work/stdout" "$work/stderr" "$status" <<'PY'
import json, re, sys
out, err, status = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
sections = {}
order = []
for chunk in out.split("\n@@@ ")[1:]:
    command, _, text = chunk.partition("\n")
    sections[command] = text
    order.append(command)
passed = failed = 0
def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
def section(prefix):
    hits = [c for c in order if c.startswith(prefix)]
    return [sections[c] for c in hits]

check(status == 0 and order[-1:] == ["(end)"], f"every command ran and the block ended (exit {status})",
      f"last command: {order[-2] if len(order) > 1 else order}; stderr tail:\n" + "\n".join(err.splitlines()[-15:]))
s = section("weir check --config config/weir.yaml")
check(bool(s) and s[0].strip() == "config/weir.yaml: ok (4 destinations, 3 routes)", "weir check prints what the README says", s)
s = section("curl -s --retry 10")
check(bool(s) and s[0].strip() == "ready", "weir is ready", s)
loops = section("for i in 1 2 3 4 5 6 7 8; do curl -s localhost:15001/")
names = [l.split() for l in loops]
check(len(names) == 2 and len(names[0]) == 8 and set(names[0]) <= {"release", "baseline", "canary"} and "release" in names[0],
      f"before the change: 8 answers from the 80/10/10 split ({names[0] if names else None})")
check(len(names) == 2 and len(names[1]) == 8 and set(names[1]) <= {"baseline", "canary"},
      f"after the change: baseline and canary only ({names[1] if len(names) > 1 else None})")
s = section("curl -s -H 'x-weir-stage: prerelease'")
check(bool(s) and s[0].strip() == "prerelease", "the x-weir-stage header reaches prerelease", s)
s = section("curl -s -X PUT")
try:
    put = json.loads(s[0])
except Exception:
    put = None
check(put is not None and put.get("split") == {"release": 0, "baseline": 50, "canary": 50}, "the weights API answers the new split", s)
s = section("curl -s localhost:15000/config | jq")
text = s[0] if s else ""
m = re.match(r"\s*(\d+)\s*\n(.*)", text, re.S)
objs = []
if m:
    dec = json.JSONDecoder()
    rest = m.group(2).strip()
    while rest:
        obj, n = dec.raw_decode(rest)
        objs.append(obj)
        rest = rest[n:].strip()
primary = [o for o in objs if o.get("name") == "primary"]
check(m is not None and int(m.group(1)) == 2 and len(objs) == 3, "jq prints the version (2) and the three routes", text)
check(primary and primary[0]["split_source"] == "api" and primary[0]["split"] == {"release": 0, "baseline": 50, "canary": 50},
      "route primary: the API's split", primary)
s = section("curl -s localhost:15000/metrics | grep")
lines = s[0].split() if s else []
check(s and s[0].strip().splitlines() == [
    'weir_route_weight{route="primary",destination="release"} 0',
    'weir_route_weight{route="primary",destination="baseline"} 50',
    'weir_route_weight{route="primary",destination="canary"} 50'], "the metrics show the weights in effect", s)
check(any(c.startswith("kill $(jobs -p)") for c in order) and "drained; exiting" in err,
      "kill stops them all, weir after draining",
      "\n".join(err.splitlines()[-5:]))
print(f"quickstart: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
