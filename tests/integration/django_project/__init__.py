"""Two real Django projects for the Django integration's tests: ``auth_site`` issues tokens
with simplejwt and writes revocations through the outbox; ``service_site`` verifies them with
the DRF class and the middleware, served by gunicorn with two workers.

Both read the test's topic from ``TEST_TOPIC``; ``auth_site`` its SQLite file from
``TEST_AUTH_DB``. They share the tests' signing key.
"""
