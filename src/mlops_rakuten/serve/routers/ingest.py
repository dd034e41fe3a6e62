"""POST /ingest: a CSV of new labelled products added to the raw data as one batch (ops/ingest.py, the
sequence `rakuten ingest` runs too), its labels screened against the model being served
(monitoring/label_screen.py); this module only handles the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, HTTPException, Query, Request, UploadFile, status

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.monitoring.label_screen import project_screen
from mlops_rakuten.ops.ingest import KEY_PATTERN, SOURCE_PATTERN, NotRecorded, Refused
from mlops_rakuten.ops.ingest import ingest as add_batch
from mlops_rakuten.ops.raw_append import StagingCheckFailed
from mlops_rakuten.ops.upload import OPTIONAL, REQUIRED
from mlops_rakuten.serve.auth import require_admin
from mlops_rakuten.serve.guard import body_limit
from mlops_rakuten.serve.project import Busy
from mlops_rakuten.serve.responses import IngestRejected, responses
from mlops_rakuten.serve.settings import MAX_UPLOAD_BYTES
from mlops_rakuten.serve.users import User

router = APIRouter(tags=["data"])
# Multipart framing around the CSV: boundaries and part headers, generously.
MULTIPART_SLACK = 64 * 2**10


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
            "description": "an unreadable file, no row passed the checks, a bad batch (a label "
            "that is no class, a product id twice or already in data/raw: the message names the line), or an "
            "Idempotency-Key already used for another file: nothing was added",
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
    source: Annotated[
        str | None,
        Query(
            pattern=SOURCE_PATTERN,
            description="where the batch comes from (a supplier, a labelling team), kept in its record; "
            "default: the Idempotency-Key, else the arrival time",
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
        return add_batch(
            settings.project_dir,
            settings.state_dir,
            data,
            file.filename or "upload.csv",
            idempotency_key,
            source,
            project_screen(lambda: served.pipeline if (served := request.app.state.model.loaded) else None),
        )
    except Refused as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"message": str(exc), **exc.report}) from None
    except (Busy, InputError) as exc:  # a run in progress, or raw data missing or inconsistent
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except (StagingCheckFailed, NotRecorded) as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail=str(exc)) from None
