#!/usr/bin/python3
"""A stand-in for Marathon's REST API, for jumbo's contract tests: no Marathon
or Mesos can run on this machine.  It answers as Marathon's published API
documents say (mesosphere/marathon, docs/docs/rest-api/public/api/: RAML
types, examples, status codes), checks every app it is given against those
types, and plays a task's life: TASK_STAGING, TASK_RUNNING on an agent, then
an end that the app's last argument asks for:

    exit N      after 1.5 s, TASK_FINISHED (0) or TASK_FAILED "Command exited with status N"
    sleep N     runs N seconds, then TASK_FINISHED
    oom         TASK_FAILED "Memory limit exceeded: ..."
    forever     runs until deleted

It records each request (method, path, headers, body) as a JSON line in
--log.  POST /fake/forget/APP drops an app, as a Marathon that lost its
state would.

    fake_marathon.py --port N --log FILE [--user U --password P]
"""
import argparse
import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH_ID = re.compile(r"^(\/?((\.\.)|(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))?($|\/))+$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
APP_KEYS = {
    "id", "cmd", "args", "cpus", "mem", "disk", "gpus", "instances", "container", "networks", "portDefinitions",
    "requirePorts", "env", "labels", "healthChecks", "check", "readinessChecks", "upgradeStrategy", "fetch",
    "constraints", "user", "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "killSelection",
    "unreachableStrategy", "taskKillGracePeriodSeconds", "acceptedResourceRoles", "dependencies", "executor",
    "executorResources", "resourceLimits", "secrets", "tty", "role",
}

lock = threading.Lock()
apps = {}  # id -> {"app": dict, "tasks": [...], "failure": dict|None, "version": str}
args = None
port_seq = [31000]


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def validate(app):
    """[(path, error)] as Marathon's validation reports them."""
    errs = []

    def num(path, v, lo, integer=False, hi=None):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            errs.append((path, "error.expected.jsnumber"))
        elif v < lo or (hi is not None and v > hi):
            errs.append((path, "error.min" if v < lo else "error.max"))

    if not isinstance(app.get("id"), str) or not app["id"] or not PATH_ID.match(app["id"]):
        errs.append(("/id", "error.pattern"))
    for k in app:
        if k not in APP_KEYS:
            errs.append(("/" + k, "error.unknown.field"))
    if "cmd" in app and "args" in app:
        errs.append(("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."))
    if "args" in app and (not isinstance(app["args"], list) or not all(isinstance(a, str) for a in app["args"])):
        errs.append(("/args", "error.expected.jsarray"))
    for k, lo, integer in (("cpus", 0.001, False), ("mem", 0, False), ("disk", 0, False), ("gpus", 0, True),
                           ("instances", 0, True), ("backoffSeconds", 0, True), ("backoffFactor", 1.0, False),
                           ("maxLaunchDelaySeconds", 0, True)):
        if k in app:
            num("/" + k, app[k], lo, integer)
    for k in ("env", "labels"):
        if k in app and (not isinstance(app[k], dict) or not all(isinstance(v, str) for v in app[k].values())):
            errs.append(("/" + k, "error.expected.jsobject"))
    us = app.get("upgradeStrategy")
    if us is not None:
        for k in ("minimumHealthCapacity", "maximumOverCapacity"):
            if k in us:
                num("/upgradeStrategy/" + k, us[k], 0, hi=1)
    c = app.get("container")
    if c is not None:
        if c.get("type", "DOCKER") not in ("MESOS", "DOCKER"):
            errs.append(("/container/type", "error.expected.validenumvalue"))
        d = c.get("docker")
        if d is not None and (not isinstance(d.get("image"), str) or not d["image"]):
            errs.append(("/container/docker/image", "error.minLength"))
        if d is not None and "network" in d:
            errs.append(("/container/docker/network", "deprecated: use networks"))
        for i, v in enumerate(c.get("volumes", [])):
            if not v.get("containerPath") or not v.get("hostPath"):
                errs.append(("/container/volumes(%d)" % i, "error.path.missing"))
            if v.get("mode") not in ("RO", "RW"):
                errs.append(("/container/volumes(%d)/mode" % i, "error.expected.validenumvalue"))
        for i, pm in enumerate(c.get("portMappings", [])):
            num("/container/portMappings(%d)/containerPort" % i, pm.get("containerPort", 0), 0, True, 65535)
            if "hostPort" in pm:
                num("/container/portMappings(%d)/hostPort" % i, pm["hostPort"], 0, True, 65535)
            if pm.get("protocol", "tcp") not in ("tcp", "udp", "udp,tcp"):
                errs.append(("/container/portMappings(%d)/protocol" % i, "error.expected.validenumvalue"))
            if "name" in pm and not PORT_NAME.match(pm["name"]):
                errs.append(("/container/portMappings(%d)/name" % i, "error.pattern"))
        if c.get("type") == "MESOS" and d is not None and ("privileged" in d or "parameters" in d):
            errs.append(("/container/docker", "privileged and parameters are for the Docker containerizer"))
    modes = [n.get("mode", "container") for n in app.get("networks", [])]
    for i, m in enumerate(modes):
        if m not in ("container", "container/bridge", "host"):
            errs.append(("/networks(%d)/mode" % i, "error.expected.validenumvalue"))
    if len(set(modes)) > 1:
        errs.append(("/networks", "networking modes cannot be mixed"))
    if "container/bridge" in modes and (c or {}).get("portMappings") is None:
        pass  # Marathon defaults one; jumbo gives its own
    return errs


def task_of(app_id, rec):
    a = rec["app"]
    bridge = any(n.get("mode") == "container/bridge" for n in a.get("networks", []))
    pms = (a.get("container") or {}).get("portMappings", [])
    ports = []
    if bridge:
        for _ in pms:
            port_seq[0] += 1
            ports.append(port_seq[0])
    tid = app_id.strip("/").replace("/", "_") + "." + str(uuid.uuid4())
    return {"id": tid, "appId": app_id, "host": "agent-1.example", "ports": ports,
            "ipAddresses": [{"ipAddress": "10.0.9.7", "protocol": "IPv4"}], "stagedAt": now(),
            "startedAt": None, "state": "TASK_STAGING", "slaveId": "agent-1-S0", "version": rec["version"],
            "healthCheckResults": []}


def life(app_id):
    """the task's life, as the app's last argument asks"""
    time.sleep(0.3)
    with lock:
        rec = apps.get(app_id)
        if not rec or not rec["tasks"]:
            return
        t = rec["tasks"][0]
        t["state"] = "TASK_RUNNING"
        t["startedAt"] = now()
        words = " ".join(rec["app"].get("args") or [rec["app"].get("cmd") or ""]).split()
    end, seconds = ("TASK_FINISHED", ""), 1.5
    if "forever" in words:
        return
    if "oom" in words:
        end = ("TASK_FAILED", "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB")
    for i, w in enumerate(words):
        if w == "sleep" and i + 1 < len(words):
            seconds = float(words[i + 1])
        if w == "exit" and i + 1 < len(words):
            n = int(words[i + 1].strip(";'\""))
            end = ("TASK_FINISHED", "") if n == 0 else ("TASK_FAILED", "Command exited with status %d" % n)
    time.sleep(seconds)
    with lock:
        rec = apps.get(app_id)
        if not rec or not rec["tasks"]:
            return
        t = rec["tasks"].pop(0)
        # as Marathon's TaskFailure.isFailureState: FINISHED and KILLED leave no lastTaskFailure
        if end[0] not in ("TASK_FINISHED", "TASK_KILLED"):
            rec["failure"] = {"appId": app_id, "host": t["host"], "message": end[1], "state": end[0],
                              "taskId": t["id"], "timestamp": now(), "version": rec["version"],
                              "slaveId": t["slaveId"]}
        # backoffSeconds: no new task before it elapses


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html" if raw is not None else "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        with open(args.log, "a") as f:
            f.write(json.dumps({"method": method, "path": self.path, "auth": self.headers.get("Authorization", ""),
                                "body": body}) + "\n")
        if args.user:
            want = "Basic " + base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            if self.headers.get("Authorization") != want:
                # the web server's own refusal: HTML, not the API's JSON
                return self.send(401, None, {"WWW-Authenticate": 'basic realm="Mesosphere"'},
                                 raw=b"<html><body>Unauthorized</body></html>")
        path, _, query = self.path.partition("?")
        if path.startswith("/fake/forget/"):
            with lock:
                apps.pop(path[len("/fake/forget"):], None)
            return self.send(200, {})
        if path == "/v2/info" and method == "GET":
            return self.send(200, {"name": "marathon", "version": "1.11.24", "frameworkId": "fake",
                                   "http_config": {"http_port": self.server.server_port}})
        if path == "/v2/deployments" and method == "GET":
            return self.send(200, [])
        if path == "/v2/apps" and method == "POST":
            try:
                app = json.loads(body)
            except ValueError as e:
                return self.send(400, {"message": "Invalid JSON", "details": str(e)})
            if not isinstance(app, dict):
                return self.send(422, {"message": "Invalid JSON", "details": [{"path": "/", "errors": ["error.expected.jsobject"]}]})
            errs = validate(app)
            if "invalid" in ((app.get("container") or {}).get("docker") or {}).get("image", ""):
                errs.append(("/container/docker/image", "the test asked for this refusal"))
            if errs:
                with open(args.log + ".rejected", "a") as f:
                    f.write(json.dumps({"id": app.get("id"), "errors": errs}) + "\n")
                return self.send(422, {"message": "Object is not valid",
                                       "details": [{"path": p, "errors": [e]} for p, e in errs]})
            aid = "/" + app["id"].strip("/")
            with lock:
                if aid in apps:
                    return self.send(409, {"message": "An app with id [%s] already exists." % aid})
                rec = {"app": dict(app, id=aid), "tasks": [], "failure": None, "version": now()}
                apps[aid] = rec
                if app.get("instances", 1) > 0:
                    rec["tasks"].append(task_of(aid, rec))
                    threading.Thread(target=life, args=(aid,), daemon=True).start()
            dep = str(uuid.uuid4())
            return self.send(201, dict(rec["app"], tasksStaged=1, tasksRunning=0, tasksHealthy=0, tasksUnhealthy=0,
                                       deployments=[{"id": dep}], version=rec["version"]),
                             {"Marathon-Deployment-Id": dep, "Location": "http://localhost%s" % aid})
        if path.startswith("/v2/apps/"):
            aid = path[len("/v2/apps"):]
            tasks_only = aid.endswith("/tasks")
            if tasks_only:
                aid = aid[: -len("/tasks")]
            with lock:
                rec = apps.get(aid)
                if rec is None:
                    return self.send(404, {"message": "App '%s' does not exist" % aid})
                if method == "GET" and tasks_only:
                    return self.send(200, {"tasks": rec["tasks"]})
                if method == "GET":
                    a = dict(rec["app"], version=rec["version"], tasks=rec["tasks"], deployments=[],
                             tasksStaged=sum(t["state"] == "TASK_STAGING" for t in rec["tasks"]),
                             tasksRunning=sum(t["state"] == "TASK_RUNNING" for t in rec["tasks"]),
                             tasksHealthy=0, tasksUnhealthy=0)
                    if rec["failure"]:
                        a["lastTaskFailure"] = rec["failure"]
                    return self.send(200, {"app": a})
                dep = {"deploymentId": str(uuid.uuid4()), "version": now()}
                if method == "PUT":
                    try:
                        upd = json.loads(body)
                    except ValueError as e:
                        return self.send(400, {"message": "Invalid JSON", "details": str(e)})
                    if "instances" in upd:
                        rec["app"]["instances"] = upd["instances"]
                        if upd["instances"] == 0:
                            rec["tasks"] = []
                    return self.send(200, dep, {"Marathon-Deployment-Id": dep["deploymentId"]})
                if method == "DELETE":
                    del apps[aid]
                    return self.send(200, dep, {"Marathon-Deployment-Id": dep["deploymentId"]})
        return self.send(404, {"message": "not found: %s %s" % (method, path)})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    ThreadingHTTPServer(("127.0.0.1", args.port), H).serve_forever()
