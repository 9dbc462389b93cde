"""What one attempt's end means, from what Asterisk says of it.

An AMI Originate ends in an OriginateResponse whose Reason is the last control frame the
outgoing channel saw (Asterisk's AST_CONTROL_*: 0 nothing (no channel), 1 hangup, 3 ringing,
4 answer, 5 busy, 8 congestion); a call that was answered and hung up later ends with the
channel's Hangup, whose Cause is Q.850's. Both are kept on the attempt (the SIP cause and
the duration are the issue's record of each attempt); this module only names the outcome.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"          # rang out, or the network said nobody answered
    BUSY = "busy"
    REJECTED = "rejected"            # the callee declined (Q.850 21, SIP 603)
    INVALID_NUMBER = "invalid_number"  # unallocated, bad format, gone (never retried)
    FAILED = "failed"                # our side or the network: congestion, trunk down
    UNKNOWN = "unknown"              # the attempt's end was never heard (a restart)


# Originate's Reason (AST_CONTROL_*) when the call was not answered
_REASONS = {0: Outcome.FAILED, 1: Outcome.NO_ANSWER, 3: Outcome.NO_ANSWER, 4: Outcome.ANSWERED,
            5: Outcome.BUSY, 8: Outcome.FAILED}

# Q.850 causes, as the outgoing channel's Hangup gives them
_CAUSES = {
    1: Outcome.INVALID_NUMBER,    # unallocated number
    3: Outcome.INVALID_NUMBER,    # no route to destination
    17: Outcome.BUSY,             # user busy
    18: Outcome.NO_ANSWER,        # no user responding
    19: Outcome.NO_ANSWER,        # no answer from user (alerted)
    20: Outcome.NO_ANSWER,        # subscriber absent (a mobile switched off)
    21: Outcome.REJECTED,         # call rejected
    22: Outcome.INVALID_NUMBER,   # number changed
    27: Outcome.FAILED,           # destination out of order
    28: Outcome.INVALID_NUMBER,   # invalid number format
    34: Outcome.FAILED,           # no circuit available
    38: Outcome.FAILED,           # network out of order
    41: Outcome.FAILED,           # temporary failure
    42: Outcome.FAILED,           # switching equipment congestion
}


def classify(reason: int | None, cause: int | None) -> Outcome:
    """The outcome of an attempt from Originate's Reason and the channel's Hangup Cause
    (either may be missing). A specific cause wins over the bare reason: Reason 1 (hung up
    before answer) with cause 17 is busy, with cause 1 an invalid number."""
    if reason == 4:
        return Outcome.ANSWERED
    if cause is not None and cause in _CAUSES:
        return _CAUSES[cause]
    if reason is not None and reason in _REASONS:
        return _REASONS[reason]
    if cause == 16:  # normal clearing without an answer: the far end gave up ringing
        return Outcome.NO_ANSWER
    return Outcome.FAILED if reason is not None or cause is not None else Outcome.UNKNOWN
