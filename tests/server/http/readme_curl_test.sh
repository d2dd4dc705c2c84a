#!/usr/bin/env bash
# Runs every REST curl example of README.md as written against a real
# sepconv-server and checks each answer: the HTTP status its trailing comment
# names (200 when it names none) and a property of the body that shows it is
# the answer of that route. Fails too when a route the server serves has no
# curl line in the README, or a curl line names no served route.
#
# A curl example is a line of a ```sh block that calls curl on
# localhost:8000 (with its `\` continuation lines), run together with the
# variable assignments and `truncate` lines just above it. Only the port is
# rewritten (and the README's /dev/shm object name, to a name of this run's
# own). Load/unload run against a second server in explicit mode whose
# repository holds the README's model `m`; everything else against one
# server with the built-in model, metrics on and --allow_shared_memory.
# Usage: readme_curl_test.sh SERVER_BIN README
set -euo pipefail
server_bin=$1
readme=$2
python=/usr/bin/python3

# The routes server/http/http_server.cc serves (AddRoutes, AddExtensionRoutes,
# AddSharedMemoryRoutes), in its matching order, each optional part of a path
# (`/versions/{v}`, `/region/{r}`, the model of stats) as a form of its own.
# Keep in step with http_server.cc: a new route needs a line here and a curl
# line in the README. Fields: method, path regex, check (see check below).
routes=(
  "GET  ^/v2/health/live$                                 code"
  "GET  ^/v2/health/ready$                                code"
  "GET  ^/v2$                                             server_metadata"
  "GET  ^/v2/models/[^/]+/config$                         config"
  "GET  ^/v2/models/[^/]+/versions/[^/]+/config$          config"
  "GET  ^/v2/models/stats$                                stats"
  "GET  ^/v2/models/[^/]+/stats$                          stats"
  "GET  ^/v2/models/[^/]+/versions/[^/]+/stats$           stats"
  "POST ^/v2/repository/index$                            index"
  "POST ^/v2/repository/models/[^/]+/load$                load"
  "POST ^/v2/repository/models/[^/]+/unload$              unload"
  "GET  ^/v2/models/[^/]+/ready$                          code"
  "GET  ^/v2/models/[^/]+/versions/[^/]+/ready$           code"
  "GET  ^/v2/models/[^/]+$                                model_metadata"
  "GET  ^/v2/models/[^/]+/versions/[^/]+$                 model_metadata"
  "POST ^/v2/models/[^/]+/infer$                          infer"
  "POST ^/v2/models/[^/]+/versions/[^/]+/infer$           infer"
  "GET  ^/v2/systemsharedmemory/status$                   shm_status"
  "GET  ^/v2/systemsharedmemory/region/[^/]+/status$      shm_status"
  "POST ^/v2/systemsharedmemory/region/[^/]+/register$    shm_register"
  "POST ^/v2/systemsharedmemory/unregister$               shm_unregister"
  "POST ^/v2/systemsharedmemory/region/[^/]+/unregister$  shm_unregister"
)

tmp=$(mktemp -d)
object="sepconv_readme_curl_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp" "/dev/shm/$object"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME [FLAG...]: a server on free ports of 127.0.0.1, its REST
# port in $NAME_port, its log in $tmp/NAME.log; waits (at most 30 s) for REST.
start_server() {
  local name=$1 http
  shift
  http=$(free_port)
  "$server_bin" --address=127.0.0.1 --http_port="$http" --grpc_port="$(free_port)" "$@" \
    >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  printf -v "${name}_port" %s "$http"
  for _ in $(seq 150); do
    curl -s -o /dev/null --max-time 1 "127.0.0.1:$http/v2/health/live" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.2
  done
  cat "$tmp/$name.log" >&2
  fail "the $name server did not come up"
}

# The README's model `m`, for load/unload: the built-in model's kind of block
# from seeded weights (no ONNX file).
mkdir -p "$tmp/repository/m"
cat >"$tmp/repository/m/config.pbtxt" <<'EOF'
name: "m"
backend: "sepconv"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 32, -1, -1 ] } ]
output [ { name: "output" data_type: TYPE_FP32 dims: [ 16, -1, -1 ] } ]
sepconv { seed: 1 layers { in_channels: 32 out_channels: 16 } }
EOF
start_server main --metrics_port="$(free_port)" --allow_shared_memory
start_server explicit --metrics_port=0 --model_repository="$tmp/repository" \
  --model_control_mode=explicit

