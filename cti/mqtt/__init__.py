"""The CTI's MQTT event bus: a supervised aiomqtt connection with bounded queues."""

from cti.mqtt.bus import MqttBus
from cti.mqtt.outbox import PublishAfterCommit

__all__ = ["MqttBus", "PublishAfterCommit"]
