"""Benchmarks of the hotline against real Asterisk and SIPp (`hotline bench ...`)."""
