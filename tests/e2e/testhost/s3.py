"""A stand-in for S3-compatible object storage (Hetzner Object Storage's role): moto's S3, in the test
process, over HTTPS on the lab's gateway with pebble's WFE certificate (for 198.51.100.1; every lab
server trusts its CA), so a server reaches it only through the lab network.

Requests are authenticated as real storage does: moto checks each request's SigV4 signature
against the one access key made here (IAM user `backups`, allowed s3:*), so a wrong secret key is
refused, not just a wrong key ID. Objects are read back from moto's own backend (no S3 client)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from pathlib import Path

from .common import GATEWAY

ACCOUNT = "123456789012"  # moto's default account


class S3Storage:
    def __init__(self, cert: Path, key: Path, host: str = GATEWAY) -> None:
        # moto reads this at each request: 0 means every request is authenticated.
        from moto import settings

        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        self._cert, self._key, self.host = cert, key, host
        self.port = 0
        self._server = None
        self._thread: threading.Thread | None = None
        self.access_key_id = self.secret_access_key = ""

    def start(self, port: int = 0) -> S3Storage:
        """Listen on `port` (0: a free one)."""
        from moto.iam.models import iam_backends
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: object, **kwargs: object) -> None:
                pass

        iam = iam_backends[ACCOUNT]["global"]
        iam.create_user("us-east-1", "backups")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy("backups", "s3", json.dumps(policy))
        key = iam.create_access_key("backups")
        self.access_key_id, self.secret_access_key = key.access_key_id, key.secret_access_key
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert, self._key)
        with socket.socket() as probe:  # a free port on the gateway
            probe.bind((self.host, port))
            self.port = probe.getsockname()[1]
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=Quiet, ssl_context=context)
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-standin", daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}"

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of `bucket` (name -> content), as the storage holds it."""
        from moto.s3.models import s3_backends

        found = s3_backends[ACCOUNT]["aws"].buckets.get(bucket)
        if found is None:
            return {}
        return {name: found.keys[name].value for name in found.keys}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        # moto's state is this process's: the next stand-in starts empty.
        from moto.iam.models import iam_backends
        from moto.s3.models import s3_backends

        s3_backends[ACCOUNT]["aws"].reset()
        iam_backends[ACCOUNT]["global"].reset()
