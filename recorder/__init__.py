"""Recording of agent calls (issue 4): pure policy (naming, retention, reconcile) and wav facts."""
