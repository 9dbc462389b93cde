"""Outbound calls (issue 14), the pure core: when a call may be placed (call windows), how many
may start now (pacing), what an attempt's end means and when to try again (outcomes,
retries), who is never called (do-not-call), and each job's state, restart included.

No I/O here (tests/unit/test_architecture.py): the service that reads the job table, sends
AMI Originates and hears their ends asks these modules what to do. One engine for every kind
of call we place (return visits, planned-outage notices, callbacks, click-to-call): a purpose
is data (outbound.jobs.Purpose), not a code path.
"""
