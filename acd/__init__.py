"""ACD core: agents, calls, skill queues and routing for the 95598 hotline; pure, no I/O."""