# The examples, one file each ($tmp/examples/N.sh), and a manifest line each:
# N, method, path, the status its comment names (200 if none) and the one
# named "otherwise" (load: what a server not in explicit mode answers), or -.
mkdir "$tmp/examples"
"$python" - "$readme" "$tmp/examples" "$object" >"$tmp/manifest" <<'EOF'
import re, sys
readme, out, obj = sys.argv[1:]
examples, setup, command, in_sh = [], [], None, False
for number, line in enumerate(open(readme, encoding="utf-8"), 1):
    line = line.rstrip("\n")
    if line.startswith("```"):
        in_sh = line == "```sh" and not in_sh
        setup = []
        continue
    if not in_sh:
        continue
    if command is not None:  # a continuation line
        command.append(line)
    elif re.search(r"(^|[|;{]\s*)curl\s", line):
        if "localhost:8000/" not in line:
            sys.exit(f"{readme}:{number}: a curl example not on localhost:8000: {line}")
        command = setup + [line]
        setup = []
    elif re.match(r"[A-Za-z_][A-Za-z0-9_]*=|truncate\s", line):
        setup.append(line)
        continue
    else:
        continue
    if not line.endswith("\\"):
        examples.append((number, "\n".join(command)))
        command = None
for i, (number, text) in enumerate(examples):
    text = text.replace("my_tensors", obj)
    open(f"{out}/{i}.sh", "w").write(text + "\n")
    url = re.search(r"localhost:8000(/[^\s'\"\\]*)", text).group(1)
    method = "POST" if re.search(r"\s(-d|--data[a-z-]*)\s", text) else "GET"
    comment = re.search(r"\s#\s+(.*)$", text.splitlines()[-1])
    comment = comment.group(1) if comment else ""
    status = re.match(r"(\d{3})\b", comment)
    otherwise = re.search(r"(\d{3}) otherwise", comment)
    print(i, method, url, status.group(1) if status else 200,
          otherwise.group(1) if otherwise else "-", number)
EOF
[ -s "$tmp/manifest" ] || fail "no curl examples found in $readme"

# The checks of an answer, by the route's check name: check NAME URL_PATH
# STATUS STDOUT EXAMPLE BASE_URL. Besides the body, some ask the server
# afterwards whether the call did what it says (a load: the model is ready).
cat >"$tmp/check.py" <<'EOF'
import json, math, re, sys, urllib.error, urllib.request
name, path, status, stdout, example, base = sys.argv[1:]
status, out, text = int(status), open(stdout, "rb").read(), open(example).read()
parts = path.strip("/").split("/")
model = parts[2] if len(parts) > 2 and parts[1] == "models" and parts[2] != "stats" else None
version = parts[4] if len(parts) > 4 and parts[3] == "versions" else None
region = parts[3] if len(parts) > 3 and parts[2] == "region" else None

def require(ok, what):
    if not ok:
        sys.exit(f"{what}; the answer: {out[:300]!r}")

def body():
    try:
        return json.loads(out)
    except ValueError:
        require(False, "the answer is not JSON")

