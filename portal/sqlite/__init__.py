"""Django's SQLite backend, whose writes in background processes take turns (portal/write_gate.py)."""
