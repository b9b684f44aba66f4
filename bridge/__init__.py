"""The HTTP bridge: API calls become inbox events; reads come from Redis."""
