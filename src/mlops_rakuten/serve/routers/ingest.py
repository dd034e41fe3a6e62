"""POST /ingest: a CSV of new labelled products, appended to the raw data and recorded with `dvc add`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile, status

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.project import Busy, data_version, project_lock
from mlops_rakuten.serve.raw_append import (OPTIONAL, REQUIRED, StagingCheckFailed, append_products, check_upload,
                                             recorded)
from mlops_rakuten.serve.settings import MAX_UPLOAD_BYTES, RAW_DIR
from mlops_rakuten.serve.responses import IngestRejected, responses
from mlops_rakuten.serve.users import User
from mlops_rakuten.ops.commands import run

router = APIRouter(tags=["data"])


@router.post("/ingest", responses=responses(400, 401, 403, 409, 413, 500, _422={
    "model": IngestRejected, "description": "an unreadable file, or no row passed the checks: nothing was added"}))
def ingest(request: Request, _: Annotated[User, Depends(require_admin)],
           file: Annotated[UploadFile, File(description=f"UTF-8 CSV with columns {', '.join(REQUIRED)} "
                                                         f"(optionally {', '.join(OPTIONAL)})")]) -> dict:
    settings = request.app.state.settings
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:  # the body cap leaves room for the multipart framing around the file
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MiB; split it")
    try:
        upload = check_upload(data, file.filename or "upload.csv")
    except InputError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"message": str(exc), "received": 0,
                                                                           "accepted": 0, "rejected": 0, "rejects": []}) from None
    report = {"received": upload.received, "accepted": len(upload.accepted), "rejected": len(upload.rejects),
              "rejects": upload.rejects}
    if upload.accepted.empty:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail={"message": "no row passed the checks; nothing was added", **report})
    try:
        with project_lock(settings.state_dir):
            previous = data_version(settings.project_dir)
            first, last = append_products(settings.raw_dir, settings.raw_staging, upload.accepted)
            added = run(["dvc", "add", "-q", RAW_DIR], settings.project_dir, check=False)
            if added.returncode == 0:
                recorded(settings.raw_staging)  # else the next start runs `dvc add` again
    except (Busy, InputError) as exc:  # a run in progress, or raw data missing or inconsistent
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except StagingCheckFailed as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=str(exc)) from None
    if added.returncode != 0:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            detail=f"rows {first}..{last} were appended to {RAW_DIR} but `dvc add {RAW_DIR}` "
                                   f"failed: {(added.stderr.strip().splitlines() or ['?'])[-1]}")
    current = data_version(settings.project_dir)
    return {**report, "first_index": first, "last_index": last,
            "previous_data_md5": previous and previous["md5"], "data_md5": current and current["md5"]}
