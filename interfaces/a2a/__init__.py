"""Goalkeeper and A2A (the Agent2Agent protocol), through the official `a2a-sdk`."""
