"""A2A, the protocol agents of other frameworks speak: Goalkeeper as client and server."""
