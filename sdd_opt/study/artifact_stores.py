"""Which Optuna artifact store ``--artifacts`` names: a directory (default) or an S3 / GCS bucket.

* ``DIR`` (or ``$SDD_OPT_ARTIFACTS``, default ``storage/artifacts``): a ``FileSystemArtifactStore``;
  the trials' run directories sit beside it (``DIR/runs``). Workers on several machines must
  share ``DIR`` (a network file system) to share the store.
* ``s3://BUCKET[/PREFIX]``: a ``Boto3ArtifactStore`` (credentials and ``AWS_ENDPOINT_URL`` from
  boto3's usual environment; MinIO works too). ``gs://BUCKET[/PREFIX]``: a ``GCSArtifactStore``.
  Workers on any machine share the bucket; run directories stay on each worker's machine
  (``storage/artifacts/runs``), so nothing but the storage URL and the bucket is shared, and the
  machine that exports needs neither (:mod:`sdd_opt.study.front_models`).
"""

from __future__ import annotations

import os
from typing import BinaryIO

from sdd_opt.errors import UserError

REMOTE_SCHEMES = ("s3://", "gs://")


def is_remote(value: str | None) -> bool:
    return bool(value) and str(value).startswith(REMOTE_SCHEMES)


class PrefixedStore:
    """An artifact store whose ids live under ``prefix/`` of another store (one bucket, many studies)."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix = store, prefix.strip("/")

    def _id(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self._id(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self._id(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self._id(artifact_id))


def _remote(value: str):
    scheme, _, rest = value.partition("://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UserError(f"--artifacts {value}: expected {scheme}://BUCKET[/PREFIX]")
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            store = Boto3ArtifactStore(bucket)
        else:
            from optuna.artifacts import GCSArtifactStore

            store = GCSArtifactStore(bucket)
    except ImportError as exc:
        need = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise UserError(f"--artifacts {value}: needs the {need} package (pip install {need}): {exc}") from None
    return PrefixedStore(store, prefix) if prefix else store


def open_artifact_store(storage_url: str, artifacts: str | None = None):
    """The artifact store for ``--artifacts`` (else ``$SDD_OPT_ARTIFACTS``, else beside the storage)."""
    from sdd_opt.study.storage import ENV_ARTIFACTS, artifact_store, resolve_artifacts

    value = artifacts or os.environ.get(ENV_ARTIFACTS)
    if is_remote(value):
        return _remote(value)
    return artifact_store(resolve_artifacts(storage_url, artifacts))


def check_artifacts(artifacts: str | None = None) -> None:
    """Refuse a malformed ``--artifacts`` URL (or a missing client library) before anything is stored."""
    from sdd_opt.study.front_models import grace_seconds
    from sdd_opt.study.storage import ENV_ARTIFACTS

    value = artifacts or os.environ.get(ENV_ARTIFACTS)
    if is_remote(value):
        _remote(value)
    grace_seconds()
