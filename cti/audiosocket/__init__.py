"""AudioSocket: the live call's audio between Asterisk and the CTI (issue 13).

protocol  the framing (kind, length, payload), no I/O
server    the asyncio listener: one session per menu a caller may speak to
"""
