"""The resume policy: what to do with a job, given what the journal says of it.

A pure function (no I/O): the batch reads the stored record, asks :func:`resume_action`,
and carries the action out.
"""

from __future__ import annotations

import enum

from akool_async._errors import SubmissionUncertainError
from akool_async._journal import JobState
from akool_async._models import CharacterSwap, HeadSwap

__all__ = ["ResumeAction", "resume_action", "uncertain_from_earlier_run"]


class ResumeAction(enum.Enum):
    """What the batch does with a journaled job."""

    #: Finished in an earlier run: re-emit its stored outcome, no request.
    REPLAY = "replay"
    #: Created in an earlier run: poll its task id, never create it again.
    RESUME_POLLING = "resume_polling"
    #: Sent in an earlier run, answer never seen: report SubmissionUncertainError.
    REPORT_UNCERTAIN = "report_uncertain"
    #: As REPORT_UNCERTAIN, but the caller opted in (``resubmit_uncertain``): send again.
    RESEND_UNCERTAIN = "resend_uncertain"
    #: Its task failed (status 4, refunded by Akool) and the caller opted in
    #: (``retry_failed``): create a new task under the same key.
    RETRY_FAILED = "retry_failed"
    #: Nothing was created (new, or definitely rejected): send it.
    SEND = "send"


def resume_action(
    state: JobState,
    *,
    resubmit_uncertain: bool,
    retry_failed: bool = False,
    task_failed: bool = False,
) -> ResumeAction:
    """The action for a job whose stored record is in ``state``.

    ``task_failed``: the stored error of a ``failed`` job is a failed task (status 4), the
    only failure ``retry_failed`` sends again; never an uncertain create.
    """
    if state is JobState.FAILED and retry_failed and task_failed:
        return ResumeAction.RETRY_FAILED
    if state in (JobState.COMPLETED, JobState.FAILED):
        return ResumeAction.REPLAY
    if state is JobState.CREATED:
        return ResumeAction.RESUME_POLLING
    if state in (JobState.SENDING, JobState.UNCERTAIN):
        if resubmit_uncertain:
            return ResumeAction.RESEND_UNCERTAIN
        return ResumeAction.REPORT_UNCERTAIN
    return ResumeAction.SEND


def uncertain_from_earlier_run(
    request: CharacterSwap | HeadSwap, previous: BaseException | None
) -> SubmissionUncertainError:
    """The error reported for a create an earlier run sent without seeing its answer."""
    err = SubmissionUncertainError(
        "a create for this job was sent by an earlier run and never acknowledged: a task "
        "may exist and may be charged. Check the Akool dashboard, then pass "
        "resubmit_uncertain=True to send it again",
        request=request,
    )
    err.__cause__ = previous
    return err
