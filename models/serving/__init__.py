"""Run tritonserver on an export (server.py) and query it (client.py)."""
