"""The web pages: goals, approvals, agents, costs, suggestions and health, over the API."""
