"""JupyterHub spawner for jumbo: single-user servers as notebook jobs of jumbod.

Thin on purpose: jumbod makes the container (image, network namespace joined
to the host by a veth pair, the user's workspace at /home/jovyan, datasets
read-only at /data, limits); this module only asks for it through jumbod's
REST API and tells the hub where the server listens.

    c.JupyterHub.spawner_class = "jumbo_spawner.JumboSpawner"
    c.JumboSpawner.jumbo_url = "http://127.0.0.1:4480"
    c.JumboSpawner.jumbo_token_file = "/srv/jumbo/hub/jumbo.token"

See docs/notebooks.md.
"""

import asyncio
import html
import json
import os

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from jupyterhub.spawner import Spawner

__version__ = "0.6.0"

FINAL = ("completed", "failed", "cancelled", "timeout", "oom", "lost")


def escape_name(name):
    """A hub user or server name as jumbod takes it: letters, digits and
    ._@- as they are, anything else (and +) as +XX per UTF-8 byte."""
    out = []
    for ch in name:
        if ch.isascii() and (ch.isalnum() or ch in "._@-"):
            out.append(ch)
        else:
            out.extend("+%02x" % b for b in ch.encode())
    s = "".join(out)
    if s[:1] in (".", "-"):
        s = "+%02x" % ord(s[0]) + s[1:]
    return s


class JumboError(Exception):
    """jumbod refused or failed a request; the message is its own."""


