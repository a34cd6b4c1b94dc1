"""A real S3 API server (moto's, from PyPI) started as a separate process on loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.ports import free_port, wait_listening
from tests.helpers.worker import stop_process_group

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_S3_REGION_NAME": "us-east-1",
}


class S3Server:
    def __init__(self, *, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_listening(timeout=30)

    def _wait_listening(self, *, timeout: float) -> None:
        if not wait_listening(self.port, self.process, timeout=timeout):
            self.stop()
            raise RuntimeError(f"the S3 server did not start:\n{self.log_path.read_text()}")

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_S3_REGION_NAME"],
        )

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def stop(self) -> None:
        stop_process_group(self.process, term_seconds=5)
