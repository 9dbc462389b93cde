"""A click-to-call's id: an Asterisk Uniqueid in form on this node, never taken for an outbound
attempt's (callcenter.outbound_service) or a call of another node."""

from __future__ import annotations

import re

from acd.model import call_node
from callcenter.call_control import C2C_SPAN, click_to_call_id
from callcenter.outbound_service import attempt_of
from config.settings import ASTERISK_ID_PATTERN


def test_the_id_is_an_asterisk_id_of_this_node_and_no_outbound_attempt() -> None:
    for n in (0, 1, C2C_SPAN - 1, C2C_SPAN + 5):
        cid = click_to_call_id("pbx2", 1765000000.7, n)
        assert re.fullmatch(ASTERISK_ID_PATTERN, cid), cid
        assert call_node(cid, "pbx1") == "pbx2"
        assert attempt_of(cid) is None
    assert click_to_call_id("pbx1", 1765000000.7, 5) == "pbx1-1765000000.800000005"
