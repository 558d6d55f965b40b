"""Mass messaging routes (P2): start a bulk job, follow its progress and per-account results."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field, model_validator

from threadline.kit.http import CurrentPrincipal, from_state, idempotency_key_header
from threadline.kit.inputs import Identifier, Multiline, RequestModel, SingleLine
from threadline.kit.limits import body_limit
from threadline.messaging.api.templates import MAX_HTML_CHARS, MAX_TASKS, ReminderSettingsIn
from threadline.messaging.api.threads import new_thread_budget
from threadline.messaging.service.bulk import MAX_BULK_ACCOUNTS, BulkService
from threadline.messaging.service.templates import MAX_SUBJECT_CHARS, MAX_TASK_CHARS, Content

__all__ = ["router"]

router = APIRouter(prefix="/v1/bulk-messages", tags=["bulk messages"])


BulkServiceDep = Annotated[BulkService, Depends(from_state("bulk", BulkService))]


def bulk_budget(settings: Any) -> int:
    """A thread's budget plus the account list (ids up to 200 characters, JSON-escaped)."""
    return new_thread_budget(settings) + MAX_BULK_ACCOUNTS * (3 * 200 + 3)


class BulkIn(RequestModel):
    """Either ``template_id``, or ``subject`` and ``html`` (with optional tasks and
    reminders). Shortcodes are filled for each account either way."""

    account_ids: list[Identifier] = Field(min_length=1, max_length=MAX_BULK_ACCOUNTS)
    template_id: Identifier | None = None
    subject: (
        Annotated[str, Field(min_length=1, max_length=MAX_SUBJECT_CHARS), SingleLine] | None
    ) = None
    html: str | None = Field(default=None, min_length=1, max_length=MAX_HTML_CHARS)
    client_tasks: (
        list[Annotated[str, Field(min_length=1, max_length=MAX_TASK_CHARS), Multiline]] | None
    ) = Field(default=None, max_length=MAX_TASKS)
    reminders: ReminderSettingsIn | None = None

    @model_validator(mode="after")
    def _template_or_content(self) -> BulkIn:
        own = [
            name
            for name in ("subject", "html", "client_tasks", "reminders")
            if getattr(self, name) is not None
        ]
        if self.template_id is not None and own:
            raise ValueError(f"give template_id or content, not both (also given: {own})")
        if self.template_id is None and (self.subject is None or self.html is None):
            raise ValueError("give template_id, or subject and html")
        return self

    def content(self) -> Content | None:
        if self.template_id is not None or self.subject is None or self.html is None:
            return None
        reminders = (self.reminders or ReminderSettingsIn()).settings()
        return Content(
            subject=self.subject,
            html=self.html,
            client_tasks=tuple(self.client_tasks or ()),
            reminders=reminders,
        )


class BulkResultOut(BaseModel):
    index: int = Field(description="Position of the account in the request (duplicates dropped).")
    account_id: str
    outcome: Literal["created", "skipped", "failed", "cancelled"]
    thread_id: str | None
    reason: str | None


class BulkJobOut(BaseModel):
    id: str
    status: Literal["running", "cancelling", "cancelled", "done"] = Field(
        description="`cancelling`: a cancel was asked and the current batch is finishing; "
        "`cancelled`: the accounts not processed by then are `cancelled`."
    )
    template_id: str | None
    total: int = Field(description="Accounts in the job.")
    processed: int
    created: int
    skipped: int
    failed: int
    cancelled: int = Field(description="Accounts not processed because the job was cancelled.")
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: dict[str, Any]) -> BulkJobOut:
        return cls(
            id=job["_id"],
            status=job["status"],
            template_id=job["template_id"],
            total=job["total"],
            processed=job["cursor"],
            created=job["created"],
            skipped=job["skipped"],
            failed=job["failed"],
            cancelled=job.get("cancelled", 0),
            created_at=job["created_at"],
            finished_at=job["finished_at"],
        )


class BulkJobDetailOut(BulkJobOut):
    results: list[BulkResultOut] = Field(description="Per-account results, in request order.")
    next_cursor: int | None = Field(description="`after` for the next page of results.")


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[body_limit(bulk_budget)])
async def start_bulk_message(
    body: BulkIn,
    principal: CurrentPrincipal,
    bulk: BulkServiceDep,
    idempotency_key: Annotated[str | None, idempotency_key_header()] = None,
) -> BulkJobOut:
    """Creates one thread per account in the background; answers at once with the job."""
    job = await bulk.start(
        principal,
        account_ids=body.account_ids,
        template_id=body.template_id,
        content=body.content(),
        idempotency_key=idempotency_key,
    )
    return BulkJobOut.of(job)


@router.get("/{job_id}")
async def get_bulk_message(
    job_id: Annotated[str, Path(min_length=1, max_length=100)],
    principal: CurrentPrincipal,
    bulk: BulkServiceDep,
    after: Annotated[int, Query(ge=-1, le=MAX_BULK_ACCOUNTS)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BulkJobDetailOut:
    """Progress and a page of per-account results (created thread / skipped / failed)."""
    job, results, next_cursor = await bulk.get(principal, job_id, after=after, limit=limit)
    return BulkJobDetailOut(
        **BulkJobOut.of(job).model_dump(),
        results=[
            BulkResultOut(
                index=result["index"],
                account_id=result["account_id"],
                outcome=result["outcome"],
                thread_id=result["thread_id"],
                reason=result["reason"],
            )
            for result in results
        ],
        next_cursor=next_cursor,
    )


@router.post("/{job_id}/cancel")
async def cancel_bulk_message(
    job_id: Annotated[str, Path(min_length=1, max_length=100)],
    principal: CurrentPrincipal,
    bulk: BulkServiceDep,
) -> BulkJobOut:
    """Stops the job after the batch it is working on: threads already created stay, the
    accounts not processed become `cancelled`. Idempotent; 409 once the job is done."""
    return BulkJobOut.of(await bulk.cancel(principal, job_id))
