"""Small applications the integration tests serve with real servers (gunicorn, uvicorn)."""
