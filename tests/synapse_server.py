"""A real Synapse homeserver on 127.0.0.1 for the Matrix tests, with users registered by shared secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).parent.parent
SHARED_SECRET = "welcomebot-test-shared-secret"


def synapse_python() -> Path:
    path = Path(os.environ.get("SYNAPSE_PYTHON", PROJECT / ".synapse" / "venv" / "bin" / "python"))
    if not path.exists():
        raise RuntimeError(f"Synapse is not installed at {path}: run scripts/test, which installs it")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CONFIG = """
server_name: "localhost"
pid_file: "{dir}/homeserver.pid"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{dir}/homeserver.db"
media_store_path: "{dir}/media"
signing_key_path: "{dir}/signing.key"
log_config: "{dir}/log.yaml"
registration_shared_secret: "{secret}"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
presence:
  enabled: false
url_preview_enabled: false
rc_message:
  per_second: {message_rate}
  burst_count: {message_burst}
rc_login:
  address: {{per_second: 1000, burst_count: 1000}}
  account: {{per_second: 1000, burst_count: 1000}}
  failed_attempts: {{per_second: 1000, burst_count: 1000}}
rc_registration: {{per_second: 1000, burst_count: 1000}}
rc_joins:
  local: {{per_second: 1000, burst_count: 1000}}
  remote: {{per_second: 1000, burst_count: 1000}}
rc_invites:
  per_room: {{per_second: 1000, burst_count: 1000}}
  per_user: {{per_second: 1000, burst_count: 1000}}
  per_issuer: {{per_second: 1000, burst_count: 1000}}
rc_key_requests: {{per_second: 1000, burst_count: 1000}}
rc_3pid_validation: {{per_second: 1000, burst_count: 1000}}
"""

LOG_CONFIG = """
version: 1
formatters:
  plain: {format: "%(asctime)s %(levelname)s %(name)s %(message)s"}
handlers:
  file: {class: logging.FileHandler, formatter: plain, filename: "DIR/homeserver.log"}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
"""


@dataclass
class Synapse:
    """One homeserver process; `restart()` stops and starts it on the same port and data."""

    directory: Path
    default_rate_limit: bool = False

    def __post_init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        rate, burst = (0.2, 10) if self.default_rate_limit else (1000, 1000)
        (self.directory / "homeserver.yaml").write_text(
            CONFIG.format(
                dir=self.directory, port=self.port, secret=SHARED_SECRET, message_rate=rate, message_burst=burst
            )
        )
        (self.directory / "log.yaml").write_text(LOG_CONFIG.replace("DIR", str(self.directory)))
        subprocess.run(
            [
                str(synapse_python()),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(self.directory / "homeserver.yaml"),
                "--generate-keys",
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 120) -> None:
        self.process = subprocess.Popen(
            [str(synapse_python()), "-m", "synapse.app.homeserver", "-c", str(self.directory / "homeserver.yaml")],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "stderr.log").open("ab"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited: {(self.directory / 'stderr.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("Synapse did not start in time")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def register(self, name: str, password: str = "password", admin: bool = False) -> str:
        """Create a user with the shared secret; returns its user id."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = json.loads(urllib.request.urlopen(endpoint).read())["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), name.encode(), password.encode(), b"admin" if admin else b"notadmin"]))
        body = json.dumps(
            {"nonce": nonce, "username": name, "password": password, "admin": admin, "mac": mac.hexdigest()}
        )
        request = urllib.request.Request(endpoint, body.encode(), {"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()
        return f"@{name}:localhost"