def get(route):
    try:
        with urllib.request.urlopen(base + route, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

if status != 200:  # an error answer, as the README's comment expects it
    require("error" in body(), "a non-200 answer without an error message")
elif name == "code":  # -o /dev/null -w '%{http_code}\n', or nothing
    require(out.strip() in (b"", str(status).encode()), "not the HTTP status alone")
elif name == "server_metadata":
    b = body()
    require(b.get("name") and "binary_tensor_data" in b.get("extensions", []),
            "no name or extensions")
elif name == "model_metadata":
    b = body()
    require(b.get("name") == model and b["inputs"][0]["name"] == "input"
            and b["outputs"][0]["name"] == "output", "not the model's metadata")
    require(version is None or version in b.get("versions", []), "the version is not listed")
elif name == "config":
    b = body()
    require(b.get("name") == model and "max_batch_size" in b, "not the model's config")
elif name == "stats":
    stats = body().get("model_stats")
    require(isinstance(stats, list) and stats, "no model_stats")
    require(all(s["name"] == (model or s["name"]) and s["version"] == (version or s["version"])
                for s in stats), "statistics of another model or version")
    require(any(s["name"] == "sepconv" and s["inference_count"] > 0 for s in stats),
            "sepconv counts none of the README's requests")
elif name == "index":
    b = body()
    require(isinstance(b, list) and any(m["name"] == "sepconv" for m in b)
            and all(m["state"] == "READY" for m in b), "not the index of ready models")
elif name in ("load", "unload"):
    require(out == b"", "a load/unload answer with a body")
    code, _ = get(f"/v2/models/{parts[3]}/ready")
    require((code == 200) == (name == "load"), f"after {name}, {parts[3]} ready answers {code}")
elif name == "infer":
    if out.startswith(b"HTTP/"):  # -D -: the headers; the answer went to -o FILE
        length = re.search(rb"(?im)^Inference-Header-Content-Length:\s*(\d+)", out)
        require(length, "binary answer without Inference-Header-Content-Length")
        answer = open(re.search(r"\s-o\s+(\S+)", text).group(1), "rb").read()
        out, binary = answer[:int(length.group(1))], answer[int(length.group(1)):]
    else:
        binary = None
    shape = json.loads("[" + re.search(r'shape\\?"\s*:\s*\[([\d,]+)\]', text).group(1) + "]")
    b = body()
    require(b.get("model_name") == model and b.get("model_version") == (version or "1"),
            "not the model's answer")
    output = b["outputs"][0]
    require(output["name"] == "output" and output["shape"] == [shape[0], 64] + shape[2:],
            f"outputs[0] is not output of shape [{shape[0]},64,{shape[2]},{shape[3]}]")
    size = math.prod(output["shape"])
    if binary is not None:
        require(output["parameters"]["binary_data_size"] == size * 4 == len(binary),
                "the binary output is not the size of the tensor")
        require(binary.strip(b"\0"), "the binary output is all zeros")
    elif "shared_memory_region" in text:
        require("data" not in output, "the output is in the answer, not in the region")
    else:
        require(len(output["data"]) == size and any(output["data"]), "wrong or zero output data")
elif name == "shm_status":
    b = body()
    require(isinstance(b, list) and all({"name", "key", "offset", "byte_size"} <= set(r) for r in b),
            "not a list of regions")
    require(region is None or [r["name"] for r in b] == [region], f"not region {region} alone")
elif name == "shm_register":
    require(out == b"", "a register answer with a body")
    code, answer = get(f"/v2/systemsharedmemory/region/{region}/status")
    require(code == 200 and json.loads(answer)[0]["name"] == region, f"{region} not registered")
elif name == "shm_unregister":
    require(out == b"", "an unregister answer with a body")
    code, answer = get(f"/v2/systemsharedmemory{'/region/' + region if region else ''}/status")
    require(code == 404 if region else answer == b"[]", f"regions left: {code} {answer!r}")
else:
    sys.exit(f"no check named {name}")
EOF

# run_example N PORT: runs example N as written against 127.0.0.1:PORT in
# $tmp/run (where -o files go), with curl made verbose to a trace so that the
# HTTP status is seen without changing what the example prints. Prints it.
run_example() {
  local script
  script=$(<"$tmp/examples/$1.sh")
  script=${script//localhost:8000/127.0.0.1:$2}
  : >"$tmp/trace"
  local rc=0
  (cd "$tmp/run" && trace="$tmp/trace" bash -euo pipefail -c \
    "curl() { command curl -v \"\$@\" 2>>\"\$trace\"; }; $script" >"$tmp/stdout") || rc=$?
  [ "$rc" = 0 ] || { cat "$tmp/trace" >&2; fail "$readme:$line: the example exited $rc: $script"; }
  sed -n 's/^< HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$tmp/trace" | tail -1
}

mkdir "$tmp/run"
declare -A covered
while read -r n method path status otherwise line; do
  check=""
  for route in "${routes[@]}"; do
    read -r m regex c <<<"$route"
    if [ "$m" = "$method" ] && [[ $path =~ $regex ]]; then
      check=$c
      covered[$route]=1
      break
    fi
  done
  [ -n "$check" ] || fail "$readme:$line: $method $path is no route the server serves"
  runs=("main $status")
  if [ "$check" = load ] || [ "$check" = unload ]; then
    # In explicit mode as the README says; and, where its comment says what a
    # server in another mode answers, that first.
    runs=("explicit $status")
    [ "$otherwise" = - ] || runs=("main $otherwise" "${runs[@]}")
  fi
  for run in "${runs[@]}"; do
    read -r server want <<<"$run"
    port_var="${server}_port"
    got=$(run_example "$n" "${!port_var}")
    [ "$got" = "$want" ] || fail "$readme:$line: $method $path answered ${got:-nothing}, not $want:
$(cat "$tmp/stdout")"
    (cd "$tmp/run" && "$python" "$tmp/check.py" "$check" "$path" "$got" "$tmp/stdout" \
      "$tmp/examples/$n.sh" "http://127.0.0.1:${!port_var}") || fail "$readme:$line: $method $path ($server server)"
    echo "ok: $readme:$line $method $path -> $got ($server server)"
  done
done <"$tmp/manifest"

missing=0
for route in "${routes[@]}"; do
  [ -n "${covered[$route]:-}" ] && continue
  echo "FAIL: no curl example in $readme for the served route: $route" >&2
  missing=1
done
[ "$missing" = 0 ] || exit 1
echo "every REST route has a README curl example that answers as it says: ok"
