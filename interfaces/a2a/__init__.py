"""A2A, the protocol agents of other frameworks speak (through the official `a2a-sdk`):
Goalkeeper as its client, for A2A agents in a team, and as its server."""
