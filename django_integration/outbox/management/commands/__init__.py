"""``manage.py jwt_revocation_relay`` and ``manage.py jwt_revocation_import_blacklist``."""
