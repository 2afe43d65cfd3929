"""``manage.py jwt_revocation_check``."""
