"""The database adapter: models, migrations, sessions and the queries the IVR and CLI run."""

# every mapped class is registered before the first query resolves a relationship by name
from cti.db import (  # noqa: F401
    models,
    models_calendars,
    models_callers,
    models_outbound,
    models_recordings,
    models_supervision,
    models_transcripts,
    models_web,
    models_workorders,
)
