"""POST /ingest: a CSV of new labelled products, appended to the raw data and recorded with `dvc add`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, HTTPException, Request, UploadFile, status

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.guard import body_limit
from mlops_rakuten.serve.ingest_commit import KEY_PATTERN, KeyReused, NotRecorded, commit, upload_key
from mlops_rakuten.serve.project import Busy, project_lock
from mlops_rakuten.serve.raw_append import OPTIONAL, REQUIRED, StagingCheckFailed, check_upload
from mlops_rakuten.serve.responses import IngestRejected, responses
from mlops_rakuten.serve.settings import MAX_UPLOAD_BYTES
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["data"])
# Multipart framing around the CSV: boundaries and part headers, generously.
MULTIPART_SLACK = 64 * 2**10


def _rejected(message: str, report: dict | None = None) -> HTTPException:
    detail = {"message": message, **(report or {"received": 0, "accepted": 0, "rejected": 0, "rejects": []})}
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


@router.post(
    "/ingest",
    openapi_extra=body_limit(MAX_UPLOAD_BYTES + MULTIPART_SLACK),
    responses=responses(
        400,
        401,
        403,
        409,
        413,
        500,
        _422={
            "model": IngestRejected,
            "description": "an unreadable file, no row passed the checks, or an "
            "Idempotency-Key already used for another file: nothing "
            "was added",
        },
    ),
)
def ingest(
    request: Request,
    _: Annotated[User, Depends(require_admin)],
    file: Annotated[
        UploadFile, File(description=f"UTF-8 CSV with columns {', '.join(REQUIRED)} (optionally {', '.join(OPTIONAL)})")
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=KEY_PATTERN,
            description="any unique string for this upload (a UUID): a retry with the "
            'same key and file gets the first answer, "replayed": true, and '
            "adds nothing",
        ),
    ] = None,
) -> dict:
    settings = request.app.state.settings
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:  # the body cap leaves room for the multipart framing around the file
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MiB; split it"
        )
    try:
        upload = check_upload(data, file.filename or "upload.csv")
    except InputError as exc:
        raise _rejected(str(exc)) from None
    report = {
        "received": upload.received,
        "accepted": len(upload.accepted),
        "rejected": len(upload.rejects),
        "rejects": upload.rejects,
    }
    if upload.accepted.empty:
        raise _rejected("no row passed the checks; nothing was added", report)
    try:
        with project_lock(settings.state_dir):
            return commit(settings, upload.accepted, report, upload_key(idempotency_key, data))
    except KeyReused as exc:
        raise _rejected(str(exc), report) from None
    except (Busy, InputError) as exc:  # a run in progress, or raw data missing or inconsistent
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except (StagingCheckFailed, NotRecorded) as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=str(exc)) from None
