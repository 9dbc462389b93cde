"""The MQTT topics and payloads: config/topics.py, re-exported here for the CTI's adapters.

The builders moved to the ground floor so that asterisk_conf/mosquitto.py (which may not import
cti/) renders the broker ACL from the same module as cti/notifier.py; this name stays so the
bus, the outbox and the bench import them as before.
"""

from config.topics import *  # noqa: F403