class JumboSpawner(Spawner):
    """Start each user's server as a jumbo notebook job."""

    jumbo_url = Unicode(
        "http://127.0.0.1:4480",
        config=True,
        help="jumbod's REST API ([site] api in jumbo.conf).",
    )
    jumbo_token = Unicode(
        config=True,
        help="A jumbo API token (jumbo token create jupyterhub). "
        "Default: $JUMBO_API_TOKEN, else the file jumbo_token_file.",
    )
    jumbo_token_file = Unicode(
        "",
        config=True,
        help="A file holding the jumbo API token.",
    )
    image = Unicode(
        "jumbo/notebook",
        config=True,
        help="The image when no profile names one.",
    )
    profiles = List(
        Dict(),
        config=True,
        help="""Environments a user picks from, shown as a form when there is more
        than one.  Each: {"slug", "display_name", "description", "image",
        "cpus", "memory", "gpus", "backend", "cull_idle", "default"}; image, cpus,
        memory, gpus and backend (a [backend NAME] of the site: Slurm) go to
        jumbod as the job's, cull_idle over the spawner's.""",
    )
    data = List(
        Unicode(),
        config=True,
        help="Datasets (paths of the data root) to mount at /data/NAME. "
        "Empty: the whole data root at /data, read-only.",
    )
    offer_data_choice = Bool(
        True,
        config=True,
        help="Show a field in the form where a user names datasets.",
    )
    notebook_port = Integer(8888, config=True, help="The server's port in its network namespace.")
    cull_idle = Integer(
        0,
        config=True,
        help="Seconds: the server shuts itself down after this long without "
        "activity (idle kernels and terminals are culled first); 0: never.",
    )
    poll_timeout = Float(10.0, config=True, help="Seconds to wait for jumbod in each request.")
    stop_wait = Float(15.0, config=True, help="Seconds stop() waits for the job to end.")

    job_id = Unicode("")
    address = Unicode("")
    server_port = Integer(0)

    @default("env_keep")
    def _env_keep(self):
        # the image has its own PATH and Python: keep only the locale
        return ["LANG", "LC_ALL"]

    @default("cmd")
    def _cmd(self):
        return ["jupyterhub-singleuser"]

    @default("options_form")
    def _options_form(self):
        return self._render_form

    # ---- jumbod's API ----

    def _token(self):
        if self.jumbo_token:
            return self.jumbo_token
        if os.environ.get("JUMBO_API_TOKEN"):
            return os.environ["JUMBO_API_TOKEN"]
        if self.jumbo_token_file:
            with open(self.jumbo_token_file) as f:
                return f.read().strip()
        raise JumboError("no jumbo API token: set JumboSpawner.jumbo_token_file or $JUMBO_API_TOKEN")

    async def _api(self, method, path, body=None):
        req = HTTPRequest(
            self.jumbo_url.rstrip("/") + path,
            method=method,
            headers={"Authorization": "Bearer " + self._token(), "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=self.poll_timeout,
            connect_timeout=self.poll_timeout,
        )
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        if resp.code == 599:
            raise ConnectionError("jumbod at %s: %s" % (self.jumbo_url, resp.error))
        try:
            doc = json.loads(resp.body or b"{}")
        except ValueError:
            doc = {}
        return resp.code, doc

    async def _job(self):
        code, doc = await self._api("GET", "/api/v1/jobs/" + self.job_id)
        if code == 404:
            return None
        if code != 200:
            raise JumboError(doc.get("error", "jumbod answered %d" % code))
        return doc

    # ---- profiles ----

    def _profile(self):
        slug = (self.user_options or {}).get("profile")
        for p in self.profiles:
            if p.get("slug") == slug:
                return p
        for p in self.profiles:
            if p.get("default"):
                return p
        return self.profiles[0] if self.profiles else {}

    def _render_form(self, spawner=None):
        if len(self.profiles) < 2 and not self.offer_data_choice:
            return ""
        rows = []
        default = self._profile().get("slug")
        for p in self.profiles:
            slug = html.escape(str(p.get("slug", "")))
            limits = ", ".join(
                s
                for s in (
                    "%s CPU" % p["cpus"] if p.get("cpus") else "",
                    "%s memory" % p["memory"] if p.get("memory") else "",
                    "%s GPU" % p["gpus"] if p.get("gpus") else "",
                )
                if s
            )
            rows.append(
                '<label class="jumbo-profile" style="display:block;margin:.5em 0">'
                '<input type="radio" name="profile" value="%s"%s> <b>%s</b> <span>%s</span>'
                '<br><small>%s%s</small></label>'
                % (
                    slug,
                    " checked" if p.get("slug") == default else "",
                    html.escape(p.get("display_name", slug)),
                    html.escape(p.get("image", self.image)),
                    html.escape(p.get("description", "")),
                    (" (" + html.escape(limits) + ")") if limits else "",
                )
            )
        if self.offer_data_choice:
            rows.append(
                '<label style="display:block;margin:.5em 0">Datasets '
                '<input type="text" name="data" placeholder="all" '
                'title="paths of the data root, separated by commas; empty: all, at /data">'
                "</label>"
            )
        return "\n".join(rows)

    def options_from_form(self, formdata):
        opts = {}
        prof = formdata.get("profile", [""])[0]
        if prof:
            if not any(p.get("slug") == prof for p in self.profiles):
                raise ValueError("no profile %r" % prof)
            opts["profile"] = prof
        data = [d.strip() for d in formdata.get("data", [""])[0].split(",") if d.strip()]
        if data:
            opts["data"] = data
        return opts

    # ---- the spawner's interface ----

    def get_state(self):
        state = super().get_state()
        if self.job_id:
            state["job_id"] = self.job_id
            state["address"] = self.address
        return state

    def load_state(self, state):
        super().load_state(state)
        self.job_id = state.get("job_id", "")
        self.address = state.get("address", "")

    def clear_state(self):
        super().clear_state()
        self.job_id = ""
        self.address = ""

    def _request(self):
        prof = self._profile()
        self.ip = "0.0.0.0"
        self.port = self.notebook_port
        env = self.get_env()
        args = list(self.cmd) + list(self.get_args())
        cull = int(prof.get("cull_idle", self.cull_idle))
        if cull > 0:
            t = str(cull)
            args += [
                "--ServerApp.shutdown_no_activity_timeout=" + t,
                "--MappingKernelManager.cull_idle_timeout=" + t,
                "--MappingKernelManager.cull_interval=" + str(max(1, min(60, cull // 2))),
                "--MappingKernelManager.cull_connected=True",
                "--TerminalManager.cull_inactive_timeout=" + t,
                "--TerminalManager.cull_interval=" + str(max(1, min(60, cull // 2))),
            ]
        req = {
            "image": prof.get("image", self.image),
            "args": args,
            "env": ["%s=%s" % (k, v) for k, v in env.items()],
            "notebook": {"user": escape_name(self.user.name), "server": escape_name(self.name or "")},
        }
        for k in ("cpus", "memory", "gpus", "backend"):
            if prof.get(k):
                req[k] = prof[k]
        data = (self.user_options or {}).get("data") or self.data
        if data:
            req["data"] = list(data)
        return req

    async def start(self):
        code, doc = await self._api("POST", "/api/v1/jobs", self._request())
        if code != 201:
            raise JumboError("jumbo refused the notebook: " + doc.get("error", "answer %d" % code))
        self.job_id = doc["id"]
        self.address = ""
        self.log.info("jumbo: %s's server is job %s", self.user.name, self.job_id)
        delay = 0.01
        while True:
            job = await self._job()
            if job is None:
                raise JumboError("jumbo lost job %s" % self.job_id)
            if job["state"] in FINAL:
                raise JumboError(
                    "the notebook job %s %s: %s" % (self.job_id, job["state"], job.get("reason") or "no reason given")
                )
            if job["state"] == "running" and job.get("address"):
                self.address = job["address"]
                # a backend that places the server itself (Marathon) says on which port
                self.server_port = int(job.get("port") or self.notebook_port)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        # the server listening before the hub is told: its own wait backs
        # off exponentially and would otherwise add most of a second
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while True:
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(self.address, self.server_port), 1)
                w.close()
                return (self.address, self.server_port)
            except (OSError, asyncio.TimeoutError):
                pass
            if loop.time() - checked > 1:
                checked = loop.time()
                job = await self._job()
                if job is None or job["state"] in FINAL:
                    state = job["state"] if job else "gone"
                    reason = (job or {}).get("reason") or "its output: jumbo logs " + self.job_id
                    raise JumboError("the notebook job %s %s before it listened: %s" % (self.job_id, state, reason))
            await asyncio.sleep(0.05)

    async def poll(self):
        if not self.job_id:
            return 0
        try:
            job = await self._job()
        except (ConnectionError, JumboError) as e:
            # jumbod restarting: the job's supervisor keeps it running
            self.log.warning("jumbo: cannot poll job %s: %s", self.job_id, e)
            return None
        if job is None:
            return 0
        if job["state"] in FINAL:
            code = job.get("exit_code")
            return code if isinstance(code, int) and code != 0 else (0 if job["state"] == "completed" else 1)
        return None

    async def stop(self, now=False):
        if not self.job_id:
            return
        code, doc = await self._api("DELETE", "/api/v1/jobs/" + self.job_id)
        if code not in (202, 404, 409):
            raise JumboError("jumbo would not stop job %s: %s" % (self.job_id, doc.get("error", code)))
        if now or code != 202:
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + self.stop_wait
        while loop.time() < end:
            job = await self._job()
            if job is None or job["state"] in FINAL:
                return
            await asyncio.sleep(0.1)
        self.log.warning("jumbo: job %s still stopping after %.0f s", self.job_id, self.stop_wait)

    async def progress(self):
        said = set()
        while True:
            if not self.job_id:
                if "asked" not in said:
                    said.add("asked")
                    yield {"progress": 10, "message": "asking jumbo for a notebook"}
                await asyncio.sleep(0.1)
                continue
            try:
                job = await self._job()
            except (ConnectionError, JumboError):
                job = None
            if job is None:
                return
            st = job["state"]
            if st == "pending" and "pending" not in said:
                said.add("pending")
                yield {
                    "progress": 30,
                    "message": "jumbo job %s: preparing the image %s and the datasets"
                    % (self.job_id, job.get("image")),
                }
            if st == "running":
                yield {
                    "progress": 80,
                    "message": "container running at %s; waiting for JupyterLab" % job.get("address", "?"),
                }
                return
            if st in FINAL:
                yield {"progress": 100, "message": "jumbo job %s %s: %s" % (self.job_id, st, job.get("reason", ""))}
                return
            await asyncio.sleep(0.1)
