"""Placing real SIP calls: the SIPp wrapper used by the demo, the tests and the load harness."""
