"""Speech on the live call (issue 13): the pure core.

grammar  a menu's phrases per language -> the vosk grammar and the phrase index
intent   keyword voting over a vosk result -> accept, confirm or none
pool     the bound on concurrent decodes, with its fallback counter
models   vosk models, loaded once per path per process and shared
recognize  one call's streaming decoder over a model and a grammar

No asyncio, AMI, MQTT or SQL here: the CTI feeds audio from its own thread. Only models and
recognize import vosk; grammar takes what "one phrase" means from ivr.schema (the flow check),
and nothing below speech imports it (config and ivr load without it).
"""
