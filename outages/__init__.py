"""Outages (停电) of the 95598 center: pure cores for notices, announcements, incident detection
and storm mode. No I/O here; the adapters that read the database and drive the IVR are wired
elsewhere (see each module's docstring for what they must supply)."""
