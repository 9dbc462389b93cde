"""The database adapter: models, migrations, sessions and the queries the IVR and CLI run."""
